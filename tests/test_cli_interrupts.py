"""The command line when a run is cut short: Ctrl-C and SIGTERM save the best image so far, say how
to resume, and exit 130; before or after the loop, one line."""
import os
import subprocess
import sys

import pytest
from PIL import Image

from nst_numpy import cli
from test_cli import COARSE, FAST, _run, shared_random_networks  # noqa: F401 (an autouse fixture: imported, it applies here)


def _interrupt_when(monkeypatch, when):
    """Make the CLI's progress callback raise KeyboardInterrupt (as Ctrl-C would) once when(state) holds."""
    class Interrupting(cli.Progress):
        def __call__(self, state):
            if when(state):
                raise KeyboardInterrupt
    monkeypatch.setattr(cli, "Progress", Interrupting)


def test_ctrl_c_writes_best_image_and_exits_130(tmp_path, monkeypatch):
    _interrupt_when(monkeypatch, lambda state: state.step == 2)
    out = tmp_path / "o.png"
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "50", "-o", out])
    assert status == 130
    assert "interrupted" in err and "Traceback" not in err
    im = Image.open(out)
    assert im.size == (32, 21) and "Interrupted" in im.text
    assert os.listdir(tmp_path) == ["o.png"]


def test_sigterm_is_handled_like_ctrl_c(tmp_path, monkeypatch):
    """kill (SIGTERM) mid-run saves the best image and exits 130, as Ctrl-C does; main puts the
    previous handler back."""
    import signal

    class Killed(cli.Progress):
        def __call__(self, state):
            if state.step == 2:
                os.kill(os.getpid(), signal.SIGTERM)   # handled in this (the main) thread
    monkeypatch.setattr(cli, "Progress", Killed)

    def ours(signum, frame):   # a handler of the caller's own (not one an earlier main() left behind)
        pass
    before = signal.signal(signal.SIGTERM, ours)
    try:
        out = tmp_path / "o.png"
        status, err = _run(["--weights", "random", "--size", "32", "--iterations", "50", "-o", out])
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
    assert status == 130 and err.splitlines()[-1].startswith("interrupted after 2 iterations")
    assert "Interrupted" in Image.open(out).text


def test_a_second_signal_while_the_best_image_is_saved_is_ignored(tmp_path, monkeypatch):
    """kill, then Ctrl-C (or a second kill) while the picture is written: the write completes, one line,
    exit 130 (it once left a temporary file and no picture, or a traceback and exit 143)."""
    import signal

    class Killed(cli.Progress):
        def __call__(self, state):
            if state.step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
    real_save = cli.save_image

    def save_image(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)    # handled at once, in this (the main) thread
        os.kill(os.getpid(), signal.SIGTERM)
        return real_save(*args, **kwargs)
    monkeypatch.setattr(cli, "Progress", Killed)
    monkeypatch.setattr(cli, "save_image", save_image)
    out = tmp_path / "o.png"
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "50", "-o", out])
    assert status == 130 and err.splitlines()[-1].startswith("interrupted after 2 iterations")
    assert "Traceback" not in err and os.listdir(tmp_path) == ["o.png"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # put back after the run


def test_interrupts_raise_once_then_ignore_until_the_block_ends():
    import signal
    from nst_numpy.console import interrupts_raise
    with pytest.raises(KeyboardInterrupt):
        with interrupts_raise():
            os.kill(os.getpid(), signal.SIGTERM)
    with interrupts_raise():   # a new block raises again
        try:
            os.kill(os.getpid(), signal.SIGINT)
            raise AssertionError("not interrupted")
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGTERM)   # ignored: the first is being handled
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):   # outside any block: Python's own Ctrl-C again
        os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupted_run_with_checkpoints_says_how_to_resume(tmp_path, monkeypatch):
    _interrupt_when(monkeypatch, lambda state: state.step == 5)
    out = tmp_path / "o.png"
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "50", "--checkpoint-every", "2",
                        "-o", out])
    assert status == 130
    assert err.splitlines()[-1].endswith(f"; continue from its last checkpoint with --resume {tmp_path / 'o.checkpoint.npz'}")
    _interrupt_when(monkeypatch, lambda state: state.step == 5)
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "50", "-o", tmp_path / "p.png"])
    assert status == 130 and "--resume" not in err   # the control: no checkpoints, no hint


def test_ctrl_c_in_a_later_scale_writes_the_output_size(tmp_path, monkeypatch):
    _interrupt_when(monkeypatch, lambda state: state.scale == 2)
    out = tmp_path / "o.png"
    status, err = _run(FAST + COARSE + ["--size", "64", "--scales", "2", "-o", out])  # 32x21, then 64x43
    assert status == 130 and Image.open(out).size == (64, 43)


@pytest.mark.parametrize("raised, status, line", [
    (KeyboardInterrupt, cli.EXIT_INTERRUPTED, "interrupted\n"),   # e.g. while the style targets are computed
    (MemoryError, cli.EXIT_USAGE, "error: out of memory; try a smaller --size\n"),
])
def test_ctrl_c_and_out_of_memory_outside_the_loop(tmp_path, monkeypatch, raised, status, line):
    """Raised before the optimiser has a picture: one line, its status, no output file."""
    def fail(*args, **kwargs):
        raise raised
    monkeypatch.setattr(cli, "stylize", fail)
    assert _run(FAST + ["-o", tmp_path / "o.png"]) == (status, line)
    assert os.listdir(tmp_path) == []


def _ctrl_c_while_numpy_loads(tmp_path, entry):
    """Run `entry` (Python source) in a fresh interpreter where `import numpy` raises KeyboardInterrupt,
    a stand-in for the key press while numpy loads. Returns (status, stderr)."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    code = (
        "import sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numpy':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, CtrlC())\n" + entry)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": root})
    return r.returncode, r.stderr


def test_ctrl_c_while_loading_is_one_line(tmp_path):
    """The `nst-numpy` entry point (setup.cfg) with Ctrl-C arriving while numpy loads: one line,
    status 130, no traceback. The package itself must import without numpy, or the handler could
    not run first."""
    status, err = _ctrl_c_while_numpy_loads(tmp_path, "from nst_numpy.console import main\nsys.exit(main([]))\n")
    assert status == 130 and err == "interrupted\n", err
    assert not os.listdir(tmp_path)                        # no output.png, nothing else
    root = os.path.join(os.path.dirname(__file__), "..")
    entry = [line for line in open(os.path.join(root, "setup.cfg")) if line.strip().startswith("nst-numpy")]
    assert entry and entry[0].split("=")[1].strip() == "nst_numpy.console:main"


def test_stylize_script_ctrl_c_while_loading_is_one_line(tmp_path):
    """The same for scripts/stylize.py, which imports before it hands over to the CLI."""
    script = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "scripts", "stylize.py"))
    status, err = _ctrl_c_while_numpy_loads(
        tmp_path, f"import runpy\nsys.argv = ['stylize.py']\nrunpy.run_path({script!r}, run_name='__main__')\n")
    assert status == 130 and err == "interrupted\n", (status, err)
    assert not os.listdir(tmp_path)


def test_an_ignored_sigint_stays_ignored():
    """A script's background job starts with SIGINT ignored; the run must not take it back."""
    import signal
    from nst_numpy.console import interrupts_raise
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_raise():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)   # ignored: no KeyboardInterrupt
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_the_entry_point_leaves_both_signals_ignored_for_the_shutdown():
    """console.main's block (restore=False): after it, SIGINT and SIGTERM are ignored, the one setting
    Python's shutdown keeps, so a late kill cannot turn exit 130 (or 0) into 143."""
    import signal
    from nst_numpy.console import interrupts_raise
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with interrupts_raise(restore=False):
            pass
        assert all(signal.getsignal(s) is signal.SIG_IGN for s in before)
    finally:
        for s, h in before.items():
            signal.signal(s, h)


@pytest.mark.parametrize("signalled", [True, False])
def test_a_signal_that_python_turned_into_another_error_is_still_an_interrupt(monkeypatch, capsys, signalled):
    """SIGTERM 0.1 s into a run landed in a class's creation during numpy's import, and Python raised
    RuntimeError from the KeyboardInterrupt: a traceback. After a signal, any error is the interrupt;
    without one (the control), the error is real and propagates."""
    import signal
    import types
    from nst_numpy import console

    class Importing(types.ModuleType):
        def __getattr__(self, name):
            if signalled:
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                except KeyboardInterrupt as e:
                    raise RuntimeError("Error calling __set_name__") from e
            raise RuntimeError("a real failure")
    monkeypatch.setitem(sys.modules, "nst_numpy.cli", Importing("nst_numpy.cli"))
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if signalled:
            assert console.main([]) == console.EXIT_INTERRUPTED
            assert capsys.readouterr().err == "interrupted\n"
        else:
            with pytest.raises(RuntimeError, match="a real failure"):
                console.main([])
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_cli_main_treats_an_error_after_a_signal_as_the_interrupt(monkeypatch):
    import signal

    def run(*a, **k):   # e.g. a lazy import during the run, where Python wrapped the KeyboardInterrupt
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__") from e
    monkeypatch.setattr(cli, "run", run)
    status, err = _run(["--weights", "random"])
    assert status == cli.EXIT_INTERRUPTED and err == "interrupted\n"
    monkeypatch.setattr(cli, "run", lambda *a, **k: 1 / 0)   # the control: no signal, a real error
    with pytest.raises(ZeroDivisionError):
        cli.main(["--weights", "random"])
