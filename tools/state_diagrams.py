"""Render shoal's transition tables as Mermaid state diagrams and keep the docs in sync.

Usage:
    python tools/state_diagrams.py            # print every diagram
    python tools/state_diagrams.py --write    # refresh the diagrams inside docs/*.md
    python tools/state_diagrams.py --check    # exit 1 if a doc's diagram is stale

State machines that are data (style guide rule 4) can be drawn from the data, so the
picture in the docs cannot drift from the code: `--check` runs in the test suite. A
diagram lives in its doc between ``<!-- state-diagram:NAME -->`` and
``<!-- /state-diagram:NAME -->``. Adding a machine is one entry in `MACHINES`.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import enum
    from collections.abc import Callable, Mapping

ROOT = Path(__file__).resolve().parents[1]
#: (state, input) -> next state; keys and values are enum members (invariant key types
#: differ per machine, hence Any).
Table: TypeAlias = "Mapping[tuple[Any, Any], enum.Enum]"


@dataclass(frozen=True)
class Machine:
    doc: str  # path relative to the repository root
    load: Callable[[], tuple[Table, enum.Enum]]


def _lookup() -> tuple[Table, enum.Enum]:
    from shoal.dht.lookup import TRANSITIONS, CandidateState

    return TRANSITIONS, CandidateState.NOT_CONTACTED


MACHINES: dict[str, Machine] = {
    "dht-lookup-candidate": Machine("docs/dht.md", _lookup),
}


def mermaid(table: Table, initial: enum.Enum) -> str:
    """A ``stateDiagram-v2`` block; edges in table order, inputs as labels."""
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {initial.name}"]
    lines += [f"    {src.name} --> {dst.name}: {inp.name}" for (src, inp), dst in table.items()]
    sources = {src for src, _ in table}
    finals = sorted({dst.name for dst in table.values() if dst not in sources})
    lines += [f"    {name} --> [*]" for name in finals]
    lines.append("```")
    return "\n".join(lines)


def _markers(name: str) -> re.Pattern[str]:
    tag = re.escape(name)
    return re.compile(
        rf"(<!-- state-diagram:{tag} -->\n)(?:.*?\n)?(<!-- /state-diagram:{tag} -->)", re.DOTALL
    )


def refresh(text: str, name: str, diagram: str) -> str:
    """`text` with the diagram between NAME's markers replaced; KeyError if none."""
    pattern = _markers(name)
    if not pattern.search(text):
        raise KeyError(f"no <!-- state-diagram:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + diagram + "\n" + m.group(2), text, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update the docs in place")
    mode.add_argument("--check", action="store_true", help="fail if a doc is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, machine in MACHINES.items():
        diagram = mermaid(*machine.load())
        if not (args.write or args.check):
            print(f"{name} ({machine.doc}):\n{diagram}\n")
            continue
        path = ROOT / machine.doc
        old = path.read_text()
        new = refresh(old, name, diagram)
        if new != old:
            stale.append(f"{machine.doc}: {name}")
            if args.write:
                path.write_text(new)
    if args.check and stale:
        print("stale diagrams (run tools/state_diagrams.py --write):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
