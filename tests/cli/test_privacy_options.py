"""``--proxy``, ``--ip-filter``, ``--max-download-rate``/``--max-upload-rate`` and
``--anonymous`` on ``get`` and ``seed``: parsing, the ClientConfig they make, and how
a bad filter line or a bad proxy URL reaches the user."""

from __future__ import annotations

import argparse
import gzip
from typing import TYPE_CHECKING

import pytest

from shoal.cli import build_parser, get, main
from shoal.cli.privacy import parse_rate

if TYPE_CHECKING:
    from pathlib import Path


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["get", "magnet:?xt=urn:btih:" + "a" * 40, *argv])


@pytest.mark.parametrize(
    ("text", "value"),
    [("500k", 500 * 1024), ("10M", 10 * 1024**2), ("1.5m", 1572864), ("100000", 100000),
     ("2MiB/s", 2 * 1024**2), ("0", None)],
)  # fmt: skip
def test_parse_rate(text: str, value: int | None) -> None:
    assert parse_rate(text) == value


@pytest.mark.parametrize("text", ["", "fast", "-5k", "10T", "1e9", "١٠"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate(text)


def test_options_make_the_client_config(tmp_path: Path) -> None:
    flt = tmp_path / "level1.p2p.gz"
    flt.write_bytes(gzip.compress(b"bad:192.0.2.0-192.0.2.255\n"))
    args = parse(
        "--proxy", "socks5://u:p@127.0.0.2:1080",
        "--ip-filter", str(flt),
        "--max-download-rate", "10M",
        "--max-upload-rate", "500k",
        "--anonymous",
    )  # fmt: skip
    config = get.client_config(args)
    assert config.proxy_url is not None
    assert (config.proxy_url.host, config.proxy_url.port) == ("127.0.0.2", 1080)
    assert config.ip_filter is not None
    assert config.ip_filter.blocks("192.0.2.7")
    assert (config.max_download_rate, config.max_upload_rate) == (10 * 1024**2, 500 * 1024)
    assert config.anonymous
    assert not config.incoming
    assert config.dht_enabled  # through the proxy's UDP relay
    assert not get.client_config(parse("--anonymous")).dht_enabled  # no proxy: off


def test_defaults_change_nothing() -> None:
    config = get.client_config(parse())
    assert config.proxy is None
    assert config.ip_filter is None
    assert config.incoming
    assert config.dht_enabled


def test_bad_filter_lines_are_reported_with_their_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flt = tmp_path / "ipfilter.dat"
    flt.write_text("1.2.3.4 - 1.2.3.5 , 0 , ok\nnonsense\n\n1.2.3.999 - 1.2.4.0 , 0 , x\n")
    config = get.client_config(parse("--ip-filter", str(flt)))
    assert config.ip_filter is not None
    assert config.ip_filter.blocks("1.2.3.5")
    err = capsys.readouterr().err
    assert "line 2: neither an eMule nor a P2P range; skipped" in err
    assert "line 4: octet above 255; skipped" in err


def test_unreadable_filter_and_bad_proxy_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.dat"
    assert main(["get", "magnet:?xt=urn:btih:" + "a" * 40, "--ip-filter", str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "cannot read IP filter" in err[0]
    with pytest.raises(SystemExit):
        parse("--proxy", "http://127.0.0.2:8080")
    assert "socks5://" in capsys.readouterr().err


def test_proxy_down_is_one_line_and_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.peers import free_port

    dead = f"socks5://127.0.0.2:{free_port('127.0.0.2')}"
    argv = ["get", "magnet:?xt=urn:btih:" + "a" * 40, "-o", str(tmp_path), "--bind", "127.0.0.1",
            "--port", "0", "--bootstrap", "127.0.0.1:9", "--proxy", dead]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("shoal: cannot reach proxy 127.0.0.2:")
