"""Config file + ``SHOAL_*`` environment: locations, precedence, and one-line errors."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.cli import build_parser, main
from shoal.cli import get as get_cmd
from shoal.cli.common import bind_hosts
from shoal.cli.config_file import (
    ConfigError,
    Settings,
    default_config_path,
    default_state_dir,
    load_settings,
    parse_args,
)
from shoal.config import EncryptionMode

from .helpers import SUBPROCESS_TIMEOUT

if TYPE_CHECKING:
    import argparse

    from _pytest.capture import CaptureFixture

MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME, so a real ~/.config/shoal/config.toml cannot leak in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return home


def parse(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    return parse_args(build_parser(), argv, env or {})


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_locations_follow_xdg(tmp_path: Path, home: Path) -> None:
    assert default_config_path({}) == home / ".config" / "shoal" / "config.toml"
    assert default_state_dir({}) == home / ".local" / "state" / "shoal"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_STATE_HOME": str(tmp_path / "s")}
    assert default_config_path(env) == tmp_path / "c" / "shoal" / "config.toml"
    assert default_state_dir(env) == tmp_path / "s" / "shoal"
    # The XDG spec: a relative value is invalid and must be ignored.
    relative = {"XDG_CONFIG_HOME": "rel", "XDG_STATE_HOME": "rel"}
    assert default_config_path(relative) == default_config_path({})
    assert default_state_dir(relative) == default_state_dir({})


def test_no_config_anywhere_gives_the_builtin_defaults(home: Path) -> None:
    args = parse(["get", MAGNET])
    assert (args.output, args.port, args.bind, args.encryption) == (".", 6881, "0.0.0.0", "prefer")
    assert args.transport == "both"
    assert get_cmd.client_config(args).transports == ("utp", "tcp")  # uTP first (issue 13)
    assert args.bootstrap is None  # get.client_config then uses the public routers
    assert args.state_dir == home / ".local" / "state" / "shoal"


def test_file_in_the_xdg_location_is_read(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    write_config(tmp_path / "xdg" / "shoal" / "config.toml", 'port = 51413\nbind = "127.0.0.1"\n')
    args = parse(["get", MAGNET], env)
    assert (args.port, args.bind) == (51413, "127.0.0.1")


FILE = """\
download_dir = "~/from-file"
port = 1111
encryption = "disable"
bootstrap = ["127.0.0.8:6881", "[::1]:7000"]
state_dir = "/state/from-file"
bind = "127.0.0.2"
transport = "tcp"
"""

ENV = {
    "SHOAL_DOWNLOAD_DIR": "/dl/from-env",
    "SHOAL_PORT": "2222",
    "SHOAL_ENCRYPTION": "require",
    "SHOAL_BOOTSTRAP": "127.0.0.9:9, 127.0.0.10:10",
    "SHOAL_STATE_DIR": "/state/from-env",
    "SHOAL_BIND": "127.0.0.3",
    "SHOAL_TRANSPORT": "utp",
}

FLAGS = [
    "-o", "/dl/from-flag",
    "--port", "3333",
    "--encryption", "prefer",
    "--bootstrap", "127.0.0.5:5",
    "--state-dir", "/state/from-flag",
    "--bind", "127.0.0.4",
    "--transport", "both",
]  # fmt: skip


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path, home: Path) -> None:
    conf = write_config(tmp_path / "c.toml", FILE)
    base = ["--config", str(conf), "get", MAGNET]

    from_file = parse(base)
    assert Path(from_file.output) == home / "from-file"  # ~ is expanded
    assert from_file.port == 1111
    assert from_file.encryption == "disable"
    assert from_file.bootstrap == [("127.0.0.8", 6881), ("::1", 7000)]
    assert from_file.state_dir == Path("/state/from-file")
    assert from_file.bind == "127.0.0.2"
    assert from_file.transport == "tcp"

    from_env = parse(base, ENV)
    assert Path(from_env.output) == Path("/dl/from-env")
    assert from_env.port == 2222
    assert from_env.encryption == "require"
    assert from_env.bootstrap == [("127.0.0.9", 9), ("127.0.0.10", 10)]
    assert from_env.state_dir == Path("/state/from-env")
    assert from_env.bind == "127.0.0.3"
    assert from_env.transport == "utp"

    flagged = parse([*base, *FLAGS], ENV)
    assert Path(flagged.output) == Path("/dl/from-flag")
    assert flagged.port == 3333
    assert flagged.encryption == "prefer"
    assert flagged.bootstrap == [("127.0.0.5", 5)]  # not appended to the configured list
    assert flagged.state_dir == Path("/state/from-flag")
    assert flagged.bind == "127.0.0.4"
    assert flagged.transport == "both"

    # And the engine really receives them.
    config = get_cmd.client_config(from_env, state_dir=from_env.state_dir)
    assert config.port == 2222
    assert config.encryption is EncryptionMode.REQUIRE
    assert config.bootstrap == (("127.0.0.9", 9), ("127.0.0.10", 10))
    assert config.bind_host == "127.0.0.3"
    assert config.state_dir == Path("/state/from-env")
    assert config.transports == ("utp",)


def test_relative_dirs_are_relative_to_the_file_in_it_and_to_cwd_in_the_env(
    tmp_path: Path,
) -> None:
    conf = write_config(tmp_path / "etc" / "c.toml", 'download_dir = "dl"\nstate_dir = "st"\n')
    settings = load_settings(conf, {})
    assert settings.download_dir == tmp_path / "etc" / "dl"
    assert settings.state_dir == tmp_path / "etc" / "st"
    from_env = load_settings(conf, {"SHOAL_DOWNLOAD_DIR": "here"})
    assert from_env.download_dir == Path("here")


def test_one_layer_can_set_some_keys_and_leave_the_rest(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "c.toml", 'port = 1111\nbind = "127.0.0.2"\n')
    args = parse(["--config", str(conf), "get", MAGNET], {"SHOAL_PORT": "0"})
    assert (args.port, args.bind, args.encryption) == (0, "127.0.0.2", "prefer")


def test_config_flag_also_works_after_the_command(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "c.toml", "port = 4444\n")
    assert parse(["get", MAGNET, "--config", str(conf)]).port == 4444
    assert parse(["get", f"--config={conf}", MAGNET]).port == 4444


def test_seed_and_dht_take_only_their_settings(tmp_path: Path) -> None:
    env = {**ENV, "SHOAL_PORT": "2222"}
    seed = parse(["seed", "x.torrent", "--data", str(tmp_path)], env)
    assert (seed.port, seed.bind, seed.encryption) == (2222, "127.0.0.3", "require")
    assert seed.transport == "utp"
    assert seed.bootstrap == [("127.0.0.9", 9), ("127.0.0.10", 10)]
    dht = parse(["dht"], env)
    assert dht.bind == "127.0.0.3"
    assert dht.bootstrap == [("127.0.0.9", 9), ("127.0.0.10", 10)]
    assert dht.port == 0  # a standalone node keeps its own port and state file
    assert dht.state_file is None
    peers = parse(["dht", "get-peers", "ab" * 20], env)
    assert peers.bootstrap == [("127.0.0.9", 9), ("127.0.0.10", 10)]
    assert not hasattr(parse(["info", MAGNET], env), "port")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("prot = 1\n", "key 'prot': unknown setting"),
        ('port = "many"\n', "key 'port': expected a port number"),
        ("port = 70000\n", "key 'port': expected a port number"),
        ("port = true\n", "key 'port': expected a port number"),
        ('encryption = "yes"\n', "key 'encryption': expected one of prefer, require, disable"),
        ('transport = "quic"\n', "key 'transport': expected one of tcp, utp, both"),
        ('bootstrap = "a:1"\n', "key 'bootstrap': expected a list of HOST:PORT strings"),
        ('bootstrap = ["nohost"]\n', "key 'bootstrap': expected HOST:PORT"),
        ("download_dir = 3\n", "key 'download_dir': expected a directory path"),
        ('bind = ""\n', "key 'bind': expected an address"),
        ('bind = ["127.0.0.1", "127.0.0.2"]\n', "key 'bind': two addresses of one family"),
        ('bind = ["::1", "[::2]"]\n', "key 'bind': two addresses of one family"),
        ('bind = ["a", "::1", "b"]\n', "key 'bind': expected an address"),
        ("bind = [1]\n", "key 'bind': expected an address"),
        ("bind = []\n", "key 'bind': expected an address"),
        ("port = [\n", "is not valid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, needle: str, capsys: CaptureFixture[str]
) -> None:
    conf = write_config(tmp_path / "bad.toml", text)
    assert main(["--config", str(conf), "get", MAGNET]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"shoal: config file '{conf}'")
    assert needle in err
    assert err.count("\n") == 1


def test_help_and_other_commands_work_with_a_broken_config(
    tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    conf = write_config(tmp_path / "bad.toml", "port = [\n")
    assert main(["--config", str(conf), "get", "--help"]) == 0
    assert "usage: shoal get" in capsys.readouterr().out
    # Commands that take no settings are not blocked by a broken config either.
    assert main(["--config", str(conf), "info", MAGNET, "--json"]) == 0
    assert '"info_hash"' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parse(["dht"], {"SHOAL_BOOTSTRAP": "nohost"})


@pytest.mark.integration
def test_file_and_environment_reach_a_real_shoal_get(tmp_path: Path) -> None:
    """A real process: bind/port from the XDG file, bootstrap and state dir from env."""
    write_config(tmp_path / "xdg" / "shoal" / "config.toml", 'bind = "127.0.0.1"\nport = 0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env |= {
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "SHOAL_BOOTSTRAP": "127.0.0.1:9",  # discard port: loopback only, nobody answers
        "SHOAL_STATE_DIR": str(tmp_path / "state"),
    }
    argv = [MAGNET, "-o", str(tmp_path / "out"), "--no-seed", "--timeout", "1", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "shoal", "get", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1  # --timeout: no metadata from an empty swarm
    listening = json.loads(result.stdout.splitlines()[0])
    assert listening["event"] == "listening"
    assert listening["host"] == "127.0.0.1"
    assert listening["port"] != 6881  # port = 0 from the file: any free port
    assert (tmp_path / "state" / "dht.json").is_file()  # SHOAL_STATE_DIR was used


@pytest.mark.parametrize("command", [["dht"], ["dht", "get-peers", "ab" * 20], ["get", MAGNET]])
def test_bind_may_name_one_address_per_family(tmp_path: Path, command: list[str]) -> None:
    """BEP 32: a TOML list or a comma-separated SHOAL_BIND acts like --bind given twice."""
    conf = write_config(tmp_path / "c.toml", 'bind = ["127.0.0.2", "::1"]\n')
    base = ["--config", str(conf), *command]
    from_file = parse(base)
    assert from_file.bind == "127.0.0.2"
    assert bind_hosts(from_file) == ("127.0.0.2", "::1")
    from_env = parse(base, {"SHOAL_BIND": "[::2], 127.0.0.3"})
    assert bind_hosts(from_env) == ("::2", "127.0.0.3")
    one = parse(base, {"SHOAL_BIND": "127.0.0.4"})
    assert bind_hosts(one) == ("127.0.0.4",)
    flagged = parse([*base, "--bind", "127.0.0.5"])  # flags replace the setting
    assert bind_hosts(flagged) == ("127.0.0.5",)
    both = parse([*base, "--bind", "::5", "--bind", "127.0.0.5"])
    assert bind_hosts(both) == ("::5", "127.0.0.5")
    if command[0] == "get":
        config = get_cmd.client_config(from_file, state_dir=tmp_path)
        assert (config.bind_host, config.bind_hosts) == ("127.0.0.2", ("127.0.0.2", "::1"))


def test_bad_bind_in_the_environment(capsys: CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["dht"], {"SHOAL_BIND": "127.0.0.1,127.0.0.2"})
    assert exc.value.code == 1
    assert "SHOAL_BIND: two addresses of one family" in capsys.readouterr().err


def test_bad_environment_names_the_variable(capsys: CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["get", MAGNET], {"SHOAL_PORT": "http"})
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "shoal: environment variable SHOAL_PORT: expected a port number " + (
        "from 0 to 65535, got 'http'\n"
    )


def test_missing_explicit_config_is_an_error_but_a_missing_default_is_not(
    tmp_path: Path, capsys: CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["--config", str(missing), "seed", "x.torrent", "--data", "."]) == 1
    assert capsys.readouterr().err == f"shoal: config file '{missing}' does not exist\n"
    assert load_settings(None, {"XDG_CONFIG_HOME": str(tmp_path)}).port is None


def test_empty_env_values_count_as_unset() -> None:
    assert load_settings(None, {"SHOAL_PORT": "", "SHOAL_BOOTSTRAP": ""}) == load_settings(None, {})


def test_settings_over_keeps_the_lower_layer_where_unset() -> None:
    low = Settings(port=1, bind=("a",))
    assert Settings(port=2).over(low) == Settings(port=2, bind=("a",))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(
    st.text(alphabet=string.printable, max_size=80)
    | st.builds(
        lambda key, value: f"{key} = {value}\n",
        st.sampled_from(["port", "bind", "encryption", "bootstrap", "state_dir", "download_dir"]),
        st.sampled_from(['"x"', "1", "-1", "[]", '["a:1"]', "{}", "1.5", "true", '""', "99999"]),
    )
)
def test_any_file_gives_settings_or_a_config_error(tmp_path: Path, text: str) -> None:
    conf = write_config(tmp_path / "fuzz.toml", text)
    message = None
    try:
        result = load_settings(conf, {})
    except ConfigError as exc:
        message = str(exc)
    if message is None:
        assert isinstance(result, Settings)
    else:
        assert str(conf) in message
        assert "\n" not in message


def test_help_shows_the_effective_defaults(tmp_path: Path, capsys: CaptureFixture[str]) -> None:
    """``SHOAL_ENCRYPTION=require shoal get --help`` says require, not the built-in prefer."""
    conf = write_config(
        tmp_path / "c.toml", 'port = 7001\nbootstrap = ["127.0.0.8:6881", "[::1]:7000"]\n'
    )
    env = {"SHOAL_ENCRYPTION": "require", "SHOAL_BIND": "127.0.0.3"}
    for command in ("get", "seed"):
        with pytest.raises(SystemExit) as exit_info:
            parse(["--config", str(conf), command, "--help"], env)
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
        assert "(default: require)" in text
        assert "(default: prefer)" not in text
        assert "(default: 7001)" in text
        assert "(default: 127.0.0.3)" in text
        assert "(default: 127.0.0.8:6881, [::1]:7000)" in text
    with pytest.raises(SystemExit):
        parse(["get", "--help"], {})
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: prefer)" in text
    assert "(default: 6881)" in text
    assert "default: the public routers" in text
