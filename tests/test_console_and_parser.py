"""console.py's one-line errors and cli_parser's defaults: what every bad input and every flag left out
turns into."""
import pytest

from nst_numpy import cli
from nst_numpy.console import OneLineParser, one_line
from nst_numpy.config import Config
from nst_numpy.cli_parser import UsageError, build_parser
from nst_numpy.fast import threads
from test_cli import _run


def test_one_line_collapses_whitespace_and_names_a_silent_exception():
    assert one_line(ValueError("bad\n  thing\there")) == "bad thing here"
    assert one_line(OSError()) == "OSError"   # no message: its type, never an empty "error: "


def test_one_line_parser_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        OneLineParser(prog="x").error("first\nsecond")
    assert e.value.code == 2 and capsys.readouterr().err == "error: first second\n"


def test_parser_seed_default_is_configs():
    assert cli.build_parser().parse_args([]).seed == Config().seed == 0
    assert build_parser().parse_args(["--seed", "0"]).seed == 0   # and the default can be typed


def test_parser_threads_default_is_all_cores():
    assert cli.build_parser().parse_args([]).threads == threads.available_cores()


@pytest.mark.parametrize("argv, says", [
    (["--size", "8"], "--size: must be >= 16"),
    (["--style-scale", "0"], "--style-scale: must be > 0"),
    (["--learning-rate", "0"], "--learning-rate: must be > 0"),
    (["--style-weights", "1,,1"], "an empty value between commas"),
    (["--style-layer-weights", "1,2,"], "an empty value between commas"),
])
def test_the_parser_refuses_with_the_flags_own_message(argv, says):
    """Each value is refused by the parser, naming its flag,
    not read wrongly ('1,,1' as two weights) or left to a later, vaguer check."""
    with pytest.raises(UsageError, match=says):
        build_parser().parse_args(argv)


def test_a_size_below_16_is_a_usage_error_end_to_end(tmp_path):
    status, err = _run(["--weights", "random", "--size", "8", "--iterations", "1", "-o", tmp_path / "o.png"])
    assert status == 2 and "--size" in err and not (tmp_path / "o.png").exists(), err
