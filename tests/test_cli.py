"""The command line, end to end on tiny images with random weights (never real weights)."""
import dataclasses
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nst_numpy import cli, optimize

FAST = ["--weights", "random", "--size", "32", "--iterations", "2"]
COARSE = ["--coarse-iterations", "2"]   # with --scales 2 and up
_NETS = {}


@pytest.fixture(autouse=True)
def shared_random_networks(monkeypatch):
    """Build each random network once per session: making one (and its Winograd kernels) costs
    seconds, and the runs here are tiny. The CLI's own loading code still runs the first time."""
    original = cli._load_network

    def load(args, **kwargs):
        if args.weights != "random":
            return original(args, **kwargs)
        key = (args.pooling, args.engine)
        if key not in _NETS:
            _NETS[key] = original(args, **kwargs)
        return _NETS[key]
    monkeypatch.setattr(cli, "_load_network", load)


def _run(argv, tty=False):
    """main(argv) with stderr captured; returns (status, stderr text)."""
    err = io.StringIO()
    err.isatty = lambda: tty
    status = cli.main([str(a) for a in argv], stderr=err)
    return status, err.getvalue()


def _picture(path, h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 5 % 256, y * 6 % 256, rng.integers(0, 256, (h, w))], axis=2).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_defaults_stylize_the_built_in_samples(tmp_path):
    out = tmp_path / "output.png"
    status, err = _run(FAST + ["-o", out])
    assert status == 0, err
    im = Image.open(out)
    assert im.size == (32, 21)  # the cat photo is 451x300; --size is the longest side
    assert "style_weight=" in im.text["Parameters"] and "built-in starry_night.jpg" in im.text["Parameters"]
    assert "it 2/2" in err and "it/s" in err and "ETA" in err and "\r" not in err  # plain lines off a TTY


def test_user_images_jpeg_output_and_orientation(tmp_path):
    content = _picture(tmp_path / "c.png", 60, 40)  # portrait
    style = _picture(tmp_path / "s.png", 30, 30, seed=1)
    out = tmp_path / "o.jpg"
    status, err = _run(FAST + ["--content", content, "--style", style, "-o", out, "--quiet"])
    assert status == 0, err
    assert err == ""
    im = Image.open(out)
    assert im.format == "JPEG" and im.size == (21, 32)


def test_same_seed_same_bytes(tmp_path):
    outs = []
    for name, seed in (("a.png", 5), ("b.png", 5), ("c.png", 6)):
        status, err = _run(FAST + ["--init", "noise", "--seed", seed, "-o", tmp_path / name, "-q"])
        assert status == 0, err
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]  # negative control: the seed matters


@pytest.mark.parametrize("extra", [
    ["--optimizer", "adam", "--scales", "2", "--preserve-colors", "luminance"] + COARSE,
    ["--preserve-colors", "histogram", "--style-scale", "0.75", "--init", "noise"],
    ["--content", "none"],
    ["--content", "NONE", "--checkpoint-every", "1"],   # texture: no content file to hash for the checkpoint
    ["--scales", "10000000"],                           # scales under 16 px are dropped, and cost nothing
    ["--margin", "8", "--preserve-colors", "luminance", "--tile-size", "16"],
    ["--margin", "5", "--content", "none", "--save-every", "1"],
])
def test_feature_combinations_run(tmp_path, extra):
    s1, s2 = _picture(tmp_path / "s1.png", seed=1), _picture(tmp_path / "s2.png", 32, 32, seed=2)
    out = tmp_path / "o.png"
    status, err = _run(FAST + ["--style", s1, "--style", s2, "--style-weights", "1,3", "-o", out, "-q"] + extra)
    assert status == 0, err
    assert max(Image.open(out).size) == 32


def test_layer_flags_reach_the_run(tmp_path):
    """--content-layers, --style-layers and --style-layer-weights set the objective's layers (recorded in the PNG)."""
    out = tmp_path / "o.png"
    status, err = _run(FAST + ["--content-layers", "relu3_2", "--style-layers", "relu1_1 relu2_1",
                               "--style-layer-weights", "3,1", "-o", out, "-q"])
    assert status == 0, err
    text = Image.open(out).text["Parameters"]
    assert "content_layers=('relu3_2',)" in text and "style_layers=('relu1_1', 'relu2_1')" in text
    assert "style_layer_weights=(3.0, 1.0)" in text


def test_the_png_records_the_values_the_run_used(tmp_path):
    """Automatic settings appear resolved, and the thread count, which sets the float32 rounding."""
    out = tmp_path / "o.png"
    for extra, memory, after in (([], 5, 20), (["--min-improvement", "0"], 10, 0)):
        assert _run(["--weights", "random", "--size", "32", "--iterations", "2", "--threads", "3", "-q", "-o", out]
                    + extra)[0] == 0
        lines = Image.open(out).text["Parameters"].splitlines()
        assert f"lbfgs_memory={memory}" in lines and f"precondition_after={after}" in lines and "threads=3" in lines


def test_the_png_names_the_weight_file_taken_from_the_environment(tmp_path, monkeypatch):
    """With no --weights, the file NST_NUMPY_WEIGHTS points at is the one recorded, not 'default'."""
    from nst_numpy.vgg import VGG19
    from nst_numpy.weights import save_converted
    net = VGG19.random(seed=1)
    save_converted(net, tmp_path / "mine.h5", net.preprocessing, "random weights for a test", "0" * 64)
    monkeypatch.setenv("NST_NUMPY_WEIGHTS", str(tmp_path / "mine.h5"))
    out = tmp_path / "o.png"
    status, err = _run([a for a in FAST if a not in ("--weights", "random")] + ["-o", out, "-q"])
    assert status == 0, err
    assert f"weights={tmp_path / 'mine.h5'}" in Image.open(out).text["Parameters"].splitlines()


def test_help_names_the_program_as_invoked():
    """`nst-numpy --help` says nst-numpy; scripts/stylize.py says stylize.py."""
    import sys
    old = sys.argv[0]
    try:
        for argv0, name in (("/usr/local/bin/nst-numpy", "nst-numpy"), ("scripts/stylize.py", "stylize.py")):
            sys.argv[0] = argv0
            assert cli.build_parser().format_usage().startswith(f"usage: {name} ")
    finally:
        sys.argv[0] = old


def test_pooling_flag_reaches_the_network():
    net = cli._load_network(cli.build_parser().parse_args(["--weights", "random", "--pooling", "max"]))
    assert net.pooling == "max"


def test_save_every_writes_numbered_snapshots(tmp_path):
    out = tmp_path / "o.png"
    status, err = _run(FAST + ["--save-every", "1", "-o", out, "-q"])
    assert status == 0, err
    assert sorted(os.listdir(tmp_path)) == ["o.png", "o_0001.png", "o_0002.png"]


def test_a_snapshot_that_cannot_be_written_is_a_warning_not_the_end(tmp_path, monkeypatch):
    """A full disk at a snapshot: one warning, the run goes on and writes its output (exit 0)."""
    real = cli.save_image

    def full_disk_for_snapshots(path, *a, **k):
        if "_000" in str(path):
            raise cli.ImageError(f"{path}: cannot write ([Errno 28] No space left on device)")
        return real(path, *a, **k)
    monkeypatch.setattr(cli, "save_image", full_disk_for_snapshots)
    out = tmp_path / "o.png"
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "3", "--save-every", "1",
                        "-o", out, "-q"])
    assert status == 0 and os.listdir(tmp_path) == ["o.png"]
    assert err.count("warning:") == 2 and "o_0001.png: cannot write" in err and "the run goes on" in err
    assert "warning: 3 snapshots could not be written (steps 1–3)" in err   # the count, once, at the end


def test_progress_in_place_on_a_tty(tmp_path):
    status, err = _run(FAST + ["-o", tmp_path / "o.png"], tty=True)
    assert status == 0
    assert err.count("\r") == 2 and "it 1/2" in err and "it 2/2" in err


def test_a_tiled_run_shows_its_tiles(tmp_path):
    """Forced tiles (--tile-size 16 on a 96x64 picture, shallow layers: 24 windows): on a terminal,
    the tile count follows the iteration line during each evaluation."""
    shallow = ["--content-layers", "relu2_2", "--style-layers", "relu1_1,relu2_1", "--scales", "1"]
    status, err = _run(FAST + shallow + ["--size", "96", "--tile-size", "16", "-o", tmp_path / "o.png"], tty=True)
    assert status == 0, err
    assert "\revaluating: tile 1/24, pass 1/2" in err   # the first evaluation, before any iteration line
    assert "it 1/2  loss" in err and "  [tile 24/24, pass 2/2]" in err
    status, err = _run(FAST + shallow + ["--size", "96", "-o", tmp_path / "o.png"], tty=True)
    assert status == 0 and "[tile" not in err and "evaluating" not in err   # control: untiled, no count


def _bad_inputs(tmp_path):
    good = _picture(tmp_path / "good.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    data = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "out.checkpoint.npz").write_bytes(data)   # inputs named like files the run writes
    (tmp_path / "out_0001.png").write_bytes(data)
    Image.fromarray(np.zeros((10, 40, 3), np.uint8)).save(tmp_path / "tiny.png")
    return {
        "empty": ["--content", tmp_path / "empty.png"],
        "not an image": ["--style", tmp_path / "text.jpg"],
        "truncated": ["--content", tmp_path / "cut.png"],
        "missing": ["--content", tmp_path / "missing.png"],
        "too small": ["--content", tmp_path / "tiny.png"],
        "zero iterations": ["--iterations", "0"],
        "negative weight": ["--style-weight", "-1"],
        "nan weight": ["--content-weight", "nan"],
        "inf weight": ["--tv-weight", "inf"],
        "size too small": ["--size", "8"],
        "size not a number": ["--size", "big"],
        "size beyond memory": ["--size", "100000"],
        "bad style weights": ["--style", good, "--style-weights", "1,2"],
        "zero style weights": ["--style-weights", "0"],
        "every loss weight zero": ["--content-weight", "0", "--style-weight", "0", "--tv-weight", "0"],
        "negative style weight": ["--style-weights", "-1"],
        "unknown option": ["--frobnicate"],
        "unknown optimizer": ["--optimizer", "sgd"],
        "unknown layer": ["--style-layers", "relu1_1,relu9_9"],
        "empty layer list": ["--content-layers", ","],
        "layer named twice": ["--content-layers", "relu4_2,relu4_2"],
        "layer weights count": ["--style-layers", "relu1_1,relu2_1", "--style-layer-weights", "1"],
        "all-zero layer weights": ["--style-layers", "relu1_1", "--style-layer-weights", "0"],
        "negative min-improvement": ["--min-improvement", "-0.1"],
        "zero coarse iterations": ["--coarse-iterations", "0"],
        "texture with content init": ["--content", "none", "--init", "content"],
        "bad init path": ["--init", tmp_path / "nope.png"],
        "style too small at style-scale": ["--style-scale", "0.1"],
        "style too small, seen by --dry-run": ["--style-scale", "0.1", "--dry-run"],
        "unknown extension": ["-o", tmp_path / "out.xyz"],
        "no directory": ["-o", tmp_path / "no" / "dir" / "out.png"],
        "output is a directory": ["-o", tmp_path],
        "missing weights file": ["--weights", tmp_path / "nope.h5"],
        "abbreviated option": ["--resu", good, "--checkpoint-every", "1"],
        "style-scale beyond the pixel limit": ["--style-scale", "1000"],
        "huge lbfgs memory": ["--lbfgs-memory", "100000000000"],
        "memory size overflows": ["--max-memory", "9" * 400],
        "an int of 400 digits": ["--size", "9" * 400],   # float(it) overflows: was a traceback
        "weight beyond float32": ["--style-weight", "1e308"],
        "layer weight beyond float32": ["--style-layers", "relu1_1", "--style-layer-weights", "1e308"],
        "their product beyond float32": ["--style-weight", "1e30", "--style-layers", "relu1_1,relu2_1",
                                         "--style-layer-weights", "2,1"],   # each alone is allowed
        "checkpoints every 0 iterations": ["--checkpoint-every", "0"],
        "empty layer weights": ["--style-layer-weights", ""],
        "empty init": ["--init", ""],
        "empty content path": ["--content", ""],
        "empty output path": ["-o", ""],
        "colours of no content": ["--content", "none", "--preserve-colors", "luminance"],
        "texture with no style weight": ["--content", "none", "--style-weight", "0", "--tv-weight", "0"],
        "an empty style weight between commas": ["--style-weights", "1,,1"],
        "empty weights path": ["--weights", ""],
        "a device, not a file": ["--content", os.devnull],
        "format without an RGB writer": ["-o", tmp_path / "out.xbm"],
        "checkpoint over an input": ["--style", tmp_path / "out.checkpoint.npz", "--checkpoint-every", "1"],
        "snapshot over an input": ["--content", tmp_path / "out_0001.png", "--save-every", "1"],
        "checkpoint name too long": ["-o", tmp_path / ("a" * 245 + ".png"), "--checkpoint-every", "1"],   # 260 bytes
        "weights not a weights file": ["--weights", good],
    }


def test_bad_input_one_line_exit_2_no_output(tmp_path):
    for case, argv in _bad_inputs(tmp_path).items():
        out = tmp_path / "out.png"
        full = ["--weights", "random", "--size", "32", "--iterations", "1", "-o", out] + argv
        status, err = _run(full)
        assert status == 2, (case, err)
        assert err.startswith("error: ") and err.count("\n") == 1, (case, err)
        assert not out.exists(), case
        leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".")]
        assert not leftovers, case
    # inputs named like the checkpoint, a snapshot or an abbreviated --resume's target are untouched
    good = (tmp_path / "good.png").read_bytes()
    assert all((tmp_path / n).read_bytes() == good for n in ("good.png", "out.checkpoint.npz", "out_0001.png"))


@pytest.mark.parametrize("flag,value,says", [("--style-weight", "-1e3", "must be >= 0"),
                                              ("--max-memory", "-1G", "not understood"),
                                              ("--tv-weight", "-.5", "must be >= 0")])   # plain: passed before too
def test_a_negative_value_gets_its_own_check_not_a_missing_argument(tmp_path, flag, value, says):
    """argparse alone takes `-1e3` or `-1G` for an option and says "expected one argument"."""
    status, err = _run(["--weights", "random", "-o", tmp_path / "o.png", flag, value])
    assert status == 2 and says in err and value in err, err


def test_a_lowered_lbfgs_memory_is_noted_and_used(tmp_path, monkeypatch):
    """When --max-memory fits only with fewer L-BFGS pairs (memory_plan.plan_scale lowers m; its
    choice is tested in test_memory_plan), the CLI says so on one line and the optimiser gets that m.
    A 32 px run never needs it, so the plan is lowered to 3 by hand here."""
    real_plan, real_lbfgs, used = cli.plan_run, optimize.run_lbfgs, []

    def record(*args, **kwargs):
        used.append(args[6])   # run_lbfgs(f, x0, lo, hi, iterations, on_iteration, memory, ...)
        return real_lbfgs(*args, **kwargs)
    monkeypatch.setattr(optimize, "run_lbfgs", record)
    argv = FAST + ["--scales", "1", "--max-memory", "8G", "-o", tmp_path / "out.png"]
    status, err = _run(argv)
    assert status == 0 and "--lbfgs-memory lowered" not in err and used == [5], err   # control: the plan keeps the default m = 5
    used.clear()
    monkeypatch.setattr(cli, "plan_run",
                        lambda *a, **k: [dataclasses.replace(p, lbfgs_memory=3) for p in real_plan(*a, **k)])
    status, err = _run(argv)
    assert status == 0 and "note: --lbfgs-memory lowered from 5 to 3 to fit the memory cap 8.0 GiB\n" in err, err
    assert used == [3] and "lbfgs_memory=3" in Image.open(tmp_path / "out.png").text["Parameters"].splitlines()


def test_missing_weights_and_failed_download(tmp_path, monkeypatch):
    from nst_numpy import weights
    from nst_numpy.download import DownloadError

    def offline(*args, **kwargs):
        raise DownloadError("cannot reach the server (offline)")
    monkeypatch.setenv("NST_NUMPY_WEIGHTS", str(tmp_path / "vgg19.h5"))
    monkeypatch.setattr(weights, "download", offline)
    status, err = _run(["--size", "32", "--iterations", "1", "-o", tmp_path / "o.png", "-q"])
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "offline" in err
    assert not (tmp_path / "o.png").exists()

    def unreadable(*args, **kwargs):   # e.g. a file root may read but this user may not
        raise PermissionError(13, "Permission denied", "/weights/vgg19.h5")
    monkeypatch.setattr(cli, "get_vgg19", unreadable)
    status, err = _run(["--size", "32", "--iterations", "1", "-o", tmp_path / "o.png", "-q"])
    assert status == 2 and err == "error: cannot load weights: [Errno 13] Permission denied: '/weights/vgg19.h5'\n"
    assert not (tmp_path / "o.png").exists()


def test_engine_flag_runs_either_network_end_to_end(tmp_path):
    """--engine reference runs the whole stylization on vgg.VGG19, --engine fast (the default) on
    FastVGG19; the same weights and seed give the same picture up to float32 rounding."""
    images = {}
    for engine, cls in [("reference", "VGG19"), ("fast", "FastVGG19")]:
        args = cli.build_parser().parse_args(["--weights", "random", "--engine", engine])
        assert type(cli._load_network(args)).__name__ == cls
        out = tmp_path / f"{engine}.png"
        status, err = _run(FAST + ["--engine", engine, "--seed", "3", "-o", out, "-q"])
        assert status == 0 and err == "", err
        images[engine] = np.asarray(Image.open(out), np.float64)
    assert cli.build_parser().parse_args([]).engine == "fast"
    assert np.abs(images["reference"] - images["fast"]).mean() < 0.5   # in 0..255 levels


def test_script_runs_without_traceback(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "stylize.py")
    r = subprocess.run([sys.executable, script, "--iterations", "0", "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--preserve-colors" in r.stdout and "random weights" in r.stdout


def test_python_dash_m_runs_the_command(tmp_path):
    """`python -m nst_numpy` is the nst-numpy command: --version prints it and exits 0, --help names it."""
    root = os.path.join(os.path.dirname(__file__), "..")
    for flag, shown in (("--version", "nst_numpy"), ("--help", "usage: python -m nst_numpy")):
        r = subprocess.run([sys.executable, "-m", "nst_numpy", flag], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.path.abspath(root)})
        assert r.returncode == 0 and shown in r.stdout + r.stderr, (r.stdout, r.stderr)


def test_flags_this_run_cannot_use_get_a_note(tmp_path):
    """Given but unused flags are noted (the run goes on), and so is --margin's canvas; a flag the run uses
    gets none."""
    out = tmp_path / "o.png"
    cases = [(["--learning-rate", "3"], "--learning-rate is Adam's step size"),
             (["--optimizer", "adam", "--lbfgs-memory", "7"], "--lbfgs-memory is for L-BFGS"),
             (["--optimizer", "adam", "--precondition-after=3"], "--precondition-after is for L-BFGS"),
             (["--engine", "reference", "--threads", "2"], "--threads sets the fast engine's threads"),
             (["--scales", "20"], "--scales 20 gives 1 scale(s) at --size 32: halving further would go below 16 px"),
             (["--coarse-iterations", "5"], "--coarse-iterations is for the coarser scales; this run has one scale"),
             (["--content", "none", "--content-weight", "3"], "--content-weight has no content to work on"),
             (["--style-weights", "2"], "--style-weights blends several --style images; with one, it changes nothing"),
             (["--margin", "4"], "--margin 4: the run paints a 40x29 canvas and crops the 32x21 picture from it")]
    for extra, note in cases:
        status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "-o", out] + extra)
        assert status == 0 and f"note: {note}" in err, (extra, err)
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "-o", out,
                        "--optimizer", "adam", "--learning-rate", "3", "--scales", "1"])
    assert status == 0 and "note:" not in err   # the control: every flag used


def test_a_style_weighted_out_of_the_blend_is_not_checked_for_size(tmp_path):
    """A style image too small for the network is fine at weight 0 (it is never run), an error otherwise."""
    big, thin = _picture(tmp_path / "big.png", 48, 64), tmp_path / "thin.png"
    Image.fromarray(np.zeros((40, 300, 3), np.uint8)).save(thin)   # 32 px wide at this size: 4 px high
    out = tmp_path / "o.png"
    base = ["--weights", "random", "--size", "32", "--iterations", "1", "-q", "-o", out, "--style", big, "--style", thin]
    assert _run(base + ["--style-weights", "1,0"])[0] == 0
    status, err = _run(base + ["--style-weights", "1,1"])
    assert status == 2 and "too small" in err


def test_an_init_image_of_another_shape_is_noted(tmp_path):
    wide, same = tmp_path / "wide.png", tmp_path / "same.png"
    Image.fromarray(np.zeros((20, 80, 3), np.uint8)).save(wide)
    Image.fromarray(np.zeros((42, 64, 3), np.uint8)).save(same)   # the cat's 451x300 aspect, nearly
    out = tmp_path / "o.png"
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "--init", wide, "-o", out])
    assert status == 0 and f"note: --init {wide} is 80x20, stretched to the output's 32x21" in err
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "--init", same, "-o", out])
    assert status == 0 and "stretched" not in err   # the control: the same shape, no note


def test_cli_error_naming_a_path_with_a_newline_is_one_line(tmp_path):
    err = io.StringIO()
    status = cli.main(["--weights", "random", "--size", "32", "--iterations", "1", "-o", str(tmp_path / "o.png"),
                       "--content", str(tmp_path / "a\nb.png")], stderr=err)
    assert status == 2 and err.getvalue().startswith("error: ") and err.getvalue().count("\n") == 1, err.getvalue()


def test_cli_style_scale_pixel_limit_is_checked_before_any_work(tmp_path, monkeypatch):
    def never(*a, **k):
        raise AssertionError("stylize or the plan ran with a huge style image")
    monkeypatch.setattr(cli, "stylize", never)
    monkeypatch.setattr(cli, "plan_run", never)
    err = io.StringIO()
    status = cli.main(["--weights", "random", "--size", "32", "--iterations", "1", "--style-scale", "1000",
                       "-o", str(tmp_path / "o.png")], stderr=err)
    assert status == 2 and "px on a side" in err.getvalue(), err.getvalue()


def test_every_scale_gets_the_lowered_lbfgs_memory_the_png_records(tmp_path, monkeypatch):
    """A plan that lowers L-BFGS's memory at one scale lowers it at all: the PNG records one value, and a
    rerun with the recorded parameters must be the same run (the coarse scale kept 5 while 4 was recorded)."""
    real_plan, real_stylize, used = cli.plan_run, cli.stylize, []

    def plan_run(*a, **k):   # the last scale's plan lowered to 4, as a tight cap would
        plans = real_plan(*a, **k)
        return plans[:-1] + [dataclasses.replace(plans[-1], lbfgs_memory=4)]

    def stylize(*a, plans=None, **k):
        used.append([p.lbfgs_memory for p in plans])
        return real_stylize(*a, plans=plans, **k)
    monkeypatch.setattr(cli, "plan_run", plan_run)
    monkeypatch.setattr(cli, "stylize", stylize)
    out = tmp_path / "o.png"
    status, err = _run(FAST + COARSE + ["--size", "64", "--scales", "2", "--max-memory", "8G", "-o", out])
    assert status == 0 and used == [[4, 4]], err
    assert "lbfgs_memory=4" in Image.open(out).text["Parameters"].splitlines()
