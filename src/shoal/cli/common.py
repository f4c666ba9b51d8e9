"""Parser plumbing shared by every subcommand: one-line usage errors and the command contract.

Each subcommand module exposes ``add_parser(subparsers)`` and ``run(args) -> int`` and
is listed once in ``shoal.cli.COMMANDS``. Modules build their parser with `add_command`
so that every subcommand gets the same formatter, the same global options and an
examples epilog.
"""

from __future__ import annotations

import argparse
import ipaddress
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeAlias

from ..errors import ShoalError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BindAction",
    "Command",
    "CommandError",
    "Parser",
    "Subparsers",
    "add_command",
    "add_global_options",
    "bind_hosts",
    "is_ipv6",
    "parse_hostport",
    "parse_port",
]

EXIT_OK = 0
EXIT_FAILURE = 1
#: argparse's own convention for bad command lines.
EXIT_USAGE = 2
#: 128 + SIGINT, what shells report for a Ctrl-C'd program.
EXIT_INTERRUPTED = 130

Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


class CommandError(ShoalError):
    """A failure the user can act on. `main` prints it as one line and exits with 1.

    The message should say what went wrong *and* what to do, e.g.
    ``"'x.torrent' already exists; use --force to overwrite it"``.
    """


class Command(Protocol):
    """What a subcommand module provides (modules satisfy this protocol structurally)."""

    def add_parser(self, subparsers: Subparsers) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, not a usage block plus an error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Add ``--debug`` and ``-v`` so they work before *and* after the subcommand name.

    On subparsers the defaults are SUPPRESS: otherwise the subparser's default would
    overwrite a value the user gave before the subcommand name.
    """
    debug_default = False if top_level else argparse.SUPPRESS
    verbose_default = 0 if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--debug",
        action="store_true",
        default=debug_default,
        help="show the full traceback when something fails",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=verbose_default,
        help="log more: -v for progress messages, -vv for protocol debugging",
    )


def add_command(
    subparsers: Subparsers,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
    run: Callable[[argparse.Namespace], int],
) -> Parser:
    """Create a subcommand parser with the shared formatter, global options and examples."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser, top_level=False)
    parser.set_defaults(run=run)
    return parser


def positive_seconds(most: float) -> Callable[[str], float]:
    """An argparse ``type=`` for a duration in seconds, above 0 and below `most`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not 0 < value < most:
            raise argparse.ArgumentTypeError(f"must be between 0 and {most:,.0f} seconds: {text!r}")
        return value

    return parse


def parse_port(text: str) -> int:
    """An argparse ``type=`` for a port number (0 allowed: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def parse_hostport(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); port 0 is refused (nobody listens there)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    port_number = parse_port(port)
    if port_number == 0:
        raise argparse.ArgumentTypeError(f"port 0 is not an address to contact: {text!r}")
    return host.removeprefix("[").removesuffix("]"), port_number


def is_ipv6(host: str) -> bool:
    """Whether `host` is an IPv6 literal (``[::1]`` too); a host name counts as IPv4."""
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False  # a host name binds as IPv4, as the sockets do


class BindAction(argparse.Action):
    """``--bind ADDR``, once per address family (BEP 32 dual stack).

    ``args.bind`` stays the first address given (or the default), a string as before;
    every address given is in ``args.bind_list`` (read both through `bind_hosts`). The
    list lives in its own attribute, not in the option's default, so that a default
    from the config file is replaced by the flags, never appended to.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        if not isinstance(values, str) or not values:
            raise argparse.ArgumentError(self, "expected an address")
        host = values.strip("[]") if is_ipv6(values) else values
        given: list[str] = list(getattr(namespace, "bind_list", None) or [])
        if any(is_ipv6(h) == is_ipv6(host) for h in given):
            family = "IPv6" if is_ipv6(host) else "IPv4"
            raise argparse.ArgumentError(self, f"given twice for {family}: once per family")
        given.append(host)
        namespace.bind_list = given
        setattr(namespace, self.dest, given[0])


def bind_hosts(args: argparse.Namespace) -> tuple[str, ...]:
    """The addresses of ``--bind`` (one per family), or the single default."""
    given: list[str] | None = getattr(args, "bind_list", None)
    return tuple(given) if given else (str(args.bind),)
