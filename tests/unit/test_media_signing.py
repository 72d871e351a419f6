"""Signed media URLs (server/media/_signing.py) and the keys they are derived from
(SecretBox.derived_keys): any change to id, expiry or signature is refused, an expired URL too,
and a rotated key file still verifies the URLs signed before the rotation."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from server.media import MEDIA_KEY_PURPOSE, MediaSigner
from server.security.secrets import SecretBox

EXPIRES = 2_000_000_000
BEFORE = EXPIRES - 1


def key_file(path: Path, *keys: bytes) -> Path:
    path.write_text("".join(base64.b64encode(k).decode() + "\n" for k in keys), encoding="ascii")
    return path


def query_of(signed: str) -> tuple[str, int, str]:
    parts = urlsplit(signed)
    query = parse_qs(parts.query, strict_parsing=True)
    assert sorted(query) == ["e", "s"]
    return parts.path.rsplit("/", 1)[1], int(query["e"][0]), query["s"][0]


@pytest.fixture
def signer() -> MediaSigner:
    return MediaSigner(SecretBox([os.urandom(32)]).derived_keys(MEDIA_KEY_PURPOSE))


# -- derived keys ------------------------------------------------------------------------------


def test_derived_keys_are_per_purpose_never_the_file_keys_and_stable(tmp_path: Path) -> None:
    first, second = os.urandom(32), os.urandom(32)
    path = key_file(tmp_path / "keys", first, second, first)
    box = SecretBox.from_file(path)
    media = box.derived_keys(b"media-url-hmac")
    assert len(media) == 2  # a repeated line adds nothing
    assert all(len(key) == 32 for key in media)
    assert not {first, second} & set(media)
    assert set(media).isdisjoint(box.derived_keys(b"other"))
    # Another process reading the same file derives the same keys, primary first.
    assert SecretBox.from_file(path).derived_keys(b"media-url-hmac") == media
    assert SecretBox([first]).derived_keys(b"media-url-hmac") == media[:1]
    assert SecretBox([second]).derived_keys(b"media-url-hmac") == media[1:]
    with pytest.raises(ValueError, match="purpose"):
        box.derived_keys(b"")


# -- signing -----------------------------------------------------------------------------------


def test_sign_gives_the_path_and_query_and_url_puts_it_under_the_public_url(
    signer: MediaSigner,
) -> None:
    signed = signer.sign("m_1-A", EXPIRES)
    signature = signer.signature("m_1-A", EXPIRES)
    assert signed == f"/media/m_1-A?e={EXPIRES}&s={signature}"
    assert len(signature) == 43
    assert "=" not in signature
    assert base64.urlsafe_b64decode(signature + "=")  # base64url
    assert signer.url("https://hooks.example.com/base/", "m_1-A", EXPIRES) == (
        f"https://hooks.example.com/base{signed}"
    )
    assert query_of(signed) == ("m_1-A", EXPIRES, signature)
    assert signer.verify("m_1-A", EXPIRES, signature, BEFORE)


@pytest.mark.parametrize("media_id", ["", "a/b", "..", "a.b", "a b", "ä", "x" * 129, "a\nb"])
def test_ids_that_are_no_single_safe_path_segment_are_never_signed(
    signer: MediaSigner, media_id: str
) -> None:
    with pytest.raises(ValueError, match="media id"):
        signer.sign(media_id, EXPIRES)
    assert not signer.verify(media_id, EXPIRES, "A" * 43, BEFORE)


def test_an_expiry_out_of_range_is_never_signed(signer: MediaSigner) -> None:
    for expiry in (-1, 10**19):
        with pytest.raises(ValueError, match="expires_at"):
            signer.signature("m1", expiry)
        assert not signer.verify("m1", expiry, "A" * 43, 0)


def test_a_url_expires_at_its_expiry(signer: MediaSigner) -> None:
    signature = signer.signature("m1", EXPIRES)
    assert signer.verify("m1", EXPIRES, signature, EXPIRES - 0.001)
    assert not signer.verify("m1", EXPIRES, signature, EXPIRES)
    assert not signer.verify("m1", EXPIRES, signature, EXPIRES + 3600)


def test_any_change_to_id_expiry_or_signature_is_refused(signer: MediaSigner) -> None:
    signature = signer.signature("m1", EXPIRES)
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert not signer.verify("m2", EXPIRES, signature, BEFORE)
    assert not signer.verify("m1x", EXPIRES, signature, BEFORE)
    assert not signer.verify("M1", EXPIRES, signature, BEFORE)
    assert not signer.verify("m1", EXPIRES + 1, signature, BEFORE)
    assert not signer.verify("m1", EXPIRES - 1, signature, BEFORE - 1)
    for forged in (flipped, signature[:-1], signature + "=", signature + "A", "", "é" * 43):
        assert not signer.verify("m1", EXPIRES, forged, BEFORE), forged
    # A signature for the same id and expiry under another key is no good either.
    other = MediaSigner([os.urandom(32)])
    assert not signer.verify("m1", EXPIRES, other.signature("m1", EXPIRES), BEFORE)


def test_the_encryption_key_itself_does_not_sign_media_urls() -> None:
    key = os.urandom(32)
    signer = MediaSigner.from_box(SecretBox([key]))
    raw = MediaSigner([key])
    assert signer.signature("m1", EXPIRES) != raw.signature("m1", EXPIRES)
    assert not signer.verify("m1", EXPIRES, raw.signature("m1", EXPIRES), BEFORE)


def test_rotation_keeps_old_urls_valid_and_signs_with_the_new_key(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = MediaSigner.from_box(SecretBox.from_file(key_file(tmp_path / "a", old)))
    old_url = before.signature("m1", EXPIRES)

    rotated = MediaSigner.from_box(SecretBox.from_file(key_file(tmp_path / "b", new, old)))
    assert rotated.verify("m1", EXPIRES, old_url, BEFORE)  # signed before the rotation
    new_url = rotated.signature("m1", EXPIRES)
    assert new_url != old_url  # the new primary signs
    assert rotated.verify("m1", EXPIRES, new_url, BEFORE)
    assert not before.verify("m1", EXPIRES, new_url, BEFORE)
    # Expiry still applies to a URL verified by an older key.
    assert not rotated.verify("m1", EXPIRES, old_url, EXPIRES)

    # Once the old key is dropped from the file, its URLs are refused.
    retired = MediaSigner.from_box(SecretBox.from_file(key_file(tmp_path / "c", new)))
    assert not retired.verify("m1", EXPIRES, old_url, BEFORE)
    assert retired.verify("m1", EXPIRES, new_url, BEFORE)


def test_a_signer_needs_keys_of_32_bytes() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        MediaSigner([])
    with pytest.raises(ValueError, match="32 bytes"):
        MediaSigner([b"short"])
