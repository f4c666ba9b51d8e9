"""The ``--bind`` address disappears under a running shoal (issue 14), for real: in a
network namespace of its own (``unshare -n``, root), loopback carries only ADDR =
127.0.0.5/32; ``shoal dht`` and ``shoal get`` start bound to it, the address is deleted
(``ip addr del``), and each must exit with status 1 and the `BindAddressError` line
rather than go on with another address. Nothing leaves the namespace.

Needs root (or CAP_SYS_ADMIN) and iproute2: skipped without them, failed under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

ADDR = "127.0.0.5"
MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20

# Runs inside the namespace: for each command, add ADDR, start shoal, wait for its
# first stdout line (it is listening), delete ADDR, and collect its exit and stderr.
DRIVER = r"""
import json, subprocess, sys
ADDR, CASES = sys.argv[1], json.loads(sys.argv[2])
def ip(*args):
    subprocess.run(["ip", *args], check=True)
ip("link", "set", "lo", "up")
ip("addr", "del", "127.0.0.1/8", "dev", "lo")  # else all of 127/8 stays bindable
results = {}
for name, argv in CASES.items():
    ip("addr", "add", ADDR + "/32", "dev", "lo")
    proc = subprocess.Popen([sys.executable, "-m", "shoal", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # bounded: shoal prints it or exits
    ip("addr", "del", ADDR + "/32", "dev", "lo")
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    results[name] = {"first": first.decode(), "code": proc.returncode, "stderr": err.decode()}
print(json.dumps(results))
"""


def _require_netns() -> None:
    reason = None
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        reason = "unshare (util-linux) and ip (iproute2) are needed"
    elif subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        reason = "cannot create a network namespace here (needs root or CAP_SYS_ADMIN)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def test_shoal_stops_when_its_bind_address_is_deleted(tmp_path: Path) -> None:
    _require_netns()
    common = ["--bind", ADDR, "--port", "0", "--bootstrap", f"{ADDR}:9", "--json"]
    cases = {
        "dht": ["dht", *common],
        "get": ["get", MAGNET, "-o", str(tmp_path / "out"), *common],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", DRIVER, ADDR, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    for name in cases:
        outcome = outcomes[name]
        assert json.loads(outcome["first"])["event"] == "listening", outcome
        assert outcome["code"] == 1, outcome
        assert f"the bind address {ADDR} is gone" in outcome["stderr"], outcome
        assert "stopped rather than use another address" in outcome["stderr"], outcome
