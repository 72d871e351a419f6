"""Decompression bombs: webhook bodies of a few hundred KB that inflate to GBs.

aiohttp inflates ``gzip`` and ``deflate`` request bodies (``br`` and ``zstd`` only with optional
packages; without them the body is not decoded). The sidecar counts what it reads after inflating,
so a bomb is refused with 413 (or 400/415 for an encoding it will not read) long before it is
inflated — with memory bounded either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from ._case import Cases, expect_status
from ._checks import post_status
from ._env import Env
from ._payloads import deflate_bomb, gzip_bomb

__all__ = ["CASES"]

cases = Cases("bombs")
CASES = cases.all

# 413 once the inflated size passes the limit, 400 for a broken stream, 415 where compressed
# bodies are refused outright.
_BOMB = (400, 413, 415)
# An encoding that is not decoded leaves a body that is read as it is (then kept as unmatched).
_UNDECODED = (200, 400, 413, 415)


def _bomb_case(
    name: str, body: Callable[[], bytes], encoding: str, wanted: tuple[int, ...]
) -> None:
    for where in ("core", "sidecar"):

        async def run(env: Env, where: str = where) -> str:
            url = (env.sidecar_url if where == "sidecar" else env.core_url)(env.path())
            return await post_status(
                env, url, body(), "application/json", wanted, **{"Content-Encoding": encoding}
            )

        cases.add(f"{name}-{where}", run)


_bomb_case("gzip-900mib", lambda: gzip_bomb(900), "gzip", _BOMB)
_bomb_case("deflate-900mib", lambda: deflate_bomb(900), "deflate", _BOMB)
_bomb_case("gzip-of-gzip", lambda: gzip_bomb(900), "gzip, gzip", _BOMB)
_bomb_case("gzip-truncated", lambda: gzip_bomb(4)[:-100], "gzip", _BOMB)
_bomb_case("gzip-garbage", lambda: b"\x1f\x8b\x08\x00garbage" * 100, "gzip", _BOMB)
_bomb_case("br-garbage", lambda: b"\xce\xb2\xcf\x81" * 1000, "br", _UNDECODED)
_bomb_case("zstd-garbage", lambda: b"\x28\xb5\x2f\xfd" + b"\x00" * 1000, "zstd", _UNDECODED)


async def _bomb_chunks(mib: int) -> AsyncIterator[bytes]:
    body = gzip_bomb(mib)
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


for _where in ("core", "sidecar"):

    async def _chunked(env: Env, where: str = _where) -> str:
        url = (env.sidecar_url if where == "sidecar" else env.core_url)(env.path())
        assert env.http is not None
        async with env.http.post(
            url,
            data=_bomb_chunks(4096),  # 4 GiB inflated, sent chunked with no length
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        ) as response:
            return expect_status(response.status, _BOMB)

    cases.add(f"gzip-4gib-chunked-{_where}", _chunked)
