"""scripts/script_guard.py and what it guards: every script's Ctrl-C (also while numpy loads, and one h5py
drops) is one line and exit 130, an output that is also an input is refused before any work, and a size
the run cannot take is refused up front, not after a traceback or a first run."""
import os

import numpy as np
import pytest
from PIL import Image

import script_helpers
from script_helpers import SCRIPTS, load_script, write_random_weights
from test_cli_interrupts import _ctrl_c_while_numpy_loads, _Dropping, fail_as_after_a_signal

one_blas_thread = script_helpers.one_blas_thread   # autouse: every test here runs on one BLAS thread

GUARDED = ("benchmark", "bench_precision", "convert_weights", "gradcheck", "make_readme_images",
           "make_tuning_images", "normalize_weights", "reconstruct")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    return write_random_weights(tmp_path_factory.mktemp("weights") / "vgg19.h5")[0]


@pytest.fixture
def guard(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import script_guard
    return script_guard


def _never(*args, **kwargs):
    raise AssertionError("work done before the arguments were checked")


def _save_png(path, shape=(40, 40, 3)):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return str(path)


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", GUARDED)
def test_ctrl_c_while_numpy_loads_is_one_line(tmp_path, name):
    """Run as a program, each script puts the handlers in place before its heavy imports (script_guard.run_file)."""
    script = str(SCRIPTS / f"{name}.py")
    status, err = _ctrl_c_while_numpy_loads(
        tmp_path, f"import runpy\nsys.argv = [{script!r}]\nrunpy.run_path({script!r}, run_name='__main__')\n")
    assert (status, err) == (130, "interrupted\n")
    assert os.listdir(tmp_path) == []


def test_without_the_ctrl_c_the_same_start_runs(tmp_path):
    """The control: the same start with numpy importable runs the script (its --help)."""
    script = str(SCRIPTS / "gradcheck.py")
    status, err = _ctrl_c_while_numpy_loads(
        tmp_path, f"import runpy\nsys.meta_path.pop(0)\nsys.argv = [{script!r}, '--help']\n"
                  f"runpy.run_path({script!r}, run_name='__main__')\n")
    assert (status, err) == (0, "")


@pytest.mark.parametrize("name, args, step", [
    ("benchmark", ["--sizes", "32", "--repeat", "1", "--threads", "1"], "bench_network"),   # every mode: main's guard
    ("gradcheck", [], "run_all_checks"),
    ("bench_precision", ["--run", "1", "--size", "32", "32"], "final_losses"),
])
def test_ctrl_c_in_a_run_is_one_line(monkeypatch, capsys, name, args, step):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    script = load_script(name)

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(script, step, ctrl_c)
    assert script.main(args) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_ctrl_c_dropped_in_the_work_still_counts_when_it_ends(capsys, guard):
    """Dropped where Python can only print it (h5py's weakref callbacks) and never raised again: the
    script still ends with the interrupt's line and 130, not silently with 0."""
    assert guard.call(lambda: _Dropping() and None) == 130 and capsys.readouterr().err == "interrupted\n"
    assert guard.call(lambda: None) == 0   # the control


def test_stylizes_interrupted_is_a_ctrl_c_too(monkeypatch, capsys, guard):
    from nst_numpy.optimize import Interrupted

    def work():
        raise Interrupted(None, 3)
    assert guard.call(work) == 130 and capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("signalled", [True, False])
def test_an_error_python_made_of_a_signal_is_the_interrupt(capsys, guard, signalled):
    """A KeyboardInterrupt inside an import can come out as a RuntimeError; without a signal (the
    control) the error is a bug and keeps its traceback."""
    def work():
        fail_as_after_a_signal(signalled)
    if signalled:
        assert guard.call(work) == 130 and capsys.readouterr().err == "interrupted\n"
    else:
        with pytest.raises(RuntimeError, match="a real failure"):
            guard.call(work)


@pytest.mark.parametrize("dropped", [True, False])
def test_convert_a_ctrl_c_h5py_dropped_writes_nothing(tmp_path, monkeypatch, capsys, weights_file, dropped):
    """A Ctrl-C raised where Python only prints it (a weakref callback while the weights load) still ends
    the run before the converted file is in place; the control, with none, converts."""
    from nst_numpy import weights
    real = weights.read_weights

    def read_weights(path):
        if dropped:
            _Dropping()
        return real(path)
    monkeypatch.setattr(weights, "read_weights", read_weights)
    out = tmp_path / "c.h5"
    status = load_script("convert_weights").main([weights_file, "-o", str(out)])
    err = capsys.readouterr().err
    if dropped:
        assert (status, err) == (130, "interrupted; nothing was written\n") and os.listdir(tmp_path) == []
    else:
        assert status == 0 and os.listdir(tmp_path) == ["c.h5"] and err == ""


def test_normalize_a_ctrl_c_h5py_dropped_writes_nothing(tmp_path, monkeypatch, capsys, weights_file):
    from nst_numpy import weights
    real = weights.read_weights
    monkeypatch.setattr(weights, "read_weights", lambda path: (_Dropping(), real(path))[1])
    script = load_script("normalize_weights")
    monkeypatch.setattr(script, "normalize_vgg19", _never)
    (tmp_path / "images").mkdir()
    _save_png(tmp_path / "images" / "a.png")
    status = script.main(["--images", str(tmp_path / "images"), "--weights", weights_file,
                          "-o", str(tmp_path / "n.h5"), "--size", "32"])
    assert (status, capsys.readouterr().err) == (130, "interrupted; nothing written\n")
    assert os.listdir(tmp_path) == ["images"]


# ---------------------------------------------------------------------------
# An output that is also an input
# ---------------------------------------------------------------------------

def _inputs(tmp_path, weights_file):
    """(script, arguments whose -o is an input, the work that must not start) for each script that reads a file."""
    w = tmp_path / "W.h5"
    w.write_bytes(open(weights_file, "rb").read())
    cat = _save_png(tmp_path / "cat.png")
    (tmp_path / "images").mkdir()
    return [("convert_weights", [str(w), "-o", str(w)], "convert"),
            ("normalize_weights", ["--images", str(tmp_path / "images"), "--weights", str(w), "-o", str(w)],
             "load_images"),
            ("reconstruct", ["--content", cat, "--weights", "random", "--size", "32", "--iterations", "1",
                             "-o", cat], "figure1"),
            ("reconstruct", ["--style", str(tmp_path / "link.png"), "--weights", "random", "-o", cat], "figure1")]


@pytest.mark.parametrize("case", range(4))
def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path, monkeypatch, capsys, weights_file, case):
    name, args, work = _inputs(tmp_path, weights_file)[case]
    os.symlink("cat.png", tmp_path / "link.png")   # the same file by another name
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    script = load_script(name)
    monkeypatch.setattr(script, work, _never)
    assert script.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: -o ") and "is also an input" in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_another_output_passes_the_check(tmp_path, monkeypatch, capsys, weights_file):
    """The control: the same arguments with a new output name get to the work."""
    script = load_script("reconstruct")
    done = []
    monkeypatch.setattr(script, "figure1", lambda *a, **k: done.append(1) or Image.new("RGB", (20, 20)))
    cat = _save_png(tmp_path / "cat.png")
    assert script.main(["--content", cat, "--weights", "random", "--size", "32", "-o", str(tmp_path / "f.png")]) == 0
    assert done == [1]


# ---------------------------------------------------------------------------
# Sizes and folders checked up front
# ---------------------------------------------------------------------------

def test_bench_precision_refuses_a_size_its_run_cannot_take(monkeypatch, capsys):
    """--run at 16 px made the cat 16x11 and ended in a traceback; now a usage error before any run,
    naming the least size, which itself runs (the control)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    script = load_script("bench_precision")
    monkeypatch.setattr(script, "final_losses", lambda *a: None)
    with pytest.raises(SystemExit) as e:
        script.main(["--run", "2", "--size", "16", "16"])
    out, err = capsys.readouterr()
    least = int(err.split("at least ")[1].split()[0])
    assert e.value.code == 2 and err.startswith("error: --run needs") and err.count("\n") == 1 and out == ""
    assert 16 < least < 64
    assert script.main(["--run", "2", "--size", "16", str(least)]) == 0


def test_smallest_size_is_where_the_runs_start_to_fit(guard):
    """The schedule's own checks fail just below the size found and pass from it up; and below it the
    answer is not monotone (the reason the gallery's old bound of 64 was wrong for 3 scales)."""
    from nst_numpy.optimize import check_style_sizes, scale_sizes
    content, style = (512, 512), (800, 591)   # astronaut and woman_with_hat

    def runs(size):
        try:
            check_style_sizes([style], scale_sizes(content, size, 3), 1.0)
            return True
        except ValueError:
            return False
    least = guard.smallest_size([content], [style], scales=3)
    assert not runs(least - 1) and all(runs(s) for s in range(least, least + 400))
    assert runs(50) and not runs(64)


@pytest.mark.parametrize("args, message", [
    (["--only", "tv", "--size", "82"], "--size must be at least 83 px"),
    (["--only", "sizes", "--sizes", "256,109"], "--sizes must be at least 110 px"),
    (["--only", "beta", "--size", "100"], "--size must be at least 110 px"),   # the beta grid has the rocket too
])
def test_make_tuning_images_refuses_sizes_its_schedule_cannot_run(tmp_path, monkeypatch, capsys, weights_file,
                                                                   args, message):
    script = load_script("make_tuning_images")
    monkeypatch.setattr(script, "Runner", _never)
    base = ["--weights", weights_file, "--outdir", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    assert script.main(base + args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1 and os.listdir(tmp_path) == []


def test_make_tuning_images_takes_the_least_size(tmp_path, monkeypatch, weights_file):
    """The control: at 83 px the tv grid runs (stand-in runs), and stylize's own checks take that size."""
    script = load_script("make_tuning_images")
    ran = []

    class Runner:
        def __init__(self, weights, cache):
            pass

        def run(self, content, styles, config, pooling, label=""):
            from nst_numpy.optimize import check_style_sizes, scale_sizes
            sizes = scale_sizes(script.sample(content).shape[:2], config.size, config.scales)
            check_style_sizes([script.sample(s).shape[:2] for s in styles], sizes, config.style_scale)
            ran.append(config.size)
            return np.full((8, 8, 3), 128, np.uint8)
    monkeypatch.setattr(script, "Runner", Runner)
    args = ["--weights", weights_file, "--outdir", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    assert script.main(args + ["--only", "tv", "--size", "83"]) == 0 and ran == [83] * 3


@pytest.mark.parametrize("cache, refused", [("afile", True), ("afile/sub", True), ("new/sub", False)])
def test_make_readme_images_checks_the_cache_before_the_first_run(tmp_path, monkeypatch, capsys, cache, refused):
    """A --cache that cannot be a folder used to fail after the first run (which it could not keep)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "out").mkdir()
    script = load_script("make_readme_images")
    runs = []

    class Runner:   # stand-in: the check, not the runs, is under test
        def __init__(self, weights, cache):
            pass

        def run(self, *a, **k):
            runs.append(1)
            return np.full((8, 8, 3), 128, np.uint8)
    monkeypatch.setattr(script, "Runner", Runner)
    status = script.main(["--weights", "random", "--cache", cache, "--only", "default", "--size", "384",
                          "--iterations", "1", "--outdir", "out"])
    err = capsys.readouterr().err
    if refused:
        where = "" if cache == "afile" else f" ({tmp_path / 'afile'} is a file)"
        assert (status, err, runs) == (2, f"error: --cache {cache}: not a folder{where}\n", [])
    else:
        assert status == 0 and runs == [1]
