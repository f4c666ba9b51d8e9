"""The command-line framework: exit codes, one-line errors, --debug, -v, --version, help."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

import shoal
import shoal.cli.info
from shoal.cli import COMMANDS, build_parser, command_names, main
from shoal.errors import DecodeError

if TYPE_CHECKING:
    import argparse

COMMAND_NAMES = command_names(build_parser())


def _raise(exc: BaseException) -> object:
    def run(args: argparse.Namespace) -> int:
        raise exc

    return run


def test_every_registered_command_is_reachable() -> None:
    assert len(COMMAND_NAMES) == len(COMMANDS)
    assert COMMAND_NAMES[:2] == ["create", "info"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"shoal {shoal.__version__}\n"


def test_top_level_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMAND_NAMES:
        assert f"\n    {name}" in out
    assert "examples:" in out
    assert "130 interrupted" in out
    examples = out.split("\nexamples:\n", 1)[1]
    for name in COMMAND_NAMES:
        assert f"  shoal {name}" in examples, f"no top-level example for {name}"


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_subcommand_help_has_examples(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: shoal {name} ")
    examples = out.split("\nexamples:\n", 1)[1]
    assert examples.count(f"shoal {name} ") >= 2


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "no command given; choose one of: create, info"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["info"], "the following arguments are required: SOURCE"),
        (["create", "x", "--piece-size", "3K"], "must be a power of two"),
        (["create", "x", "--piece-size", "lots"], "not a size: 'lots'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert fragment in lines[0]
    assert lines[0].startswith("shoal")
    assert "--help' )" not in lines[0]
    assert lines[0].endswith("--help')")


def test_keyboard_interrupt_exits_130_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shoal.cli.info, "run", _raise(KeyboardInterrupt()))
    assert main(["info", "x"]) == 130
    assert capsys.readouterr().err == "shoal: interrupted\n"


def test_interrupt_inside_a_nursery_group_still_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group = BaseExceptionGroup("nursery", [BaseExceptionGroup("inner", [KeyboardInterrupt()])])
    monkeypatch.setattr(shoal.cli.info, "run", _raise(group))
    assert main(["info", "x"]) == 130
    assert capsys.readouterr().err == "shoal: interrupted\n"


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (DecodeError("bad bencode at offset 3"), "shoal: bad bencode at offset 3"),
        (
            FileNotFoundError(2, "No such file or directory", "a.torrent"),
            "shoal: cannot use 'a.torrent': No such file or directory",
        ),
        (PermissionError(13, "Permission denied"), "shoal: Permission denied"),
        (
            ExceptionGroup("nursery", [DecodeError("only child")]),
            "shoal: only child",
        ),
        (
            RuntimeError("boom"),
            "shoal: internal error: RuntimeError: boom (rerun with --debug for the traceback)",
        ),
    ],
)
def test_failures_exit_1_with_one_line(
    exc: Exception, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shoal.cli.info, "run", _raise(exc))
    assert main(["info", "x"]) == 1
    captured = capsys.readouterr()
    assert captured.err == line + "\n"
    assert captured.out == ""


@pytest.mark.parametrize("argv", [["--debug", "info", "x"], ["info", "x", "--debug"]])
def test_debug_adds_the_traceback_before_the_line(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shoal.cli.info, "run", _raise(RuntimeError("boom")))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith("shoal: internal error: RuntimeError: boom\n")


def test_broken_stdout_pipe_is_quiet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shoal.cli.info, "run", _raise(BrokenPipeError(32, "Broken pipe")))
    assert main(["info", "x"]) == 1
    assert capsys.readouterr().err == ""


def test_system_exit_from_a_command_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shoal.cli.info, "run", _raise(SystemExit(7)))
    with pytest.raises(SystemExit) as info:
        main(["info", "x"])
    assert info.value.code == 7


def test_command_exit_status_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shoal.cli.info, "run", lambda args: 3)
    assert main(["info", "x"]) == 3


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ([], logging.WARNING),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["-vvvv"], logging.DEBUG),
        (["-v", "info", "x", "-v"], logging.INFO),  # the later -v wins, it does not reset
    ],
)
def test_verbosity_sets_the_shoal_log_level(
    flags: list[str],
    level: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run(args: argparse.Namespace) -> int:
        logging.getLogger("shoal.test").debug("debug line")
        logging.getLogger("shoal.test").info("info line")
        return 0

    monkeypatch.setattr(shoal.cli.info, "run", run)
    argv = flags if "info" in flags else [*flags, "info", "x"]
    assert main(argv) == 0
    assert logging.getLogger("shoal").level == level
    err = capsys.readouterr().err
    assert ("shoal: INFO shoal.test: info line" in err) == (level <= logging.INFO)
    assert ("shoal: DEBUG shoal.test: debug line" in err) == (level <= logging.DEBUG)


def test_logging_handler_is_installed_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shoal.cli.info, "run", lambda args: 0)
    before = len(logging.getLogger("shoal").handlers)
    main(["-v", "info", "x"])
    main(["-v", "info", "x"])
    assert len(logging.getLogger("shoal").handlers) == before + 1
