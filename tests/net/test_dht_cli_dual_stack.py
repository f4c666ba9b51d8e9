"""``--bind`` once per address family: ``shoal dht`` and ``shoal get/seed`` (BEP 32)."""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from shoal.cli import dht as dht_cli
from shoal.cli import get, seed
from shoal.cli.common import Parser, bind_hosts
from shoal.cli.config_file import parse_args
from shoal.dht_client import open_dht_node

from .shoal_cli import SHOAL, read_json_lines, shoal_process

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

IH = "cd" * 20
DUAL = [("127.0.0.1", 0), ("::1", 0)]


def _parser() -> Parser:
    parser = Parser(prog="shoal")
    sub = parser.add_subparsers(dest="command")
    get.add_parser(sub)
    seed.add_parser(sub)
    dht_cli.add_parser(sub)
    return parser


def _parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


def test_one_bind_is_unchanged() -> None:
    args = _parse("dht", "--bind", "127.0.0.1")
    assert args.bind == "127.0.0.1"
    assert bind_hosts(args) == ("127.0.0.1",)
    assert bind_hosts(_parse("dht")) == ("0.0.0.0",)


def test_one_bind_per_family() -> None:
    args = _parse("dht", "--bind", "::1", "--bind", "127.0.0.1")
    assert args.bind == "::1"
    assert bind_hosts(args) == ("::1", "127.0.0.1")
    args = _parse("dht", "get-peers", IH, "--bind", "[::1]", "--bind", "127.0.0.2")
    assert bind_hosts(args) == ("::1", "127.0.0.2")


@pytest.mark.parametrize(
    "binds", [("127.0.0.1", "127.0.0.2"), ("::1", "::"), ("localhost", "127.0.0.1")]
)
def test_two_binds_of_one_family_are_a_usage_error(
    binds: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse("dht", "--bind", binds[0], "--bind", binds[1])
    assert exit_info.value.code == 2
    assert "once per family" in capsys.readouterr().err


ips = st.ip_addresses().map(str)


@given(st.lists(ips, min_size=1, max_size=3))
def test_bind_parsing_is_one_address_per_family(hosts: list[str]) -> None:
    """Any IP literals: accepted exactly when no family repeats, kept in order."""
    argv = [a for host in hosts for a in ("--bind", host)]
    repeated = len({":" in h for h in hosts}) < len(hosts)
    if repeated:
        with pytest.raises(SystemExit) as exit_info:
            _parse("dht", *argv)
        assert exit_info.value.code == 2
        return
    args = _parse("dht", *argv)
    assert bind_hosts(args) == tuple(hosts)
    assert args.bind == hosts[0]


def test_flags_replace_the_configured_bind(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('bind = "127.0.0.3"\n')
    from_file = parse_args(_parser(), ["--config", str(conf), "dht"], {})
    assert bind_hosts(from_file) == ("127.0.0.3",)
    flagged = parse_args(
        _parser(), ["--config", str(conf), "dht", "--bind", "::1", "--bind", "127.0.0.4"], {}
    )
    assert bind_hosts(flagged) == ("::1", "127.0.0.4")


def test_get_passes_both_families_to_the_client() -> None:
    args = _parse("get", "x.torrent", "--bind", "127.0.0.5", "--bind", "::1")
    config = get.client_config(args)
    assert (config.bind_host, config.bind_hosts) == ("127.0.0.5", ("127.0.0.5", "::1"))
    single = get.client_config(_parse("get", "x.torrent", "--bind", "127.0.0.5"))
    assert (single.bind_host, single.bind_hosts) == ("127.0.0.5", ())
    seeding = _parse("seed", "x.torrent", "--data", ".", "--bind", "::1", "--bind", "127.0.0.5")
    assert get.client_config(seeding).bind_hosts == ("::1", "127.0.0.5")


async def test_dual_stack_dht_process_serves_both_families(tmp_path: Path) -> None:
    """``shoal dht --bind ::1 --bind 127.0.0.1`` joins both DHTs, answers on both sockets,
    and saves both tables in its state file."""
    state = tmp_path / "dht.json"
    async with open_dht_node(DUAL) as peer:
        boot = [f"127.0.0.1:{peer.addresses[0][1]}", f"[::1]:{peer.addresses[1][1]}"]
        cmd = ["dht", "--bind", "::1", "--bind", "127.0.0.1", "--json", "--interval", "0.2"]
        cmd += ["--bootstrap", boot[0], "--bootstrap", boot[1], "--state-file", str(state)]
        async with shoal_process(cmd) as proc:
            assert proc.stdout is not None
            with trio.fail_after(20):
                (listening,) = await read_json_lines(proc.stdout, 1)
                assert listening["event"] == "listening"
                (v6, port6), (v4, port4) = listening["addresses"]
                assert (v6, v4, port6) == ("::1", "127.0.0.1", port4)
                while True:  # bounded by fail_after: a stats line every 0.2 s
                    (stats,) = await read_json_lines(proc.stdout, 1)
                    if stats["tables"] == [1, 1]:  # it joined through `peer` on both
                        break
                assert stats["nodes"] == 2
                proc.send_signal(signal.SIGINT)
                assert await proc.wait() == 130
        saved = json.loads(state.read_text())
        assert {(n["ip"], n["port"]) for n in saved["nodes"]} == set(peer.addresses)


async def test_dual_stack_get_peers_process_finds_peers_of_both_families() -> None:
    async with open_dht_node(DUAL) as a, open_dht_node(DUAL, bootstrap=a.addresses) as b:
        for service in b.services:
            await service.wait_bootstrapped()
        await b.announce(bytes.fromhex(IH), 51413)
        cmd = [*SHOAL, "dht", "get-peers", IH, "--bind", "127.0.0.1", "--bind", "::1", "--json"]
        cmd += ["--bootstrap", f"127.0.0.1:{a.addresses[0][1]}"]
        cmd += ["--bootstrap", f"[::1]:{a.addresses[1][1]}"]
        with trio.fail_after(20):
            result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    peers = {(obj["ip"], obj["port"]) for obj in lines if obj["event"] == "peer"}
    assert peers == {("127.0.0.1", 51413), ("::1", 51413)}
    assert lines[-1]["event"] == "done"
