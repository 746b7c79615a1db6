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


def test_the_entry_point_leaves_the_signals_ignored_for_the_shutdown():
    """console.main's block (restore=False): after it, SIGINT, SIGTERM and SIGHUP are ignored, the one
    setting Python's shutdown keeps, so a late kill cannot turn exit 130 (or 0) into 143."""
    import signal
    from nst_numpy.console import SIGNALS, interrupts_raise
    before, hook = {s: signal.getsignal(s) for s in SIGNALS}, sys.unraisablehook
    try:
        with interrupts_raise(restore=False):
            pass
        assert signal.SIGTERM in before and all(signal.getsignal(s) is signal.SIG_IGN for s in before)
    finally:
        for s, h in before.items():
            signal.signal(s, h)
        sys.unraisablehook = hook


def fail_as_after_a_signal(signalled):
    """Raise what Python made of a SIGTERM inside a class's creation (RuntimeError from the KeyboardInterrupt),
    or, not signalled (the control), a real RuntimeError("a real failure")."""
    import signal
    if signalled:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__") from e
    raise RuntimeError("a real failure")


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
            fail_as_after_a_signal(signalled)
    monkeypatch.setitem(sys.modules, "nst_numpy.cli", Importing("nst_numpy.cli"))
    before, hook = {s: signal.getsignal(s) for s in console.SIGNALS}, sys.unraisablehook
    try:
        if signalled:
            assert console.main([]) == console.EXIT_INTERRUPTED
            assert capsys.readouterr().err == "interrupted\n"
        else:
            with pytest.raises(RuntimeError, match="a real failure"):
                console.main([])
    finally:   # console.main leaves them for the shutdown (restore=False)
        for s, h in before.items():
            signal.signal(s, h)
        sys.unraisablehook = hook


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


class _Dropping:
    """Sends Ctrl-C to this process as it is destroyed: the KeyboardInterrupt is raised inside __del__
    (signal.raise_signal runs the handler at once), where Python can only print it, as when it lands in
    one of h5py's weakref callbacks while the weights load."""

    def __del__(self):
        import signal
        signal.raise_signal(signal.SIGINT)


def test_a_ctrl_c_python_dropped_is_raised_later_and_the_next_one_counts(capsys):
    import signal
    from nst_numpy import console
    with console.interrupts_raise():
        _Dropping()   # made and destroyed at once
        with pytest.raises(KeyboardInterrupt):
            console.raise_lost_interrupt()
        console.raise_lost_interrupt()   # once only
        signal.raise_signal(signal.SIGINT)   # now being handled: ignored
    with console.interrupts_raise():
        _Dropping()
        with pytest.raises(KeyboardInterrupt):   # not ignored as a second signal: the first never arrived
            signal.raise_signal(signal.SIGINT)
    assert "Exception ignored" not in capsys.readouterr().err


@pytest.mark.parametrize("when", ["loading", "iteration"])
def test_a_ctrl_c_python_dropped_still_ends_the_run(tmp_path, monkeypatch, when):
    """Dropped while the weights load: one line, no picture. Dropped in an iteration: the best image at the next."""
    if when == "loading":
        real = cli._load_network
        monkeypatch.setattr(cli, "_load_network", lambda args, **kw: (_Dropping(), real(args, **kw))[1])
    else:
        class Dropping(cli.Progress):
            def __call__(self, state):
                if state.step == 2:
                    _Dropping()
        monkeypatch.setattr(cli, "Progress", Dropping)
    out = tmp_path / "o.png"
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "50", "-o", out])
    assert status == 130 and "Exception ignored" not in err
    if when == "loading":
        assert err == "interrupted\n" and not out.exists()
    else:
        assert err.splitlines()[-1].startswith("interrupted after 3 iterations") and out.exists()


def test_a_signal_as_the_finished_picture_is_written_is_ignored(tmp_path, monkeypatch):
    """The run is done: a Ctrl-C now cannot stop it being written (it once gave exit 130 and no file)."""
    import signal
    real_save = cli.save_image

    def save_image(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_save(*args, **kwargs)
    monkeypatch.setattr(cli, "save_image", save_image)
    out = tmp_path / "o.png"
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "2", "-o", out])
    assert status == 0 and "Interrupted" not in Image.open(out).text, err


def test_an_error_as_the_finished_picture_is_written_is_an_error():
    """Holding the signals while the picture is written is not a signal: a real failure there keeps its
    traceback (it once came out as "interrupted", exit 130)."""
    import unittest.mock
    with unittest.mock.patch.object(cli, "save_image", side_effect=RuntimeError("a real failure")):
        with pytest.raises(RuntimeError, match="a real failure"):
            cli.main(["--weights", "random", "--size", "32", "--iterations", "2", "-q"])


def test_messages_a_stream_cannot_encode_are_escaped_not_the_end_of_them():
    import io
    raw = io.BytesIO()
    stream = cli._Messages(io.TextIOWrapper(raw, encoding="ascii", errors="strict", write_through=True))
    stream.write("style s\udcff.jpg, caf\u00e9\n")
    stream.write("wrote o.png\n")
    assert raw.getvalue() == b"style s\\udcff.jpg, caf\\xe9\nwrote o.png\n"


def test_a_signal_as_the_result_is_made_still_hands_it_back(monkeypatch):
    """stylize's last step, the result as RGB, is inside its Ctrl-C handling: Interrupted with the picture."""
    import numpy as np
    from nst_numpy import optimize
    from nst_numpy.config import Config
    from nst_numpy.samples import landscape, swirls
    net = cli._load_network(cli.build_parser().parse_args(["--weights", "random"]))
    done, real = [], net.deprocess

    def deprocess(x):   # the first call after the last iteration: Ctrl-C
        if len(done) == 2 and not done[-1:] == ["raised"]:
            done.append("raised")
            raise KeyboardInterrupt
        return real(x)
    monkeypatch.setattr(net, "deprocess", deprocess)
    config = Config(size=32, iterations=2, min_improvement=0)
    with pytest.raises(optimize.Interrupted) as e:
        optimize.stylize(net, landscape(), [swirls()], config, callback=lambda state: done.append(state.step))
    assert e.value.iteration == 2 and e.value.rgb.shape == (24, 32, 3) and np.isfinite(e.value.rgb).all()


def test_a_closing_terminal_saves_the_best_image(tmp_path, monkeypatch):
    """SIGHUP (the terminal closed) is a Ctrl-C too, and messages to the dead terminal cannot stop the save."""
    import io
    import signal
    if not hasattr(signal, "SIGHUP"):
        pytest.skip("no SIGHUP here")

    class HungUp(cli.Progress):
        def __call__(self, state):
            if state.step == 2:
                os.kill(os.getpid(), signal.SIGHUP)

    class Dead(io.StringIO):
        def write(self, text):
            raise OSError(5, "Input/output error")
    args = ["--weights", "random", "--size", "32", "--iterations", "50", "-o", str(tmp_path / "o.png")]
    assert cli.main(args[:-3] + ["3", "-o", str(tmp_path / "p.png")], stderr=Dead()) == 0   # `| head -1` too
    assert "Interrupted" not in Image.open(tmp_path / "p.png").text
    monkeypatch.setattr(cli, "Progress", HungUp)
    assert cli.main(args, stderr=Dead()) == 130 and "Interrupted" in Image.open(tmp_path / "o.png").text
