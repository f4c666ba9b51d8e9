"""``shoal daemon``'s command line: usage errors, one-line failures, Ctrl-C and SIGTERM
exit statuses, and the URL printed once it listens."""

from __future__ import annotations

import logging
import signal
import socket
from typing import TYPE_CHECKING

import pytest

from shoal.cli import main
from tests.integration.peers import free_port

from .helpers import start_daemon_process, stop_daemon_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def _restore_shoal_logger() -> Iterator[None]:
    """`main` configures the ``shoal`` logger; undo it so other tests stay independent."""
    logger = logging.getLogger("shoal")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_usage_errors_and_one_line_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["daemon", "--web", "nope"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err
    assert main(["daemon", "--password-file", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("shoal: cannot read ")
    assert len(err.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["daemon", "--web", f"127.0.0.1:{port}", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"shoal: cannot listen on 127.0.0.1:{port} for the web UI")
    assert err.endswith("choose another with --web")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_prints_its_url_and_stops_on_signals(tmp_path: Path, sig: int, status: int) -> None:
    port = free_port("127.0.0.1")
    args = ["--state-dir", str(tmp_path / "state"), "--download-dir", str(tmp_path / "dl")]
    args += ["--bind", "127.0.0.1", "--port", "0", "--bootstrap", "127.0.0.1:9"]
    daemon = start_daemon_process(tmp_path, port, args)
    try:
        assert daemon.url == f"http://127.0.0.1:{port}"
    finally:
        assert stop_daemon_process(daemon, sig) == status
    # No password given or stored: a temporary one is made up and printed.
    assert daemon.record["username"] == "admin"
    assert len(daemon.record["temporary_password"]) >= 12
