"""Replay every fuzz finding in tests/corpus/<target>-*.bin, and test the fuzz driver itself.

Targets come from the registry in tools/fuzz.py, so registering a new fuzz target there
also makes its corpus files regression tests here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"


def _load_fuzz_tool() -> ModuleType:
    # tools/ is scripts, not a package: load the file under a private module name.
    spec = importlib.util.spec_from_file_location("_shoal_fuzz_tool", ROOT / "tools" / "fuzz.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz_tool()

CASES = [
    pytest.param(name, path, id=path.name)
    for name in sorted(fuzz.TARGETS)
    for path in sorted(CORPUS.glob(f"{name}-*.bin"))
]


@pytest.mark.parametrize(("name", "path"), CASES)
def test_corpus_input_upholds_the_target_property(name: str, path: Path) -> None:
    target = fuzz.load_target(name)
    t0 = time.perf_counter()
    target.check(path.read_bytes())
    assert time.perf_counter() - t0 < 1.0, "corpus input took too long (fuzz --slow-ms)"


@pytest.mark.parametrize("name", ["bencode", "magnet"])
def test_corpus_is_seeded(name: str) -> None:
    # Guards against the loader silently replaying nothing (a moved directory, a renamed
    # target): each of these targets ships with hand-picked hostile inputs.
    assert len(list(CORPUS.glob(f"{name}-*.bin"))) >= 5


@pytest.mark.parametrize("name", sorted(fuzz.TARGETS))
def test_every_registered_target_loads(name: str) -> None:
    target = fuzz.load_target(name)
    assert target.kind in (bytes, str)
    assert hasattr(target.test, "hypothesis")


def test_corpus_files_are_named_by_content() -> None:
    for _, path in (case.values for case in CASES):
        assert isinstance(path, Path)
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:12]
        assert path.name.endswith(f"-{digest}.bin"), path.name


# ---- the driver: a deliberately broken target must be found and saved ------------------


@given(st.binary(max_size=32))
def _broken_target(data: bytes) -> None:
    if b"\x00" in data:
        raise KeyError("a bug the fuzzer must find")


@given(st.text(max_size=8))
def _slow_target(text: str) -> None:
    time.sleep(0.02)


def test_driver_saves_failing_inputs_as_replayable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(fuzz.TARGETS, "broken", f"{__name__}:_broken_target")
    target = fuzz.load_target("broken")
    runs, written = fuzz.fuzz(target, seconds=1.0, seed=0, slow_ms=10_000, corpus=tmp_path)
    assert runs > 10
    assert written
    for path in written:
        data = path.read_bytes()
        assert b"\x00" in data
        assert path == fuzz.corpus_path("broken", data, tmp_path)
        with pytest.raises(KeyError):
            target.check(data)


def test_driver_saves_slow_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fuzz.TARGETS, "slow", f"{__name__}:_slow_target")
    target = fuzz.load_target("slow")
    assert target.kind is str
    _, written = fuzz.fuzz(target, seconds=0.3, seed=0, slow_ms=5, corpus=tmp_path)
    assert written
    assert all(p.name.startswith("slow-") for p in written)


_STALLS = {"left": 1}


@given(st.text(max_size=8))
def _stalls_once_target(text: str) -> None:
    if _STALLS["left"] > 0:  # one scheduler stall, not a property of any input
        _STALLS["left"] -= 1
        time.sleep(0.05)


def test_driver_does_not_save_a_one_off_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(fuzz.TARGETS, "stall", f"{__name__}:_stalls_once_target")
    monkeypatch.setitem(_STALLS, "left", 1)
    target = fuzz.load_target("stall")
    runs, written = fuzz.fuzz(target, seconds=0.3, seed=0, slow_ms=20, corpus=tmp_path)
    assert _STALLS["left"] == 0
    assert runs > 1
    assert written == []


def test_driver_on_a_sound_target_writes_nothing(tmp_path: Path) -> None:
    target = fuzz.load_target("bencode")
    runs, written = fuzz.fuzz(target, seconds=0.5, seed=1, slow_ms=10_000, corpus=tmp_path)
    assert runs > 10
    assert written == []
    assert list(tmp_path.iterdir()) == []


def test_cli_lists_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "bencode" in out
    assert "magnet" in out


# ---- the atheris driver (tools/fuzz/run.py): same registry, coverage-guided ------------

#: Targets added for the engines and state files; each ships a seed corpus.
ENGINE_TARGETS = ["peer-connection", "mse-initiator", "mse-receiver", "resume", "dht-state"]


@pytest.mark.parametrize("name", ENGINE_TARGETS)
def test_engine_targets_are_registered_and_seeded(name: str) -> None:
    assert name in fuzz.TARGETS
    assert list(CORPUS.glob(f"{name}-*.bin")), f"no seed corpus for {name}"


def test_atheris_driver_runs_a_target_and_reports_coverage(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("atheris is not installed (pip install -e '.[test]')")
        pytest.skip("atheris is not installed")
    for seed in sorted(CORPUS.glob("resume-*.bin"))[:3]:
        (tmp_path / seed.name).write_bytes(seed.read_bytes())
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "fuzz" / "run.py"),
            "resume",
            "--seconds",
            "2",
            "--corpus",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resume: " in out.stdout
    assert " cov: " in out.stdout
    runs = int(out.stdout.split("resume: ")[1].split()[0])
    assert runs > 10, out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in sorted(CORPUS.glob("resume-*.bin"))[:3]
    ), "a sound target writes nothing new"
