"""The learner-facing scripts (gradcheck, reconstruct) and the guide's references to the code."""
import importlib.util
from pathlib import Path

import pytest

from nst_numpy.gradcheck import CheckResult

ROOT = Path(__file__).resolve().parents[1]


def _load_script(name):
    """Import scripts/<name>.py as a module, so its main() runs in-process."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_result_pass_logic():
    assert CheckResult("ok", 1e-10, 1e-8, False).passed
    assert not CheckResult("bad gradient", 1e-3, 1e-8, False).passed
    assert CheckResult("control caught", 0.5, 1e-2, True).passed
    assert not CheckResult("control missed", 1e-9, 1e-2, True).passed


def test_gradcheck_script_all_rows_pass(capsys):
    script = _load_script("gradcheck")
    assert script.main() == 0
    out = capsys.readouterr().out
    for name in ["conv dx", "conv dw", "conv db", "relu dx", "avg pool dx", "max pool dx", "(7x9x2)",
                 "content loss dF", "style loss dF", "total variation dx", "VGG19 dx", "objective dx", "control:"]:
        assert name in out
    assert "FAIL" not in out and out.count("expected to fail: caught") >= 6


def test_gradcheck_script_reports_a_failure(capsys, monkeypatch):
    script = _load_script("gradcheck")
    rows = [CheckResult("good", 1e-11, 1e-8, False), CheckResult("broken backward", 0.3, 1e-8, False),
            CheckResult("control: missed", 1e-12, 1e-2, True)]
    monkeypatch.setattr(script, "run_all_checks", lambda: rows)
    assert script.main() == 1
    out = capsys.readouterr().out
    assert "broken backward" in out and "NOT caught" in out and "2 FAILED" in out
