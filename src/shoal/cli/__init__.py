"""The ``shoal`` command line: argument parsing, logging setup and the exit-code contract.

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C).

Every failure the user can act on is printed as ONE line on stderr, ``shoal: <what
went wrong>; <what to do>``, never as a traceback; ``--debug`` adds the traceback.
Subcommands are modules exposing ``add_parser(subparsers)`` and ``run(args) -> int``;
to add one, write the module and append it to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Final

from .._version import __version__
from ..errors import ShoalError
from . import config_file, create, daemon, demo, dht, get, info, remote, seed
from .common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    Parser,
    add_global_options,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "command_names", "main"]

#: Every subcommand, in the order ``shoal --help`` lists them.
COMMANDS: Final[Sequence[Command]] = (create, info, get, seed, dht, demo, daemon, remote)

_EPILOG = """\
examples:
  shoal demo                                  try it: download from a local swarm, offline
  shoal get 'magnet:?xt=urn:btih:...' -o ~/Downloads
                                              download through the DHT, then seed
  shoal get photos.torrent --no-seed          download, exit once verified
  shoal seed photos.torrent --data ~/Pictures seed existing data until Ctrl-C
  shoal create ./photos -o photos.torrent     hash a directory, print its magnet link
  shoal info photos.torrent                   show what a .torrent contains
  shoal info 'magnet:?xt=urn:btih:...'        decode a magnet link
  shoal dht get-peers INFOHASH                look up peers for an info-hash
  shoal daemon --download-dir ~/Downloads     run a daemon with a qBittorrent-compatible API
  shoal remote list --url http://127.0.0.1:8080
                                              list a daemon's (or qBittorrent's) torrents

settings: flags > SHOAL_* environment variables > config file > defaults (docs/cli.md).

exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.
Run 'shoal COMMAND --help' for a command's options and examples.
"""

_LOG_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


def build_parser() -> Parser:
    """The full parser; built per call so tests can monkeypatch a command's `run`."""
    parser = Parser(
        prog="shoal",
        description="shoal: a trackerless BitTorrent client (Mainline DHT, magnet links).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    add_global_options(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the process exit status (never raises SystemExit)."""
    parser = build_parser()
    try:
        args = config_file.parse_args(parser, argv)
        if args.command is None:
            parser.error("no command given; choose one of: " + ", ".join(command_names(parser)))
    except SystemExit as exc:  # --help, --version and usage errors exit inside argparse
        return _exit_status(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    _configure_logging(args.verbose)
    return _run_guarded(args)


def _run_guarded(args: argparse.Namespace) -> int:
    """Run the chosen command, turning every exception into one line and an exit code."""
    try:
        status: int = args.run(args)
    except BaseException as exc:  # classified below; SystemExit and friends are re-raised
        leaf = _single_leaf(exc)
        if isinstance(leaf, KeyboardInterrupt):
            _report("interrupted", exc, debug=args.debug)
            return EXIT_INTERRUPTED
        if not isinstance(leaf, Exception):
            raise
        if isinstance(leaf, BrokenPipeError):
            return _stdout_closed()
        if isinstance(leaf, ShoalError):
            _report(str(leaf), exc, debug=args.debug)
        elif isinstance(leaf, OSError) and leaf.errno == errno.EADDRINUSE:
            _report(_port_in_use(args), exc, debug=args.debug)
        elif isinstance(leaf, OSError):
            _report(_describe_os_error(leaf), exc, debug=args.debug)
        else:
            hint = "" if args.debug else " (rerun with --debug for the traceback)"
            _report(f"internal error: {type(leaf).__name__}: {leaf}{hint}", exc, debug=args.debug)
        return EXIT_FAILURE
    return status


def _single_leaf(exc: BaseException) -> BaseException:
    """Look through (nested) exception groups that hold exactly one exception.

    Trio nurseries wrap even a lone child error in an ExceptionGroup; the user should
    see the error, not the wrapping. Groups of several errors are reported as they are.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _report(message: str, exc: BaseException, *, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"shoal: {message}", file=sys.stderr)


def _describe_os_error(exc: OSError) -> str:
    """``cannot use 'x': No such file or directory`` from any OSError, with or without a path."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    return f"cannot use '{exc.filename}': {reason}"


def _port_in_use(args: argparse.Namespace) -> str:
    """Binding the listener or DHT socket failed: name the port and the way out."""
    port = getattr(args, "port", None)
    where = f"port {port}" if port else "the port"
    bind = getattr(args, "bind", None)
    on = f" on {bind}" if bind else ""
    return f"{where}{on} is already in use; choose another with --port (0 picks a free one)"


def _stdout_closed() -> int:
    """The reader of our stdout went away (``shoal info x | head``): stop quietly.

    Point stdout at devnull so the interpreter's final flush does not raise again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests)
        pass
    return EXIT_FAILURE


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return EXIT_USAGE


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommand names `parser` accepts, in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at emit time (like logging's last-resort handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Without ``-v``, skip the torrent's own log of a fatal error.

        The same error arrives as a `TorrentError` event, which the command prints as
        its one final line; logging it too would make every such failure two lines.
        """
        if (
            record.name == "shoal.torrent"
            and record.levelno == logging.ERROR
            and logging.getLogger("shoal").level >= logging.WARNING
        ):
            return False
        return super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # logging's contract: a failing handler must not crash the caller
            self.handleError(record)


def _configure_logging(verbose: int) -> None:
    """``-v`` → INFO, ``-vv`` → DEBUG for shoal's loggers; installs one stderr handler."""
    logger = logging.getLogger("shoal")
    logger.setLevel(_LOG_LEVELS[min(verbose, len(_LOG_LEVELS) - 1)])
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("shoal: %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
