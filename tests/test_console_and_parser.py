"""console.py's one-line errors and cli_parser's defaults: what every bad input and every flag left out
turns into."""
import pytest

from nst_numpy import cli
from nst_numpy.console import OneLineParser, one_line
from nst_numpy.config import Config
from nst_numpy.fast import threads


def test_one_line_collapses_whitespace_and_names_a_silent_exception():
    assert one_line(ValueError("bad\n  thing\there")) == "bad thing here"
    assert one_line(OSError()) == "OSError"   # no message: its type, never an empty "error: "


def test_one_line_parser_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        OneLineParser(prog="x").error("first\nsecond")
    assert e.value.code == 2 and capsys.readouterr().err == "error: first second\n"


def test_parser_seed_default_is_configs():
    assert cli.build_parser().parse_args([]).seed == Config().seed == 0


def test_parser_threads_default_is_all_cores():
    assert cli.build_parser().parse_args([]).threads == threads.available_cores()
