"""Node settings: one frozen dataclass per role, loaded from four layers.

Precedence, lowest first: the dataclass defaults, a TOML file, the environment,
command-line flags.  Every layer rejects keys the role does not know, with an
error naming the source and the key (a typo must never be silently ignored):

* TOML: top-level keys and the role's own table (``[pop]``) apply; tables of
  other roles (``[origin]``, ``[control]``, ...) are skipped, so one file can
  configure a whole deployment.  Role-specific keys belong in the role's table.
* Environment: ``CLUTCHCALL_<ROLE>_<FIELD>`` (wins) or ``CLUTCHCALL_<FIELD>``,
  e.g. ``CLUTCHCALL_POP_JWKS`` or ``CLUTCHCALL_REDIS``.  An unknown
  ``CLUTCHCALL_<ROLE>_*`` variable is an error; a generic ``CLUTCHCALL_*`` that
  this role does not have is left alone (it may be another role's).
* Flags: :func:`add_settings_arguments` adds ``--config`` and one ``--field-name``
  per field; :func:`settings_from_args` applies the ones given.

Values from text (environment, flags) are converted by the field's type: bools
accept true/false/1/0/yes/no/on/off, tuples are comma-separated, an empty
string means None for optional fields.  Other roles' owners declare their
dataclass (e.g. ``ControlSettings``) and load it with :func:`load_settings`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "NodeSettings",
    "OriginSettings",
    "PopSettings",
    "SettingsError",
    "add_settings_arguments",
    "load_settings",
    "parse_hostport",
    "settings_from_args",
]

ENV_PREFIX: Final = "CLUTCHCALL_"
ROLES: Final = frozenset({"origin", "pop", "relay", "control", "up", "bench"})


class SettingsError(ValueError):
    """Invalid configuration; the message names the source and the key."""


def parse_hostport(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ``ValueError`` when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"malformed IPv6 address in {value!r}")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 addresses need brackets: {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    return host, port


# What only the picoquic stack has: aioquic's controller is NewReno, its buffers are its own.
_PICOQUIC_ONLY = (
    "quic_stream_buffer",
    "quic_congestion_control",
    "quic_send_quantum",
    "quic_busy_connections",
    "quic_busy_send_quantum",
)
# What only picoquic's BBR has: another controller paces in its own way.
_BBR_ONLY = ("quic_send_quantum", "quic_busy_connections", "quic_busy_send_quantum")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """What every long-running node has."""

    node_id: str = ""  # empty: "<role>-<hostname>" (filled by load_settings)
    region: str = "default"
    quic: str = "0.0.0.0:4433"
    advertise: str = ""  # HOST:PORT the others dial (default: quic)
    http: str = "127.0.0.1:9090"
    redis: str | None = None  # None: in-memory bus (single process only)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    heartbeat_interval: float = 1.0
    node_ttl: float = 3.0
    drain_timeout: float = 10.0
    # picoquic (default): C on its own thread (moqt.aio.serve_picoquic), several times
    # less CPU per byte sent. aioquic: pure Python, raw QUIC + WebTransport.
    quic_stack: Literal["aioquic", "picoquic"] = "picoquic"
    # Shared by every node of a cluster: relay links authenticate with it
    # (mesh.node_credential, docs/relay-links.md). Empty: links are treated as viewers.
    cluster_key: str = dataclasses.field(default="", repr=False)
    # A session that has not completed SETUP this many seconds after it opened is closed.
    setup_timeout: float = 10.0
    # QUIC connections beyond this many are refused (CONNECTION_REFUSED) on either stack.
    max_connections: int = 10_000
    # picoquic: bytes its ring holds per stream we send on (allocated per stream; a longer
    # backlog waits in the session). Most of a viewer's memory when large (bench/RESULTS.md).
    quic_stream_buffer: int = 64 * 1024
    # Seconds between two glibc malloc_trim calls giving freed heap pages back (mesh.heap);
    # 0: never.
    heap_trim_interval: float = 60.0
    # picoquic: the congestion controller of what a node serves and opens (its links too).
    quic_congestion_control: Literal[
        "bbr", "cubic", "newreno", "dcubic", "prague", "c4", "bbr1"
    ] = "bbr"
    # picoquic's BBR: the burst it may send at once, in seconds of its pacing rate (0: its
    # own, 1 ms), while the node holds fewer than quic_busy_connections connections; the
    # connections after that get at least quic_busy_send_quantum (less CPU per viewer,
    # burstier; 0 connections: never). docs/scaling.md, moqt/aio/_picoquic_server.py.
    quic_send_quantum: float = 0.0
    quic_busy_connections: int = 16
    quic_busy_send_quantum: float = 0.01

    def __post_init__(self) -> None:
        parse_hostport(self.quic)
        if self.cluster_key and len(self.cluster_key) < 32:
            raise ValueError("cluster_key must be at least 32 characters")
        parse_hostport(self.http)
        if self.advertise:
            parse_hostport(self.advertise)
        if self.redis is not None and not self.redis.startswith(
            ("redis://", "rediss://", "unix://", "memory:")
        ):
            raise ValueError(f"redis must be a redis:// URL, got {self.redis!r}")
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        for name in ("quic_send_quantum", "quic_busy_send_quantum"):
            if not 0 <= getattr(self, name) <= 0.1:
                raise ValueError(f"{name} is 0 to 0.1 seconds, not {getattr(self, name)}")
        if self.quic_busy_connections < 0:
            raise ValueError("quic_busy_connections must be >= 0 (0: never)")
        if self.quic_stack == "aioquic":
            # aioquic has none of these (its controller is NewReno): a setting that would be
            # ignored is refused, so that a typo'd stack does not pass for a tuned picoquic.
            ignored = self._changed(_PICOQUIC_ONLY)
            if ignored:
                raise ValueError(
                    f"{', '.join(ignored)}: picoquic's, not aioquic's; set quic_stack = picoquic "
                    "or drop them"
                )
        if self.quic_congestion_control != "bbr" and (ignored := self._changed(_BBR_ONLY)):
            raise ValueError(
                f"{', '.join(ignored)}: picoquic's BBR's, set quic_congestion_control = bbr "
                f"or drop them (not {self.quic_congestion_control})"
            )
        if self.heap_trim_interval < 0:
            raise ValueError("heap_trim_interval must be >= 0 (0: never)")
        if self.quic_stream_buffer < 4096:
            raise ValueError("quic_stream_buffer must be at least 4096 bytes")
        for name in ("heartbeat_interval", "node_ttl", "drain_timeout", "setup_timeout"):
            _positive(name, getattr(self, name))
        if self.node_ttl <= self.heartbeat_interval:
            raise ValueError("node_ttl must be longer than heartbeat_interval")

    def _changed(self, names: tuple[str, ...]) -> list[str]:
        """Those of ``names`` set away from their defaults."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return [name for name in names if getattr(self, name) != defaults[name]]

    @property
    def advertised_quic(self) -> str:
        return self.advertise or self.quic


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OriginSettings(NodeSettings):
    publish_auth: Literal["redis", "none"] = "redis"
    rtmp: str = "0.0.0.0:1935"  # empty: no RTMP ingest
    dev_org: str = "org_dev"  # the org of publishers admitted by --publish-auth none

    def __post_init__(self) -> None:
        NodeSettings.__post_init__(self)
        if self.rtmp:
            parse_hostport(self.rtmp)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PopSettings(NodeSettings):
    jwks: str = "bus"  # URL | FILE | "bus" (the clutchcall:jwks record)
    audience: str = "clutchcall-playback"
    jwks_max_age: float = 300.0
    jwks_refresh_interval: float = 10.0  # at most one refresh per interval on unknown kids
    workers: int = 1
    linger: float = 10.0  # keep an upstream subscription this long after the last viewer
    parent_regions: tuple[str, ...] = ()
    max_hops: int = 3
    # Address validation (QUIC Retry) on either stack (picoquic applies it itself): "auto"
    # while more than retry_threshold handshakes are half-open (a flood of spoofed
    # Initials), or always/never.
    quic_retry: Literal["auto", "always", "never"] = "auto"
    retry_threshold: int = 64
    # Seconds of silence on an upstream link's steady live tracks after which the POP
    # takes that upstream for dead and re-routes (pop._upstream); 0: never (only the QUIC
    # idle timeout, the registry's node_down or a closed session end a link).
    upstream_stall: float = 1.5

    def __post_init__(self) -> None:
        NodeSettings.__post_init__(self)
        if self.retry_threshold < 1:
            raise ValueError("retry_threshold must be >= 1")
        if not self.jwks:
            raise ValueError("jwks is required (URL, file path or 'bus')")
        for name in ("jwks_max_age", "jwks_refresh_interval"):
            _positive(name, getattr(self, name))
        if self.linger < 0:
            raise ValueError("linger must be >= 0")
        if not 1 <= self.workers <= 256:
            raise ValueError("workers must be between 1 and 256")
        if not 1 <= self.max_hops <= 16:
            raise ValueError("max_hops must be between 1 and 16")
        if not (self.upstream_stall == 0 or 0.1 <= self.upstream_stall <= 3600):
            raise ValueError("upstream_stall must be 0 (off) or between 0.1 and 3600 seconds")


# -- conversion -----------------------------------------------------------------------


def _convert(tp: Any, value: Any, *, from_text: bool) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (from_text and value == ""):
            return None
        return _convert(args[0], value, from_text=from_text)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        if from_text and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of strings")
        return tuple(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        raise ValueError("must be true or false")
    if tp is int or tp is float:
        if isinstance(value, bool):
            raise ValueError(f"must be {'an integer' if tp is int else 'a number'}")
        if from_text and isinstance(value, str):
            try:
                return tp(value.strip())
            except ValueError:
                raise ValueError(f"must be {'an integer' if tp is int else 'a number'}") from None
        if tp is int and isinstance(value, int):
            return value
        if tp is float and isinstance(value, int | float):
            return float(value)
        raise ValueError(f"must be {'an integer' if tp is int else 'a number'}")
    if tp is str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value
    raise TypeError(f"unsupported settings field type {tp!r}")


def _fields(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _merge(
    values: dict[str, Any],
    fields: Mapping[str, Any],
    items: Mapping[str, Any],
    *,
    source: str,
    from_text: bool,
) -> None:
    for key, raw in items.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise SettingsError(f"{source}: unknown setting {key!r} (known: {known})")
        try:
            values[key] = _convert(fields[key], raw, from_text=from_text)
        except ValueError as exc:
            raise SettingsError(f"{source}: {key}: {exc}") from None


def _file_layer(path: Path, section: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    items: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict) and key not in fields:
            if key == section:
                continue
            if key in ROLES:
                continue  # another role's table
            raise SettingsError(f"{path}: unknown table [{key}]")
        items[key] = value
    own = document.get(section, {})
    if not isinstance(own, dict):
        raise SettingsError(f"{path}: {section} must be a table")
    for key in own:
        if isinstance(own[key], dict):
            raise SettingsError(f"{path}: [{section}.{key}]: nested tables are not settings")
    items.update(own)
    return items


def _env_layer(env: Mapping[str, str], section: str, fields: Mapping[str, Any]) -> dict[str, str]:
    role_prefix = f"{ENV_PREFIX}{section.upper()}_"
    items: dict[str, str] = {}
    for name in fields:
        generic = env.get(ENV_PREFIX + name.upper())
        if generic is not None:
            items[name] = generic
    for var, value in env.items():
        if var.startswith(role_prefix):
            name = var[len(role_prefix) :].lower()
            if name not in fields:
                raise SettingsError(f"environment: unknown setting {var}")
            items[name] = value
    return items


def load_settings[T](
    cls: type[T],
    section: str,
    *,
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    overrides_are_text: bool = True,
) -> T:
    """Build ``cls`` for role ``section`` from defaults, ``file``, ``env`` and ``overrides``.

    ``env`` defaults to ``os.environ``; ``None`` values in ``overrides`` are ignored
    (flags not given).  Raises :class:`SettingsError`.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a settings dataclass")
    fields = _fields(cls)
    values: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        _merge(
            values, fields, _file_layer(path, section, fields), source=str(path), from_text=False
        )
    environ = os.environ if env is None else env
    _merge(
        values, fields, _env_layer(environ, section, fields), source="environment", from_text=True
    )
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _merge(values, fields, given, source="command line", from_text=overrides_are_text)
    if "node_id" in fields and not values.get("node_id"):
        values["node_id"] = f"{section}-{socket.gethostname()}"
    try:
        return cls(**values)
    except ValueError as exc:
        raise SettingsError(f"{section} settings: {exc}") from None


def _flag_help(cls: type[Any], section: str | None, name: str) -> str:
    """The field's help (mesh.settings_help), its default, TOML key and environment variables."""
    from mesh.settings_help import setting_help

    default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
    if name == "cluster_key" or name.endswith("secret"):
        shown = "unset" if not default else "set"
    elif default is None or default == "":
        shown = "unset"
    elif isinstance(default, tuple):
        shown = ",".join(default) or "none"
    else:
        shown = str(default)
    text = f"{setting_help(section, name) or ''} (default: {shown})"
    if section is not None:
        env = f"{ENV_PREFIX}{section.upper()}_{name.upper()}"
        text += (
            f" [TOML: {name} (top level or [{section}]); env: {env} or {ENV_PREFIX}{name.upper()}]"
        )
    return text.replace("%", "%%")


def add_settings_arguments(
    parser: argparse.ArgumentParser, cls: type[Any], section: str | None = None
) -> None:
    """``--config FILE`` plus one ``--field-name VALUE`` flag per field of ``cls``; each
    flag's help names the TOML key and environment variables of role ``section``."""
    where = f" (keys at top level or in [{section}])" if section else ""
    parser.add_argument("--config", metavar="FILE", help=f"TOML settings file{where}")
    for name, tp in _fields(cls).items():
        flag = "--" + name.replace("_", "-")
        help_text = _flag_help(cls, section, name)
        if tp is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                help=help_text,
            )  # fmt: skip
        else:
            choices = typing.get_args(tp) if typing.get_origin(tp) is Literal else None
            parser.add_argument(
                flag, dest=name, default=None, choices=choices, metavar=name.upper(),
                help=help_text,
            )  # fmt: skip


def settings_from_args[T](
    cls: type[T], section: str, args: argparse.Namespace, *, env: Mapping[str, str] | None = None
) -> T:
    """Load ``cls`` with the flags in ``args`` (from :func:`add_settings_arguments`) on top."""
    overrides = {name: getattr(args, name, None) for name in _fields(cls)}
    return load_settings(
        cls, section, file=getattr(args, "config", None), env=env, overrides=overrides
    )
