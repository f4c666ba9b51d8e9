"""docs/cli.md documents exactly the JSON keys the commands emit (the stable interface)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from .test_create import CREATE_KEYS
from .test_info import MAGNET_KEYS, TORRENT_KEYS

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_KEY_ROW = re.compile(r"^\| `([a-z_]+)` ", re.MULTILINE)


def _section(start: str, end: str | None) -> str:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(start, 1)[1]
    return body.split(end, 1)[0] if end else body


@pytest.mark.parametrize(
    ("start", "end", "keys"),
    [
        ("### `create --json` keys", "## `shoal info`", CREATE_KEYS),
        ('For a `.torrent` (`"type": "torrent"`):', "For a magnet link (", TORRENT_KEYS),
        ('For a magnet link (`"type": "magnet"`):', "## `shoal get`", MAGNET_KEYS),
    ],
)
def test_documented_json_keys_match_the_output(start: str, end: str, keys: set[str]) -> None:
    assert set(_KEY_ROW.findall(_section(start, end))) == keys


def test_every_command_is_in_the_summary_table_and_has_a_section() -> None:
    from shoal.cli import build_parser, command_names

    text = DOC.read_text(encoding="utf-8")
    for name in command_names(build_parser()):
        assert f"\n| `shoal {name}` " in text, f"{name} missing from the summary table"
        assert f"\n## `shoal {name}`\n" in text, f"no section for {name}"


def test_every_setting_is_documented_with_its_variable() -> None:
    from shoal.cli.config_file import ENV_PREFIX, Settings

    section = _section("## Configuration file and environment", "\n## ")
    rows = set(_KEY_ROW.findall(section))
    for field in fields(Settings):
        assert field.name in rows, field.name
        assert f"`{ENV_PREFIX}{field.name.upper()}`" in section
