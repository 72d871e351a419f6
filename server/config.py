"""The service's settings: one frozen object, read in one place.

Every setting is declared once, below, with its help text. It can be given as a command-line flag
(``--grpc-listen``), an environment variable (``MSGBRIDGE_GRPC_LISTEN``) or a key of the TOML file
named by ``--config`` (``grpc_listen = "…"``), in that order of precedence, else its default.
``msgbridge serve --help`` lists them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._event_loop import EVENT_LOOPS

__all__ = [
    "ENV_PREFIX",
    "Settings",
    "SettingsError",
    "add_settings_arguments",
    "env_name",
    "flag_name",
    "load_settings",
    "shown_default",
]

ENV_PREFIX = "MSGBRIDGE_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and its source."""


def _setting(
    default: Any,
    help: str,
    *,
    metavar: str | None = None,
    repeat: bool = False,
    shown: str | None = None,
) -> Any:
    """A field of :class:`Settings`: its default, help text and flag's metavar; ``repeat`` for a
    flag given once per value; ``shown``, how ``--help`` and docs/configuration.md state a
    default that is not a value (an empty one that means something else)."""
    meta = {"help": help, "metavar": metavar, "repeat": repeat, "shown": shown}
    if isinstance(default, tuple | list):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the service can be told. Build with :func:`load_settings`."""

    grpc_listen: str = _setting(
        "127.0.0.1:50051", "address the gRPC API listens on", metavar="HOST:PORT"
    )
    http_listen: str = _setting(
        "127.0.0.1:8080", "address the webhook sidecar listens on", metavar="HOST:PORT"
    )
    data_dir: Path = _setting(
        Path("var"), "directory for the SQLite file and the secret key", metavar="DIR"
    )
    database_url: str = _setting(
        "",
        "database URL: sqlite:///PATH or postgresql://…",
        metavar="URL",
        shown="sqlite:///<data-dir>/msgbridge.db",
    )
    database_pool_size: int = _setting(10, "PostgreSQL connections per replica at most")
    workers: int = _setting(
        1,
        "service processes on this machine, sharing its ports (the kernel spreads connections "
        'among them); more than 1 needs PostgreSQL (docs/operations.md, "Workers")',
        metavar="N",
    )
    public_url: str = _setting(
        "",
        "base of the webhook URLs given to providers",
        metavar="URL",
        shown="http://<http-listen>",
    )
    outbound_allow: tuple[str, ...] = _setting(
        (),
        "CIDR or host that provider calls may reach besides public addresses (repeatable)",
        metavar="CIDR|HOST",
        repeat=True,
    )
    outbound_deny: tuple[str, ...] = _setting(
        (),
        "CIDR or host that provider calls may never reach (repeatable)",
        metavar="CIDR|HOST",
        repeat=True,
    )
    provider_stand_in: tuple[str, ...] = _setting(
        (),
        "send one integration's provider calls (OAuth2 token requests and authorization URL "
        "included) to a stand-in instead, to try its definition unchanged: the calls keep their "
        "path and query and take the URL's scheme, host and port "
        "(the outbound policy must allow the host); logged as a warning, for trials only "
        "(repeatable)",
        metavar="INTEGRATION=URL",
        repeat=True,
    )
    provider_timeout_s: float = _setting(15.0, "timeout of one provider HTTP call, seconds")
    send_deadline_s: float = _setting(
        30.0, "deadline of a send when the caller gives none, seconds (retries included)"
    )
    send_max_attempts: int = _setting(
        5, "attempts per message at most (retries only where nothing can have been sent)"
    )
    send_retry_initial_s: float = _setting(
        0.5, "first delay before a failed attempt is retried, seconds (doubling, with jitter)"
    )
    send_retry_max_s: float = _setting(60.0, "longest delay between two attempts, seconds")
    send_max_age_s: float = _setting(
        3600.0, "a message not sent this long after it was accepted fails, seconds"
    )
    send_max_queued: int = _setting(
        10_000, "queued messages per installation at most (an installation may set its own)"
    )
    send_concurrency: int = _setting(256, "messages this process sends at once at most")
    send_lease_s: float = _setting(
        0.0,
        "how long a process holds a message it is sending before another may end it as"
        " OUTCOME_UNKNOWN, seconds (0: 4 provider timeouts + 30)",
        shown="0 (4 provider timeouts + 30)",
    )
    send_reply_margin_s: float = _setting(
        0.25,
        "a waiting send is replied QUEUED this long before the caller's deadline, seconds"
        " (at most a tenth of the deadline)",
    )
    outbound_connections: int = _setting(256, "outbound HTTP connections kept open at most")
    trace_providers: bool = _setting(
        False,
        "send the W3C traceparent header of each provider call's span to the provider, when"
        ' traces are on (OTEL_* environment: docs/operations.md, "Traces"); off: never',
    )
    cache_ttl_s: float = _setting(
        2.0,
        "seconds an integration's latest version and an organisation's installations are cached"
        " for sends (changes made through this replica apply at once)",
    )
    receipt_wait_s: float = _setting(
        10.0, "how long a receipt that overtook its send's reply waits for it, seconds"
    )
    subscribe_retry_s: float = _setting(
        5.0, "first delay before a failed Subscribe is retried (doubling, at most 10 minutes)"
    )
    events_retention_days: float = _setting(30.0, "days inbound events are kept (0: forever)")
    requests_retention_days: float = _setting(
        7.0, "days raw webhook requests that produced events are kept (0: forever)"
    )
    unmatched_retention_days: float = _setting(
        30.0, "days unmatched, unroutable and refused webhook requests are kept (0: forever)"
    )
    messages_retention_days: float = _setting(90.0, "days sent messages are kept (0: forever)")
    dedupe_retention_days: float = _setting(
        14.0, "days provider message ids are remembered against webhook retries (0: forever)"
    )
    exchanges_retention_days: float = _setting(
        7.0, "days provider exchanges (the exchange log) are kept (0: forever)"
    )
    exchange_log: bool = _setting(
        True,
        "keep every HTTP exchange with a provider, masked (--no-exchange-log: keep none;"
        ' docs/operations.md, "Provider exchanges")',
    )
    purge_interval_s: float = _setting(3600.0, "seconds between retention purges")
    # Media (docs/media.md)
    media_fetch: bool = _setting(
        True,
        "fetch and keep the files of inbound messages (--no-media-fetch: events carry the"
        " provider's URLs only)",
    )
    media_wait_s: float = _setting(
        120.0,
        "an inbound message waits this long for its files before its event is released with"
        " the provider's URLs and each file's error, seconds",
    )
    media_fetch_timeout_s: float = _setting(30.0, "time to fetch one file, seconds")
    media_max_item_bytes: int = _setting(
        16 * 1024 * 1024, "largest file kept or uploaded, bytes (a definition may set less)"
    )
    media_max_message_bytes: int = _setting(
        64 * 1024 * 1024, "all files of one inbound message at most, bytes"
    )
    media_url_ttl_s: float = _setting(
        7 * 86400.0,
        "how long a signed media URL in an event is valid, seconds (an uploaded file's URL given"
        " to a provider lives at least as long as its message may wait in the queue)",
    )
    media_retention_days: float = _setting(30.0, "days stored files are kept (0: forever)")
    media_store: str = _setting(
        "",
        "where files are kept: empty for files under the data dir, or s3://BUCKET/PREFIX for an"
        " S3-compatible store (credentials from the AWS_* environment)",
        metavar="URL",
        shown="<data-dir>/media",
    )
    media_s3_endpoint: str = _setting(
        "", "the S3-compatible store's endpoint URL", metavar="URL", shown="AWS's"
    )
    media_s3_region: str = _setting("us-east-1", "the S3-compatible store's region")
    webhook_max_body: int = _setting(1_048_576, "largest webhook body accepted, bytes")
    webhook_timeout_s: float = _setting(30.0, "time to receive a webhook request, seconds")
    secret_key_file: Path | None = _setting(
        None,
        "file holding the key that encrypts secrets at rest (created 0600 if missing)",
        metavar="PATH",
        shown="<data-dir>/secret.key",
    )
    sidecar: bool = _setting(True, "run the webhook sidecar in-process (--no-sidecar: gRPC only)")
    metrics_listen: str = _setting(
        "",
        "address Prometheus metrics are served on, at /metrics (a non-loopback address needs"
        ' --insecure: docs/operations.md, "Metrics")',
        metavar="HOST:PORT",
        shown="off",
    )
    demo: bool = _setting(
        False, "also start a local fake provider and register a demo integration for it"
    )
    demo_provider_listen: str = _setting(
        "127.0.0.1:8090", "where --demo starts the fake provider", metavar="HOST:PORT"
    )
    insecure: bool = _setting(
        False, "allow listening on a non-loopback address without TLS or tokens"
    )
    api_tokens_file: Path | None = _setting(
        None,
        "file of API tokens, a line each: 'SCOPE TOKEN' or 'SCOPE sha256:HEX' with SCOPE read, "
        "full or ingest (more in MSGBRIDGE_API_TOKENS); with any, every call but health and "
        "reflection needs a token",
        metavar="PATH",
    )
    tls_cert: Path | None = _setting(
        None, "PEM certificate chain of the gRPC API (with --tls-key: serve TLS)", metavar="PATH"
    )
    tls_key: Path | None = _setting(None, "PEM private key of --tls-cert", metavar="PATH")
    tls_client_ca: Path | None = _setting(
        None,
        "PEM CA certificates: every caller must present a certificate they issued (mutual TLS)",
        metavar="PATH",
    )
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    event_loop: str = _setting(
        "uvloop",
        "the event loop: uvloop (libuv's, less CPU per operation; asyncio's where uvloop is not"
        " installed) or asyncio",
    )
    log_format: str = _setting("json", "json (one object per line) or text")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'msgbridge.db'}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.http_listen}").rstrip("/")


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_DEFAULTS = Settings()


def flag_name(name: str) -> str:
    """The flag of the setting ``name``: ``--grpc-listen``."""
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    """The environment variable of the setting ``name``: ``MSGBRIDGE_GRPC_LISTEN``."""
    return ENV_PREFIX + name.upper()


def shown_default(name: str) -> str:
    """The default of the setting ``name`` as ``--help`` and docs/configuration.md state it."""
    f = _FIELDS[name]
    if f.metadata["shown"] is not None:
        return str(f.metadata["shown"])
    value = getattr(_DEFAULTS, name)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    if value is None or value == "":
        return "none"
    if isinstance(value, Path) and not value.is_absolute():
        return f"./{value}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every setting (and ``--config``). Unset flags stay ``None``: the help
    states each setting's own default once (not argparse's)."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file of settings, keys as the settings' names (env: MSGBRIDGE_CONFIG; "
        "default: none)",
    )
    for f in dataclasses.fields(Settings):
        text = f"{f.metadata['help']} (env: {env_name(f.name)}; default: {shown_default(f.name)})"
        if f.type in ("bool", bool):
            parser.add_argument(
                flag_name(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        elif f.metadata["repeat"]:
            parser.add_argument(
                flag_name(f.name),
                dest=f.name,
                action="append",
                default=None,
                metavar=f.metadata["metavar"],
                help=text,
            )
        else:
            parser.add_argument(
                flag_name(f.name),
                dest=f.name,
                default=None,
                metavar=f.metadata["metavar"],
                help=text,
            )


def _convert(name: str, raw: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind in ("bool", bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind in ("int", int):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if kind in ("float", float):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if kind in ("Path", Path):
            return Path(raw)
        if kind == "Path | None":
            return Path(raw) if raw not in (None, "") else None
        if kind == "tuple[str, ...]":
            if isinstance(raw, str):
                return tuple(part.strip() for part in raw.split(",") if part.strip())
            return tuple(str(item) for item in raw)
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except (TypeError, ValueError):
        raise SettingsError(f"{name} from {source}: cannot use {raw!r}") from None


def load_settings(
    flags: Mapping[str, Any] | argparse.Namespace | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Settings from flags, then environment variables, then the TOML file, then defaults."""
    given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    env = os.environ if environ is None else environ
    path = config_file or given.get("config") or env.get("MSGBRIDGE_CONFIG") or None
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            from_file = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path}: {exc}") from None
        unknown = sorted(set(from_file) - set(_FIELDS))
        if unknown:
            raise SettingsError(f"config file {path}: unknown settings {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name in _FIELDS:
        variable = env_name(name)
        if given.get(name) is not None:
            values[name] = _convert(name, given[name], flag_name(name))
        elif variable in env:
            values[name] = _convert(name, env[variable], variable)
        elif name in from_file:
            values[name] = _convert(name, from_file[name], str(path))
    settings = Settings(**values)
    _check_ranges(settings)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    listens = ["grpc_listen", "http_listen", "demo_provider_listen"]
    if settings.metrics_listen:
        listens.append("metrics_listen")
    for name in listens:
        host, sep, port = getattr(settings, name).rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise SettingsError(f"{name}: expected HOST:PORT, got {getattr(settings, name)!r}")
    url = settings.effective_database_url
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise SettingsError(f"database_url: expected sqlite:///PATH or postgresql://…, got {url!r}")
    for name in (
        "provider_timeout_s",
        "send_deadline_s",
        "webhook_timeout_s",
        "purge_interval_s",
        "media_fetch_timeout_s",
        "media_url_ttl_s",
        "media_max_item_bytes",
        "media_max_message_bytes",
    ):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name}: must be more than 0")
    if settings.database_pool_size < 1:
        raise SettingsError("database_pool_size: must be at least 1")
    _check_workers(settings)
    if settings.send_max_attempts < 1:
        raise SettingsError("send_max_attempts: must be at least 1")
    if settings.send_concurrency < 1:
        raise SettingsError("send_concurrency: must be at least 1")
    if settings.media_store and not settings.media_store.startswith("s3://"):
        raise SettingsError(
            f"media_store: expected empty or s3://BUCKET/PREFIX, got {settings.media_store!r}"
        )
    _check_metrics_exposure(settings)
    if settings.log_format not in ("json", "text"):
        raise SettingsError("log_format: expected json or text")
    if settings.event_loop not in EVENT_LOOPS:
        raise SettingsError(f"event_loop: expected {' or '.join(EVENT_LOOPS)}")
    from .outbound import parse_stand_ins  # here: the flags alone need no HTTP client

    try:
        parse_stand_ins(settings.provider_stand_in)
    except ValueError as exc:
        raise SettingsError(f"provider_stand_in: {exc}") from None


def _check_workers(settings: Settings) -> None:
    """Several workers share one database, which only PostgreSQL lets several processes write:
    the SQLite store's one writer is a thread of one process (docs/operations.md, "Workers")."""
    if settings.workers < 1:
        raise SettingsError("workers: must be at least 1")
    if settings.workers == 1:
        return
    if not settings.effective_database_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            f"workers: {settings.workers} processes need PostgreSQL (database_url "
            "postgresql://…): the embedded SQLite store is written by one process; run one "
            "worker on SQLite"
        )
    if settings.demo:
        raise SettingsError("workers: --demo runs one process; leave workers at 1 with it")
    if settings.metrics_listen:
        port = int(settings.metrics_listen.rpartition(":")[2])
        if port and port + settings.workers - 1 > 65535:
            raise SettingsError(
                f"metrics_listen: worker i serves its metrics on port {port} + i, and "
                f"{port} + {settings.workers - 1} is past 65535"
            )


def _check_metrics_exposure(settings: Settings) -> None:
    """The metrics listener has no TLS or tokens: like the API's (security/api_access,
    ``check_exposure``), a non-loopback address is refused unless ``insecure`` accepts it."""
    from .security.api_access import is_loopback_listen  # here: no import cycle

    listen = settings.metrics_listen
    if listen and not settings.insecure and not is_loopback_listen(listen):
        raise SettingsError(
            f"metrics_listen: refusing to serve metrics on {listen}, which is not a loopback "
            "address: they name the integrations and their traffic. Listen on 127.0.0.1 (a "
            "scraper beside the process, or a proxy), or pass --insecure to accept the exposure"
        )


# Numbers beyond these are mistakes, and some would overflow later (a timedelta of 1e400 days, a
# deadline grpc cannot represent) in a background task rather than here, with a clear message.
_MAX_COUNT = 2**31 - 1
_MAX_DAYS = 36_500.0
_MAX_SECONDS = 365 * 24 * 3600.0


def _check_ranges(settings: Settings) -> None:
    """Every number is finite and not negative; counts fit an int32, days a century, seconds a
    year. (:func:`_validate` then asks more of some.)"""
    for name, value in dataclasses.asdict(settings).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, int):
            high = float(_MAX_COUNT)
        else:
            high = _MAX_DAYS if name.endswith("_days") else _MAX_SECONDS
        if not (math.isfinite(value) and 0 <= value <= high):
            raise SettingsError(f"{name}: must be from 0 to {high:g}, got {value!r}")
