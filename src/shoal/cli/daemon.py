"""``shoal daemon``: many torrents, kept in SQLite, driven through the qBittorrent Web API.

Prints the web page's URL once it listens (``--json``: one ``listening`` record), then
runs until SIGTERM or Ctrl-C, which stop it within 2 s (resume data saved, the
database already up to date). Credentials: ``--username`` (default ``admin``) and the
first line of ``--password-file``, stored as a PBKDF2 hash in the database. Without a
password file the stored hash is used; with none stored, a temporary password is
printed, as qBittorrent 4.6 does. SIGHUP re-reads ``--ip-filter`` (`_reload_on_sighup`).
See docs/daemon.md.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from .common import EXIT_INTERRUPTED, EXIT_OK, CommandError, add_command, parse_port
from .get import add_client_options, client_config

if TYPE_CHECKING:
    import argparse

    from ..client import Client
    from ..daemon.auth import Authenticator
    from ..daemon.db import Store
    from .common import Subparsers

__all__ = ["add_parser", "run"]

DEFAULT_WEB: Final = ("127.0.0.1", 8080)

_EXAMPLES = """\
  shoal daemon                                       web UI and API on http://127.0.0.1:8080/
  shoal daemon --download-dir ~/Downloads --password-file ~/.shoal-pass
  shoal daemon --web 127.0.0.1:9090 --localhost-bypass --json
"""


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "shoal" / "daemon"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` to listen on (port 0: any free port; the URL printed says which)."""
    import argparse

    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.removeprefix("[").removesuffix("]"), parse_port(port)


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "daemon",
        summary="run a long-lived client with a qBittorrent-compatible Web API",
        description=(
            "Run one client with many torrents until SIGTERM or Ctrl-C. Torrents, "
            "categories, tags and settings live in an SQLite database in --state-dir; a "
            "restart brings them all back. Tools that speak the qBittorrent Web API v2 "
            "(Sonarr, Radarr, qbittorrent-api, 'shoal remote') drive it; /metrics serves "
            "Prometheus metrics and / a web page."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    parser.add_argument(
        "--web",
        metavar="HOST:PORT",
        type=parse_listen,
        default=DEFAULT_WEB,
        help="where the web page and API listen (default 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="database and resume data (default: $XDG_STATE_HOME/shoal/daemon)",
    )
    parser.add_argument(
        "--download-dir", metavar="DIR", type=Path, help="default save path (default ~/Downloads)"
    )
    parser.add_argument("--username", default="admin", help="web UI user name (default admin)")
    parser.add_argument(
        "--password-file", metavar="FILE", type=Path, help="file whose first line is the password"
    )
    parser.add_argument(
        "--localhost-bypass",
        action="store_true",
        help="no login needed for clients on this machine (127.0.0.0/8, ::1)",
    )
    parser.add_argument(
        "--savepath-root",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="another directory the API may save into (repeatable)",
    )
    parser.add_argument(
        "--allow-any-savepath",
        action="store_true",
        help="let API clients save anywhere this user can write (default: download dirs only)",
    )
    parser.add_argument(
        "--web-domain",
        metavar="NAME",
        action="append",
        default=[],
        help="host name the web UI may be reached as, besides IP addresses and localhost",
    )
    add_client_options(parser)


def _read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read '{path}': {exc.strerror or exc}") from exc
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise CommandError(f"'{path}' is empty; put the web UI password on its first line")
    return password


def _check_web_address(host: str, port: int) -> None:
    """Fail early, naming --web, if the web address cannot be bound (the generic
    port-in-use message would point at the peer --port instead)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CommandError(
            f"cannot listen on {host}:{port} for the web UI: {reason}; choose another with --web"
        ) from None


def run(args: argparse.Namespace) -> int:
    password = _read_password(args.password_file) if args.password_file else None
    _check_web_address(*args.web)
    return trio.run(_main, args, password)


async def _main(args: argparse.Namespace, password: str | None) -> int:
    stop: list[int] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    stop.append(signum)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            nursery.start_soon(_session, args, password)
    if stop and stop[0] == signal.SIGINT:
        return EXIT_INTERRUPTED
    return EXIT_OK


async def _credentials(
    args: argparse.Namespace, store: Store, password: str | None
) -> tuple[Authenticator, str | None]:
    """The authenticator, and the temporary password if one had to be made up."""
    from ..daemon.auth import Authenticator, hash_password

    prefs = await store.prefs()
    temporary = None
    if password is not None:
        digest = await trio.to_thread.run_sync(hash_password, password)
        await store.put_prefs({"web_ui_password_hash": digest, "web_ui_username": args.username})
        username = args.username
    elif "web_ui_password_hash" in prefs:
        digest = prefs["web_ui_password_hash"]
        username = prefs.get("web_ui_username", args.username)
    else:
        temporary = secrets.token_urlsafe(9)
        digest = await trio.to_thread.run_sync(hash_password, temporary)
        username = args.username
    return Authenticator(username, digest, bypass_localhost=args.localhost_bypass), temporary


async def _session(args: argparse.Namespace, password: str | None) -> None:
    from ..client import open_client
    from ..daemon.db import Store
    from ..daemon.server import open_daemon
    from ..daemon.state import DaemonConfig

    state_dir: Path = (args.state_dir or _default_state_dir()).absolute()
    download_dir: Path = (args.download_dir or Path.home() / "Downloads").absolute()
    await trio.Path(state_dir).mkdir(parents=True, exist_ok=True)
    await trio.Path(download_dir).mkdir(parents=True, exist_ok=True)
    config = DaemonConfig(
        download_dir=download_dir,
        state_dir=state_dir,
        allow_any_savepath=args.allow_any_savepath,
        extra_roots=tuple(p.absolute() for p in args.savepath_root),
    )
    store = await Store.open(state_dir / "shoal.sqlite3")
    try:
        auth, temporary = await _credentials(args, store, password)
        async with (
            open_client(client_config(args, state_dir=state_dir)) as client,
            open_daemon(
                client,
                store,
                config,
                auth,
                web=args.web,
                names=frozenset(n.lower() for n in args.web_domain),
            ) as running,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(_reload_on_sighup, args.ip_filter, client)
            _announce(args, running.url, client.listen_address, auth.username, temporary)
            await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


async def _reload_on_sighup(
    path: Path | None, client: Client, *, task_status: trio.TaskStatus[None]
) -> None:
    """SIGHUP: read the ``--ip-filter`` file again and swap it in (`Client.set_ip_filter`:
    every part of the client at once, connections to newly blocked addresses closed).

    If the file cannot be read or parsed (unreadable, corrupt gzip, too large), the old
    list stays and one line on stderr says why; bad lines are reported and skipped as
    at start. Parsing runs in a thread: a large list takes about a second. The signal
    handler is installed before the daemon says it listens (``task_status``), so a
    SIGHUP never finds the default action (exit) in place.
    """
    from .privacy import load_ip_filter

    with trio.open_signal_receiver(signal.SIGHUP) as hangups:
        task_status.started()
        async for _ in hangups:
            if path is None:
                _log("SIGHUP: no --ip-filter to reload")
                continue
            try:
                flt = await trio.to_thread.run_sync(load_ip_filter, path)
            except CommandError as exc:
                _log(f"IP filter not reloaded, keeping the previous list: {exc}")
                continue
            closed = client.set_ip_filter(flt)
            _log(f"IP filter reloaded from {path}: {len(flt)} ranges, {closed} connections closed")


def _log(message: str) -> None:
    print(f"shoal: {message}", file=sys.stderr, flush=True)


def _announce(
    args: argparse.Namespace,
    url: str,
    peer_address: tuple[str, int],
    username: str,
    temporary: str | None,
) -> None:
    if args.json:
        record = {
            "event": "listening",
            "url": url,
            "peer_port": peer_address[1],
            "username": username,
        }
        if temporary is not None:
            record["temporary_password"] = temporary
        print(json.dumps(record), flush=True)
    else:
        print(f"shoal daemon: web UI and API at {url}", flush=True)
    if temporary is not None and not args.json:
        print(
            f"shoal: no password set; temporary password for '{username}': {temporary} "
            "(use --password-file to set one)",
            file=sys.stderr,
            flush=True,
        )
