"""``shoal daemon`` takes the config file and ``SHOAL_*`` environment like ``get``:
bind, port, encryption, bootstrap, download and state directories (the daemon's own
database under ``<state_dir>/daemon``); flags still win."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests

from shoal.cli import build_parser
from shoal.cli.config_file import parse_args
from tests.integration.peers import free_port

from .helpers import start_daemon_process, stop_daemon_process

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME, so a real ~/.config/shoal/config.toml cannot leak in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_environment_and_config_file_are_daemon_defaults(tmp_path: Path, home: Path) -> None:
    config = tmp_path / "shoal.toml"
    config.write_text(
        'bind = "127.0.0.2"\nport = 7001\nencryption = "disable"\n'
        'bootstrap = ["127.0.0.1:9"]\nstate_dir = "st"\ndownload_dir = "dl"\n'
        'transport = "utp"\n'
    )
    args = parse_args(build_parser(), ["--config", str(config), "daemon"], {})
    assert (args.bind, args.port, args.encryption) == ("127.0.0.2", 7001, "disable")
    assert args.bootstrap == [("127.0.0.1", 9)]
    assert args.transport == "utp"
    seed = parse_args(build_parser(), ["--config", str(config), "seed", "x", "--data", "d"], {})
    assert seed.transport == "utp"
    assert (args.state_dir, args.download_dir) == (tmp_path / "st" / "daemon", tmp_path / "dl")
    # The environment beats the file; flags beat both.
    env = {"SHOAL_PORT": "7002", "SHOAL_ENCRYPTION": "require", "SHOAL_STATE_DIR": "/s"}
    env["SHOAL_TRANSPORT"] = "both"
    argv = ["--config", str(config), "daemon", "--port", "7003", "--bootstrap", "127.0.0.1:10"]
    args = parse_args(build_parser(), argv, env)
    assert (args.port, args.encryption, args.bootstrap) == (7003, "require", [("127.0.0.1", 10)])
    assert str(args.state_dir) == "/s/daemon"
    assert args.transport == "both"
    # Nothing set: the daemon's state lives under the XDG state directory, as before.
    args = parse_args(build_parser(), ["daemon"], {})
    assert args.state_dir == home / ".local" / "state" / "shoal" / "daemon"
    assert args.download_dir is None
    assert args.bootstrap is None


@pytest.mark.parametrize("name", ["SHOAL_PORT", "SHOAL_TRANSPORT"])
def test_bad_setting_is_one_line_for_the_daemon(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(build_parser(), ["daemon"], {name: "nope"})
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"shoal: environment variable {name}")
    assert len(err.splitlines()) == 1


def test_the_running_daemon_uses_the_environment(tmp_path: Path) -> None:
    """The real command: database under SHOAL_STATE_DIR/daemon, save path, peer port,
    bind address and encryption as the API reports them."""
    web_port, peer_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    settings = {
        "SHOAL_STATE_DIR": str(tmp_path / "state"),
        "SHOAL_DOWNLOAD_DIR": str(tmp_path / "dl"),
        "SHOAL_BIND": "127.0.0.1",
        "SHOAL_PORT": str(peer_port),
        "SHOAL_ENCRYPTION": "require",
        "SHOAL_BOOTSTRAP": "127.0.0.1:9",
    }
    (tmp_path / "pw").write_text("secret words\n")
    daemon = start_daemon_process(
        tmp_path, web_port, ["--password-file", str(tmp_path / "pw")], settings
    )
    try:
        assert daemon.record["peer_port"] == peer_port
        with requests.Session() as web:
            login = {"username": "admin", "password": "secret words"}
            assert web.post(daemon.url + "/api/v2/auth/login", data=login, timeout=30).ok
            prefs = web.get(daemon.url + "/api/v2/app/preferences", timeout=30).json()
    finally:
        assert stop_daemon_process(daemon) == 0
    assert prefs["save_path"] == str(tmp_path / "dl")
    assert (prefs["listen_port"], prefs["current_interface_address"]) == (peer_port, "127.0.0.1")
    assert prefs["encryption"] == 1  # require
    assert (tmp_path / "state" / "daemon" / "shoal.sqlite3").is_file()
