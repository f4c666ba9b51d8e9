"""Coverage-guided fuzzing (atheris / libFuzzer) of the totality properties in tools/fuzz.py.

Usage:
    python tools/fuzz/run.py TARGET [--seconds N] [--save-corpus K]
    python tools/fuzz/run.py --list

The targets are the ones `tools/fuzz.py` registers: one-argument hypothesis tests whose
*inner* function is the property (any input either parses or raises only our documented
exception types, and what parses round-trips). Here that inner function is handed raw
bytes by atheris, with every `shoal` module instrumented for coverage, so libFuzzer
mutates towards new branches instead of drawing uniform noise.

A run works in a scratch directory: it is seeded with ``tests/corpus/TARGET-*.bin``,
libFuzzer grows a queue there, and at the end

* every crash, timeout or out-of-memory input is saved as
  ``tests/corpus/TARGET-<sha1[:12]>.bin`` (replayed by tests/proto/test_corpus.py);
* with ``--save-corpus K``, the K largest inputs of the queue are saved the same way
  (the seed corpus for the next run);
* one summary line is printed: inputs executed, final ``cov:``/``ft:`` and findings.

libFuzzer stops at the first crash; fix it, keep the file, run again. The exit status
is 1 when something was found.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"


def registry() -> ModuleType:
    """tools/fuzz.py (a script, not a package), loaded by path."""
    spec = importlib.util.spec_from_file_location("_shoal_fuzz_tool", ROOT / "tools" / "fuzz.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def as_file_bytes(kind: type, data: bytes) -> bytes:
    """The corpus-file form of a raw atheris input (text targets: UTF-8, surrogatepass)."""
    if kind is bytes:
        return data
    return data.decode("utf-8", "surrogateescape").encode("utf-8", "surrogatepass")


def save(name: str, kind: type, data: bytes, corpus: Path) -> Path:
    data = as_file_bytes(kind, data)
    path = corpus / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
    corpus.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- the worker: runs inside libFuzzer (never returns) --------------------------------


def worker(name: str, libfuzzer_args: list[str]) -> None:
    import atheris  # tools-only dependency: imported where used

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    tool = registry()
    with atheris.instrument_imports(include=["shoal"]):
        target = tool.load_target(name)
    inner = target.test.hypothesis.inner_test
    param, text = target.param, target.kind is str

    def one_input(data: bytes) -> None:
        value = data.decode("utf-8", "surrogateescape") if text else data
        inner(**{param: value})

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


# ---- the parent: scratch dirs, the run, and saving what it found ---------------------

_STATS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")
_NEW = re.compile(r"#(\d+)\s+NEW\s+cov: (\d+)")


def run(name: str, seconds: int, save_corpus: int, corpus: Path, kind: type) -> int:
    with tempfile.TemporaryDirectory(prefix=f"shoal-atheris-{name}-") as tmp:
        work = Path(tmp)
        queue, seeds = work / "queue", work / "seeds"
        for d in (queue, seeds):
            d.mkdir()
        for path in corpus.glob(f"{name}-*.bin"):
            shutil.copy(path, seeds / path.name)
        args = [
            f"-max_total_time={seconds}",
            f"-artifact_prefix={work}/",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=4096",
            "-print_final_stats=1",
            str(queue),
            str(seeds),
        ]
        cmd = [sys.executable, __file__, "--worker", name, "--", *args]
        proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, errors="replace", check=False)
        log = proc.stderr
        (work / "log").write_text(log)
        found = [p for p in work.iterdir() if p.is_file() and p.name.split("-")[0] in _ARTIFACTS]
        saved = [save(name, kind, p.read_bytes(), corpus) for p in found]
        if save_corpus:
            # Every queue entry added coverage when found; keep the largest (most
            # structured) few. (libFuzzer's -merge re-executes argv[0], which is not
            # runnable for an in-process Python fuzzer, so no minimisation here.)
            best = sorted(queue.iterdir(), key=lambda p: -p.stat().st_size)[:save_corpus]
            for p in best:
                save(name, kind, p.read_bytes(), corpus)
        stats = _STATS.findall(log)
        runs, cov, ft = stats[-1] if stats else ("?", "?", "?")
        # Plateau check: the input at which the edge count last grew.
        news = [(int(n), int(c)) for n, c in _NEW.findall(log)]
        grew = [n for (_, prev), (n, c) in itertools.pairwise(news) if c > prev]
        last = grew[-1] if grew else "-"
        print(
            f"{name}: {runs} inputs in {seconds}s, cov: {cov} ft: {ft} "
            f"(cov last grew at input #{last}), findings: {len(saved)}"
        )
        for path in saved:
            print(f"  finding -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        if saved:
            tail = [ln for ln in log.splitlines() if "Error" in ln or "Traceback" in ln][:5]
            print("\n".join("  " + ln for ln in tail))
        return 1 if saved else 0


#: File-name prefixes of libFuzzer artifacts (crash-<sha1>, timeout-..., oom-..., ...).
_ARTIFACTS = {"crash", "timeout", "oom", "leak", "slow"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
        return 0  # not reached: atheris.Fuzz exits the process
    tool = registry()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", choices=sorted(tool.TARGETS))
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--save-corpus", type=int, default=0, metavar="K")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--list", action="store_true", help="list targets and exit")
    args = parser.parse_args(argv)
    if args.list or args.target is None:
        for name in sorted(tool.TARGETS):
            print(name)
        return 0 if args.list else 2
    os.environ.setdefault("HYPOTHESIS_PROFILE", "fuzz")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    kind = tool.load_target(args.target).kind
    return run(args.target, args.seconds, args.save_corpus, args.corpus, kind)


if __name__ == "__main__":
    sys.exit(main())
