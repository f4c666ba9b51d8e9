"""``shoal remote``: drive a shoal daemon (or any qBittorrent) over the Web API v2.

Plain stdlib HTTP (`urllib.request` with a cookie jar): log in when credentials are
given, then one API call per action. Works against qBittorrent too, because it only
uses documented endpoints: ``auth/login``, ``torrents/info``, ``torrents/add``,
``torrents/pause``/``stop``, ``torrents/resume``/``start`` and ``torrents/delete``.
"""

from __future__ import annotations

import http.cookiejar
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .common import EXIT_OK, CommandError, add_command
from .output import safe

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from .common import Subparsers

__all__ = ["Remote", "add_parser", "run"]

_TIMEOUT: Final = 30.0  # urllib's socket timeout: a hung daemon must not hang the shell

_EXAMPLES = """\
  shoal remote list --url http://127.0.0.1:8080
  shoal remote add 'magnet:?xt=urn:btih:...' --url http://127.0.0.1:8080 --password-file p
  shoal remote add photos.torrent --savepath /srv/downloads/photos
  shoal remote pause all; shoal remote resume 3f2a; shoal remote remove 3f2a --delete-files
"""


class Remote:
    """A logged-in qBittorrent Web API session (stdlib only)."""

    def __init__(self, url: str) -> None:
        self.base = url.rstrip("/")
        jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self._version: str | None = None

    def call(
        self, method: str, data: dict[str, str] | None = None, *, files: Sequence[Path] = ()
    ) -> bytes:
        url = f"{self.base}/api/v2/{method}"
        headers = {"Referer": self.base + "/"}
        body: bytes | None = None
        if files:
            body, ctype = _multipart(data or {}, files)
            headers["Content-Type"] = ctype
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=_TIMEOUT) as response:
                result: bytes = response.read()
                return result
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip()
            raise CommandError(f"{method}: HTTP {exc.code} {safe(detail)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(
                f"cannot reach {self.base}: {reason}; is the daemon running?"
            ) from None

    def login(self, username: str, password: str) -> None:
        answer = self.call("auth/login", {"username": username, "password": password})
        if answer.strip() not in (b"Ok.", b""):
            raise CommandError("login refused: wrong username or password")

    def new_names(self) -> bool:
        """Web API 2.11+ (qBittorrent 5) renamed pause/resume to stop/start."""
        if self._version is None:
            self._version = self.call("app/webapiVersion").decode().strip()
        parts = tuple(int(p) for p in self._version.split(".")[:2] if p.isdigit())
        return parts >= (2, 11)

    def torrents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(self.call("torrents/info"))
        return result


def _multipart(fields: dict[str, str], files: Sequence[Path]) -> tuple[bytes, str]:
    boundary = "shoal" + secrets.token_hex(12)
    parts = []
    for key, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read '{path}': {exc.strerror or exc}") from None
        name = path.name.replace('"', "")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="torrents"; '
            f'filename="{name}"\r\nContent-Type: application/x-bittorrent\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "remote",
        summary="drive a shoal daemon or qBittorrent over its Web API",
        description=(
            "List, add, pause, resume or remove torrents of a running 'shoal daemon' (or "
            "any qBittorrent) through the qBittorrent Web API v2."
        ),
        examples=_EXAMPLES,
        run=run,
    )
    parser.add_argument(
        "action", choices=["add", "list", "pause", "resume", "remove"], help="what to do"
    )
    parser.add_argument(
        "items",
        nargs="*",
        metavar="ITEM",
        help="add: magnet links or .torrent files; pause/resume/remove: hashes (or a unique "
        "prefix) or 'all'",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the daemon's web URL")
    parser.add_argument("--username", default="admin", help="web UI user name (default admin)")
    parser.add_argument("--password-file", metavar="FILE", type=Path, help="password on line 1")
    parser.add_argument("--savepath", help="add: where to save (the daemon's default if unset)")
    parser.add_argument("--category", help="add: category")
    parser.add_argument("--paused", action="store_true", help="add: do not start yet")
    parser.add_argument(
        "--delete-files", action="store_true", help="remove: delete the downloaded data too"
    )
    parser.add_argument("--json", action="store_true", help="list: print the API's JSON")


def run(args: argparse.Namespace) -> int:
    remote = Remote(args.url)
    if args.password_file is not None:
        from .daemon import _read_password

        remote.login(args.username, _read_password(args.password_file))
    if args.action == "list":
        _list(remote, args.json)
    elif args.action == "add":
        _add(remote, args)
    else:
        hashes = _resolve(remote, args.items)
        if args.action == "remove":
            data = {"hashes": hashes, "deleteFiles": "true" if args.delete_files else "false"}
            remote.call("torrents/delete", data)
        elif args.action == "pause":
            remote.call(
                "torrents/stop" if remote.new_names() else "torrents/pause", {"hashes": hashes}
            )
        else:
            remote.call(
                "torrents/start" if remote.new_names() else "torrents/resume", {"hashes": hashes}
            )
    return EXIT_OK


def _list(remote: Remote, as_json: bool) -> None:
    torrents = remote.torrents()
    if as_json:
        print(json.dumps(torrents, indent=1))
        return
    for t in torrents:
        progress = 100 * float(t.get("progress", 0))
        speed = (int(t.get("dlspeed", 0)) + 1023) // 1024
        print(
            f"{t['hash'][:12]}  {progress:5.1f}%  {t.get('state', '?'):<12}  "
            f"{speed:>6} KiB/s  {safe(str(t.get('name', '')))}"
        )
    if not torrents:
        print("no torrents", file=sys.stderr)


def _add(remote: Remote, args: argparse.Namespace) -> None:
    if not args.items:
        raise CommandError("add needs magnet links or .torrent files")
    urls = [i for i in args.items if i.startswith("magnet:")]
    files = [Path(i) for i in args.items if not i.startswith("magnet:")]
    data = {"urls": "\n".join(urls)} if urls else {}
    data |= {k: v for k, v in (("savepath", args.savepath), ("category", args.category)) if v}
    if args.paused:
        data["paused"] = data["stopped"] = "true"
    answer = remote.call("torrents/add", data, files=files)
    if answer.strip() == b"Fails.":
        raise CommandError("the daemon added nothing (already there, or not a valid torrent)")


def _resolve(remote: Remote, items: list[str]) -> str:
    """Hashes or unique prefixes (or 'all') → the API's ``|``-separated list."""
    if not items:
        raise CommandError("name the torrents: hashes, unique hash prefixes, or 'all'")
    if items == ["all"]:
        return "all"
    known = [t["hash"] for t in remote.torrents()]
    out = []
    for item in items:
        matches = [h for h in known if h.startswith(item.lower())]
        if len(matches) != 1:
            what = "no torrent" if not matches else f"{len(matches)} torrents"
            raise CommandError(f"'{safe(item)}' matches {what}; give more of the hash")
        out.append(matches[0])
    return "|".join(out)
