"""Defaults from a TOML config file and ``SHOAL_*`` environment variables.

Precedence, highest first: command-line flags > environment > config file > built-in
defaults. The file is ``$XDG_CONFIG_HOME/shoal/config.toml`` (``~/.config/shoal/...``
when the variable is unset), or the one named by ``--config FILE``; a missing default
file is fine, a missing ``--config`` file is an error. Example::

    download_dir = "~/Downloads"
    port = 51413
    encryption = "require"          # prefer | require | disable
    bootstrap = ["10.0.0.5:6881"]   # HOST:PORT strings
    bind = "0.0.0.0"                # or one per family: ["0.0.0.0", "::"]
    state_dir = "~/.local/state/shoal"
    transport = "both"              # tcp | utp | both

Relative directories in the file are relative to the file's own directory; in the
environment, to the current directory. ``~`` is expanded in both.

Environment: ``SHOAL_DOWNLOAD_DIR``, ``SHOAL_PORT``, ``SHOAL_ENCRYPTION``,
``SHOAL_BOOTSTRAP`` (comma-separated HOST:PORT), ``SHOAL_STATE_DIR``, ``SHOAL_BIND``
(comma-separated, one address per family, like ``--bind`` given twice),
``SHOAL_TRANSPORT``.

How it plugs in: `parse_args` replaces ``parser.parse_args``. It reads ``--config``
first, loads the settings, turns them into argparse *defaults* of the subcommands that
have the matching option (so a flag the user types still wins, and ``--help`` shows
the effective default), parses, and fills ``--bootstrap`` afterwards (an ``append``
option cannot take a list default without the flags being appended to it). A
two-family ``bind`` works the same way: the first address is ``--bind``'s default, and
the whole list becomes ``args.bind_list`` after parsing unless ``--bind`` was typed
(the flags replace the setting, never add to it).

Which command takes what: ``get`` all seven (``-o`` ← download_dir); ``seed`` port,
bind, encryption, bootstrap, transport; ``dht`` bind and bootstrap only (its port and
state file stay per-invocation, so a standalone node never collides with a running
client); ``daemon`` all seven, its ``--state-dir`` being ``<state_dir>/daemon``.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

from ..config import EncryptionMode
from ..errors import ShoalError
from .common import EXIT_FAILURE, Parser, is_ipv6, parse_hostport

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "ConfigError",
    "Settings",
    "add_config_option",
    "default_config_path",
    "default_state_dir",
    "load_settings",
    "parse_args",
]

#: Prefix of every environment variable we read.
ENV_PREFIX: Final = "SHOAL_"
#: Values of the ``transport`` setting (``--transport``).
TRANSPORT_CHOICES: Final = ("tcp", "utp", "both")
#: A config file larger than this is not a hand-written config file.
MAX_CONFIG_BYTES: Final = 1024 * 1024


class ConfigError(ShoalError):
    """A bad value in the config file or the environment; the message names where."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The user's standing choices; None means "not set here" (a lower layer decides)."""

    download_dir: Path | None = None
    port: int | None = None
    encryption: EncryptionMode | None = None
    bootstrap: tuple[tuple[str, int], ...] | None = None
    state_dir: Path | None = None
    #: One address, or one per address family (BEP 32 dual stack), in order.
    bind: tuple[str, ...] | None = None
    transport: str | None = None

    def over(self, lower: Settings) -> Settings:
        """These settings where set, `lower`'s elsewhere."""
        return replace(
            lower,
            **{f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None},
        )


_KEYS: Final = tuple(f.name for f in fields(Settings))

#: argparse destination per setting, for each subcommand that has the option.
_DESTS: Final[Mapping[str, Mapping[str, str]]] = {
    "get": {
        "download_dir": "output",
        "port": "port",
        "encryption": "encryption",
        "state_dir": "state_dir",
        "bind": "bind",
        "transport": "transport",
    },
    "seed": {"port": "port", "encryption": "encryption", "bind": "bind", "transport": "transport"},
    "dht": {"bind": "bind"},
    "daemon": {
        "download_dir": "download_dir",
        "port": "port",
        "encryption": "encryption",
        "bind": "bind",
        "transport": "transport",
    },
}
#: The daemon's database and resume files live in a directory of their own under the
#: state directory (``<state_dir>/daemon``), never mixed with ``get``'s resume files.
DAEMON_SUBDIR: Final = "daemon"
#: Subcommands whose ``--bootstrap`` is filled from the settings after parsing.
_BOOTSTRAP_COMMANDS: Final = frozenset({"get", "seed", "dht", "daemon"})
#: Subcommands whose ``bind`` setting may name a second address family (``bind_list``).
_BIND_COMMANDS: Final = frozenset(c for c, dests in _DESTS.items() if "bind" in dests)
#: Subcommands that read the settings (a bad config is an error only for these).
_USERS: Final = frozenset(_DESTS) | _BOOTSTRAP_COMMANDS


def default_config_path(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/shoal/config.toml``, else ``~/.config/shoal/config.toml``."""
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "shoal" / "config.toml"


def default_state_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/shoal``, else ``~/.local/state/shoal`` (XDG base directory spec)."""
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "shoal"


def load_settings(config: Path | None, env: Mapping[str, str]) -> Settings:
    """Environment over file over built-in defaults (no flags: those are argparse's).

    Args:
        config: the ``--config`` file (must exist), or None for the default location
            (which may be absent).

    Raises:
        ConfigError: unreadable or invalid file, unknown key, bad value.
    """
    path = config if config is not None else default_config_path(env)
    from_file = _read_file(path, required=config is not None)
    builtin = Settings(state_dir=default_state_dir(env))
    return _from_env(env).over(from_file.over(builtin))


def _read_file(path: Path, *, required: bool) -> Settings:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file '{path}' does not exist") from None
        return Settings()
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file '{path}' is larger than 1 MiB")
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from exc
    values: dict[str, object] = {}
    for key, raw in table.items():
        where = f"config file '{path}', key '{key}'"
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown setting; known: {', '.join(_KEYS)}")
        value = _convert(key, raw, where)
        if isinstance(value, Path) and not value.is_absolute():
            # Relative to the file, not to wherever shoal happens to be started.
            value = path.parent / value
        values[key] = value
    return Settings(**values)  # type: ignore[arg-type]


def _from_env(env: Mapping[str, str]) -> Settings:
    values: dict[str, object] = {}
    for key in _KEYS:
        name = ENV_PREFIX + key.upper()
        text = env.get(name)
        if text is None or text == "":
            continue
        raw: object = text
        if key in ("bootstrap", "bind"):
            raw = [item.strip() for item in text.split(",") if item.strip()]
        values[key] = _convert(key, raw, f"environment variable {name}")
    return Settings(**values)  # type: ignore[arg-type]


def _convert(key: str, raw: object, where: str) -> object:
    """One setting from TOML or env text to its `Settings` type."""
    if key in ("download_dir", "state_dir"):
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{where}: expected a directory path string")
        return Path(raw).expanduser()
    if key == "port":
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFFFF:
            raise ConfigError(f"{where}: expected a port number from 0 to 65535, got {raw!r}")
        return raw
    if key == "encryption":
        choices = [m.value for m in EncryptionMode]
        if raw not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {raw!r}")
        return EncryptionMode(raw)
    if key == "transport":
        if raw not in TRANSPORT_CHOICES:
            raise ConfigError(f"{where}: expected one of tcp, utp, both, got {raw!r}")
        return raw
    if key == "bind":
        return _binds(raw, where)
    assert key == "bootstrap"
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError(f"{where}: expected a list of HOST:PORT strings")
    return tuple(_hostport(item, where) for item in raw)


def _binds(raw: object, where: str) -> tuple[str, ...]:
    """``bind``: an address, or a list of at most one per address family."""
    items = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(items, list)
        or not 1 <= len(items) <= 2
        or not all(isinstance(item, str) and item for item in items)
    ):
        raise ConfigError(
            f"{where}: expected an address such as 0.0.0.0, or one per address family "
            'such as ["0.0.0.0", "::"]'
        )
    hosts = tuple(h.strip("[]") if is_ipv6(h) else h for h in items)
    if len(hosts) == 2 and is_ipv6(hosts[0]) == is_ipv6(hosts[1]):
        raise ConfigError(f"{where}: two addresses of one family; give one IPv4 and one IPv6")
    return hosts


def _hostport(text: str, where: str) -> tuple[str, int]:
    try:
        return parse_hostport(text)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def add_config_option(parser: argparse.ArgumentParser, *, top_level: bool = True) -> None:
    """``--config FILE``; on subcommands the default is SUPPRESS (as for ``--debug``)."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=None if top_level else argparse.SUPPRESS,
        help="read settings from FILE (default: $XDG_CONFIG_HOME/shoal/config.toml)",
    )


def _has_option(parser: argparse.ArgumentParser, dest: str) -> bool:
    return any(action.dest == dest for action in parser._actions)


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    env: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with settings from the environment and config file.

    A bad config exits with status 1 and one line naming the file (or variable) and
    key, when the chosen command uses the settings (``get``, ``seed``, ``dht``, ``daemon``).
    """
    env = os.environ if env is None else env
    subparsers = _subparsers(parser)
    if not _has_option(parser, "config"):
        add_config_option(parser)
        for sub in subparsers.values():
            add_config_option(sub, top_level=False)
    early = Parser(prog="shoal", add_help=False)
    add_config_option(early)
    known, _ = early.parse_known_args(argv)
    error: ConfigError | None = None
    try:
        settings = load_settings(known.config, env)
    except ConfigError as exc:
        # Reported only if the command uses the settings: a broken config must not
        # break `shoal info`, `--help` or `--version`.
        error, settings = exc, Settings()
    for command, dests in _DESTS.items():
        command_parser = subparsers.get(command)
        if command_parser is None:
            continue
        defaults = {
            dest: _arg_value(getattr(settings, key))
            for key, dest in dests.items()
            if getattr(settings, key) is not None
        }
        if command == "daemon" and settings.state_dir is not None:
            defaults["state_dir"] = settings.state_dir / DAEMON_SUBDIR
        command_parser.set_defaults(**defaults)
    if settings.bootstrap:
        _show_bootstrap_default(subparsers, settings.bootstrap)
    args = parser.parse_args(argv)
    if error is not None and getattr(args, "command", None) in _USERS:
        _fail(parser, str(error))
    if (
        getattr(args, "command", None) in _BOOTSTRAP_COMMANDS
        and getattr(args, "bootstrap", None) is None
        and settings.bootstrap
    ):
        args.bootstrap = list(settings.bootstrap)
    if (
        settings.bind is not None
        and len(settings.bind) > 1
        and getattr(args, "command", None) in _BIND_COMMANDS
        and getattr(args, "bind_list", None) is None  # no --bind typed: the setting holds
    ):
        args.bind_list = list(settings.bind)
    return args


def _show_bootstrap_default(
    subparsers: Mapping[str, argparse.ArgumentParser], nodes: Sequence[tuple[str, int]]
) -> None:
    """Name the configured DHT nodes in ``--help`` (they are filled in after parsing)."""
    shown = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in nodes)
    for command in _BOOTSTRAP_COMMANDS:
        sub = subparsers.get(command)
        for action in sub._actions if sub is not None else ():
            if action.dest == "bootstrap" and action.help and "default:" in action.help:
                head = action.help.split("default:")[0].rstrip(" ;(")
                action.help = f"{head} (default: {shown})"


def _arg_value(value: object) -> object:
    """A setting in the form the option's own ``type=`` would have produced."""
    if isinstance(value, tuple):  # bind: the option's default is the first address
        return value[0]
    return value.value if isinstance(value, EncryptionMode) else value


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_FAILURE, f"shoal: {message}\n")
