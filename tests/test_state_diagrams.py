"""The state diagrams in docs/ are drawn from the transition tables and kept in sync."""

from __future__ import annotations

import enum
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _tool() -> ModuleType:
    # tools/ is scripts, not a package: load the file under a private module name.
    spec = importlib.util.spec_from_file_location(
        "_shoal_state_diagrams", ROOT / "tools" / "state_diagrams.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


tool = _tool()


class S(enum.Enum):
    IDLE = 1
    BUSY = 2
    DONE = 3


class I(enum.Enum):  # noqa: E742 - a one-letter enum reads best in the table below
    GO = 1
    END = 2


TABLE = {(S.IDLE, I.GO): S.BUSY, (S.BUSY, I.END): S.DONE, (S.BUSY, I.GO): S.BUSY}


def test_mermaid_lists_every_edge_the_start_and_the_final_states() -> None:
    assert tool.mermaid(TABLE, S.IDLE).splitlines() == [
        "```mermaid",
        "stateDiagram-v2",
        "    [*] --> IDLE",
        "    IDLE --> BUSY: GO",
        "    BUSY --> DONE: END",
        "    BUSY --> BUSY: GO",
        "    DONE --> [*]",
        "```",
    ]


def test_refresh_replaces_only_between_the_markers() -> None:
    doc = "intro\n<!-- state-diagram:x -->\nold\npicture\n<!-- /state-diagram:x -->\nrest\n"
    new = tool.refresh(doc, "x", "NEW")
    assert new == "intro\n<!-- state-diagram:x -->\nNEW\n<!-- /state-diagram:x -->\nrest\n"
    assert tool.refresh(new, "x", "NEW") == new
    empty = "<!-- state-diagram:x -->\n<!-- /state-diagram:x -->"
    assert tool.refresh(empty, "x", "D") == "<!-- state-diagram:x -->\nD\n<!-- /state-diagram:x -->"
    with pytest.raises(KeyError):
        tool.refresh(doc, "y", "NEW")


def test_every_machine_is_drawn_and_the_docs_are_current(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert tool.MACHINES
    for machine in tool.MACHINES.values():
        table, initial = machine.load()
        states = {s for s, _ in table} | set(table.values())
        assert initial in states
        every: type[enum.Enum] = type(initial)
        assert set(every) == states, "a state the table never reaches or leaves"
    assert tool.main(["--check"]) == 0, capsys.readouterr().out
