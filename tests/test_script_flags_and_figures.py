"""What the scripts pass on and print: each flag reaching the code it names, each figure in its unit and
direction (ours over theirs, medians not means), and the files they write or credit.

A mutation run found these gaps (a flag ignored, a ratio inverted, a mean for a median, a cache file
written in place, a sample's credit dropped): each test here fails on such a change. Runs are faked
(stand-in networks, timers and torch), so the tests check the scripts' bookkeeping, not the engine.
"""
import io
import re
import sys
import types

import numpy as np
import pytest
from PIL import Image

from script_helpers import SCRIPTS, load_script


@pytest.fixture
def scripts_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))


# --- convert_weights / normalize_weights ------------------------------------------------------

def test_convert_prints_the_12_hex_digit_sha_prefix(monkeypatch, capsys, tmp_path):
    script = load_script("convert_weights")
    sha = "0123456789abcdef" * 4
    monkeypatch.setattr(script, "convert", lambda src, out: {"format": "keras", "source_name": "a.h5",
                                                               "source_sha256": sha})
    assert script.main(["a.h5", "-o", str(tmp_path / "o.h5")]) == 0
    assert f"sha256 {sha[:12]}..." in capsys.readouterr().out


def test_normalize_keeps_the_source_sha256(monkeypatch, tmp_path):
    script = load_script("normalize_weights")
    sha, saved = "ab" * 32, []
    monkeypatch.setattr(script, "load_images", lambda d, size: [np.zeros((32, 32, 3))])
    monkeypatch.setattr(script, "get_vgg19", lambda w, pooling: types.SimpleNamespace(preprocessing="caffe"))
    monkeypatch.setattr(script, "read_weights", lambda s: (None, None, {"normalized": False, "source_name": "v.pth",
                                                                        "source_sha256": sha}))
    monkeypatch.setattr(script, "normalize_vgg19", lambda net, images: types.SimpleNamespace(dead_filters={}))
    monkeypatch.setattr(script, "save_converted", lambda *a, **k: saved.append((a, k)))
    assert script.main(["--images", str(tmp_path), "-o", str(tmp_path / "n.h5"), "--weights", "w.h5"]) == 0
    (args, kwargs), = saved
    assert args[3:5] == ("v.pth", sha) and kwargs == {"normalized": True}


# --- gradcheck --------------------------------------------------------------------------------

def test_gradcheck_script_passes_seed_and_samples(monkeypatch, capsys):
    from nst_numpy.gradcheck import CheckResult
    script = load_script("gradcheck")
    asked = []
    monkeypatch.setattr(script, "run_all_checks",
                        lambda seed, n_samples: asked.append((seed, n_samples)) or [CheckResult("ok", 0.0, 1e-8, False)])
    assert script.main(["--seed", "7", "--samples", "5"]) == 0
    assert asked == [(7, 5)]


# --- reconstruct ------------------------------------------------------------------------------

def test_reconstruct_passes_pooling_engine_and_seed(monkeypatch, tmp_path):
    script = load_script("reconstruct")
    seen = {}

    def load_network(weights, pooling, seed, engine="fast"):
        seen["net"] = (weights, pooling, seed, engine)
        return None, "t"

    def figure1(net, content, style, iterations, seed, title, progress):
        seen["fig"] = (iterations, seed)
        return Image.new("RGB", (20, 20))
    monkeypatch.setattr(script, "load_network", load_network)
    monkeypatch.setattr(script, "figure1", figure1)
    args = ["--weights", "random", "--pooling", "max", "--engine", "reference", "--seed", "3", "--iterations", "2",
            "--size", "24", "-o", str(tmp_path / "f.png")]
    assert script.main(args) == 0
    assert seen == {"net": ("random", "max", 3, "reference"), "fig": (2, 3)}


def test_reconstruct_landscape_sample_is_landscape():
    script = load_script("reconstruct")
    assert script.input_image(None, script.landscape, 24).shape == (18, 24, 3)
    assert script.input_image(None, script.swirls, 24).shape == (24, 24, 3)


# --- gallery ----------------------------------------------------------------------------------

def _gallery(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    sys.modules.pop("gallery", None)
    import gallery
    return gallery


def _stub_gallery(gallery, monkeypatch, made):
    def stylize(net, content, styles, config):
        made.append((content is None, len(styles)))
        return np.full((4, 4, 3), 10.0 * len(made))
    monkeypatch.setattr(gallery, "load_network", lambda weights, pooling, seed: ("net", ""))
    monkeypatch.setattr(gallery, "stylize", stylize)
    monkeypatch.setattr(gallery, "sample", lambda name: np.zeros((4, 4, 3), np.float32))


def test_gallery_cache_key_holds_the_content(monkeypatch, tmp_path):
    gallery = _gallery(monkeypatch)
    made = []
    _stub_gallery(gallery, monkeypatch, made)
    runner = gallery.Runner("random", str(tmp_path / "cache"), io.StringIO())
    config = gallery.Config(size=64)
    a = runner.run("cat", ["starry"], config)
    b = runner.run("dog", ["starry"], config)
    assert len(made) == 2 and not np.array_equal(a, b)


def test_gallery_cache_write_is_atomic(monkeypatch, tmp_path):
    gallery = _gallery(monkeypatch)
    _stub_gallery(gallery, monkeypatch, [])

    def torn_save(path, arr):
        with open(path, "wb") as fh:
            fh.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(gallery.np, "save", torn_save)
    cache = tmp_path / "cache"
    runner = gallery.Runner("random", str(cache), io.StringIO())
    with pytest.raises(KeyboardInterrupt):
        runner.run("cat", ["starry"], gallery.Config(size=64))
    assert list(cache.iterdir()) == []


def test_weights_label(monkeypatch):
    gallery = _gallery(monkeypatch)
    assert gallery.weights_label("w/vgg19_q8.h5") == gallery.WEIGHTS_NOTE
    assert gallery.weights_label("w/vgg19.h5") == "VGG19 weights: vgg19.h5"


# --- make_readme_images -----------------------------------------------------------------------

def _readme_with_fakes(monkeypatch, asked, nets):
    script = load_script("make_readme_images")

    class FakeRunner:
        def __init__(self, weights, cache):
            self.seconds = {}

        def net(self, pooling):
            nets.append(pooling)

        def run(self, content, styles, config, label=""):
            asked[label] = (content, tuple(styles), config)
            return np.full((config.size * 3 // 4, config.size, 3), 128, np.uint8)

    def figure1(net, content, style, iterations, seed, title, progress):
        from nst_numpy.reconstruct import grid, to_uint8
        return grid([[to_uint8(content)]], [["c"]], title)
    monkeypatch.setattr(script, "Runner", FakeRunner)
    monkeypatch.setattr(script, "figure1", figure1)
    return script


def test_readme_grid_runs_each_painting_and_figure1_uses_avg(monkeypatch, tmp_path):
    asked, nets = {}, []
    script = _readme_with_fakes(monkeypatch, asked, nets)
    assert script.main(["--weights", "random", "--outdir", str(tmp_path), "--size", "384", "--iterations", "1",
                        "--only", "grid", "--only", "figure1"]) == 0
    for c in script.CONTENTS:
        for s in script.STYLES:
            assert asked[f"grid/{c}/{s}"][:2] == (c, (s,))
    assert nets == ["avg"]


def test_readme_overrides_do_not_leak_into_the_next_main(monkeypatch, tmp_path):
    asked, nets = {}, []
    script = _readme_with_fakes(monkeypatch, asked, nets)
    assert script.main(["--weights", "random", "--outdir", str(tmp_path), "--size", "384", "--iterations", "2",
                        "--only", "default"]) == 0
    assert script.main(["--weights", "random", "--outdir", str(tmp_path), "--only", "default"]) == 0
    assert asked["default run"][2] == script.Config(size=512)


def test_readme_iterations_zero_is_refused(monkeypatch, tmp_path, capsys):
    asked, nets = {}, []
    script = _readme_with_fakes(monkeypatch, asked, nets)
    assert script.main(["--weights", "random", "--outdir", str(tmp_path), "--iterations", "0"]) == 2
    assert "--iterations at least 1" in capsys.readouterr().err and asked == {} and list(tmp_path.iterdir()) == []


# --- make_tuning_images -----------------------------------------------------------------------

def test_tuning_layer_weight_sets_sum_to_one():
    script = load_script("make_tuning_images")
    for _, changes, _ in script.GRIDS["layers"][1]:
        assert sum(changes["style_layer_weights"]) == pytest.approx(1.0)
        assert len(changes["style_layer_weights"]) == len(changes["style_layers"])


def test_tuning_sizes_only_above_512_get_big_iterations(monkeypatch, tmp_path):
    script = load_script("make_tuning_images")
    asked = {}

    class FakeRunner:
        def run(self, content, styles, config, pooling, label=""):
            asked[label] = config
            return np.full((8, 8, 3), 128, np.uint8)
    script.make_sizes(FakeRunner(), str(tmp_path), "l", script.SCHEDULE, 7, sizes=(512, 513))
    assert asked["sizes/512"].iterations == script.Config().iterations and asked["sizes/513"].iterations == 7


# --- benchmark --------------------------------------------------------------------------------

class _FakeNet:
    """FastVGG19 stand-in: every conv takes 10 ms forward and 20 ms backward per step."""
    timings = None

    @classmethod
    def random(cls, seed, dtype):
        return cls()

    def set_threads(self, n):
        pass

    def forward(self, x, taps):
        if self.timings is not None:
            for name in self._convs():
                self.timings[(name, "forward")] = self.timings.get((name, "forward"), 0.0) + 0.01
        return {"conv5_1": np.zeros((1, 1, 1), np.float32)}

    def backward(self, ups):
        if self.timings is not None:
            for name in self._convs():
                self.timings[(name, "backward")] = self.timings.get((name, "backward"), 0.0) + 0.02

    @staticmethod
    def _convs():
        from nst_numpy.vgg_spec import LAYER_NAMES
        return [n for n in LAYER_NAMES[:LAYER_NAMES.index("conv5_1") + 1] if n.startswith("conv")]


def test_network_mode_per_layer_figures(scripts_on_path, monkeypatch, capsys):
    bench = load_script("benchmark")
    monkeypatch.setattr(bench, "FastVGG19", _FakeNet)
    monkeypatch.setattr(bench, "gemm_gflops", lambda: 100.0)
    assert bench.main(["--sizes", "32", "--repeat", "4", "--threads", "1"]) in (None, 0)
    out = capsys.readouterr().out
    flops = bench.conv_flops(32, 32, "conv5_1")
    row = re.search(r"^\s+conv2_1\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)
    assert row and row.groups() == ("10.0", "20.0", f"{2 * flops['conv2_1'] / 0.03 / 1e9:.0f}"), out


def test_compare_torch_ratio_is_ours_over_theirs(scripts_on_path, monkeypatch, capsys):
    bench = load_script("benchmark")
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="fake"))
    monkeypatch.setattr(bench, "make_torch_objective", lambda net, f, threads: f)
    clock = iter([0.2, 0.4] * 3)
    monkeypatch.setattr(bench, "median_time", lambda fn, repeat: (next(clock), None))
    assert bench.main(["--compare-torch", "--sizes", "32", "--repeat", "3", "--threads", "1"]) == 0
    assert "nst_numpy 0.200 s, torch 0.400 s, ratio 0.50x" in capsys.readouterr().out


def test_table_torch_ratio_cell_is_ours_over_theirs(scripts_on_path, monkeypatch, capsys):
    import subprocess
    bench = load_script("benchmark")

    def fake_run(cmd, capture_output, text):
        fw = cmd[cmd.index("--framework") + 1]
        d = ('{"sec_per_iter": 0.5, "sec_per_eval": 0.25, "evaluations": 3, "outside_ms": 40, "peak_mb": 2048}'
             if fw == "numpy" else '{"sec_per_eval": 0.5, "evaluations": 2, "peak_mb": 1024}')
        return subprocess.CompletedProcess(cmd, 0, d + "\n", "")
    monkeypatch.setattr(bench, "subprocess", types.SimpleNamespace(run=fake_run))
    bench.main(["--table", "--torch-column", "--sizes", "32", "--iterations", "2", "--threads", "1"])
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 32")][0]
    assert row.rstrip(" |").endswith("0.50x"), row


def test_table_worker_reports_the_median_iteration(scripts_on_path, monkeypatch, capsys):
    import json
    from nst_numpy import objective, optimize
    bench = load_script("benchmark")
    monkeypatch.setattr(objective.Objective, "__call__", objective.Objective.__call__)   # undone after the test
    clock = iter([0.0, 1.0, 2.0, 10.0])

    def fake_stylize(net, content, styles, config, callback):
        for _ in range(4):
            callback(None)
    monkeypatch.setattr(optimize, "stylize", fake_stylize)
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(bench, "FastVGG19", _FakeNet)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        bench.table_worker(32, 4, 1, "numpy")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sec_per_iter"] == 1.0


def test_benchmark_oserror_is_one_line(scripts_on_path, monkeypatch, capsys):
    bench = load_script("benchmark")

    def fail(p, a):
        raise OSError("disk full")
    monkeypatch.setattr(bench, "_dispatch", fail)
    assert bench.main([]) == 2 and capsys.readouterr().err == "error: disk full\n"


# --- bench_tiling -----------------------------------------------------------------------------

def test_tiling_overhead_median_and_us_per_px(scripts_on_path, monkeypatch, capsys, tmp_path):
    from nst_numpy import FastVGG19
    bt = load_script("bench_tiling")
    for name in ("c", "s"):
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    durations = [1.0, 2.0, 1.0, 2.0, 7.0, 2.0]   # untiled 1, 1, 7 (median 1, mean 3); tiled 2, 2, 2
    stamps = np.concatenate([[0.0], np.cumsum(durations)])
    ticks = iter(np.ravel([[t0, t1] for t0, t1 in zip(stamps[:-1], stamps[1:])]))
    monkeypatch.setattr(bt, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    bt.overhead(FastVGG19.random(seed=0), f"{tmp_path / 'c.png'}:{tmp_path / 's.png'}", 64, 32, 3)
    out = capsys.readouterr().out
    assert f"64x64 untiled: median 1.00 s per evaluation ({1e6 / 64 ** 2:.2f} us/px)" in out, out


def test_tiling_run_passes_set_fields_as_flags(scripts_on_path, monkeypatch, tmp_path):
    import subprocess
    bt = load_script("bench_tiling")
    Image.new("RGB", (64, 48)).save(tmp_path / "c.png")
    calls = []
    monkeypatch.setattr(bt, "subprocess", types.SimpleNamespace(
        run=lambda args, **k: calls.append(args) or subprocess.CompletedProcess(args, 1, "", "")))
    assert bt.run("w.h5", f"{tmp_path / 'c.png'}:{tmp_path / 'c.png'}", 64, None, ["min_improvement=0"]) == 1
    assert "--min-improvement" in calls[0] and "--min_improvement" not in calls[0]


# --- bench_precision --------------------------------------------------------------------------

def _bp():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_precision", SCRIPTS / "bench_precision.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_precision_table_median_row_and_ratio(capsys):
    bp = _bp()
    def r(dx):
        return {"dx": dx, "dx_masks": dx, "flips": 1, "acts": {t: dx for t in bp.TAPS}}
    table = {s: {"ours": r(a), "torch": r(1.0)} for s, a in ((0, 1.0), (1, 2.0), (2, 9.0))}
    bp.print_table(table)
    median = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("median")][0]
    assert median.split()[1:4] == ["2.00e+00", "1.00e+00", "2.0"], median


def test_precision_summary_counts_flips_and_compares_only_calm_seeds(capsys):
    """The line under the table: seeds with a flip per run, dx ratio over the seeds where neither flipped
    (seed 2's flip, 1000x, is left out), and the rounding-alone ratio over every seed."""
    bp = _bp()
    def r(dx, flips, masks):
        return {"dx": dx, "dx_masks": masks, "flips": flips, "acts": {t: 1.0 for t in bp.TAPS}}
    table = {0: {"ours": r(4.0, 0, 4.0), "torch": r(1.0, 0, 1.0)},
             1: {"ours": r(2.0, 0, 2.0), "torch": r(1.0, 0, 1.0)},
             2: {"ours": r(1e3, 3, 5.0), "torch": r(1.0, 0, 1.0)}}
    bp.print_summary(table)
    out = capsys.readouterr().out
    assert "ours in 1 of 3 seeds, torch in 0" in out and "(2 seeds): median ratio 3.0" in out, out
    assert "same masks): median ratio 4.0" in out, out
    table[0]["torch"]["flips"] = table[1]["ours"]["flips"] = 1
    bp.print_summary(table)
    assert "no seed where neither flipped" in capsys.readouterr().out
    for seed in table:   # a run with no error at all: no ratio, and no ZeroDivisionError
        table[seed]["torch"]["dx_masks"] = 0.0
    bp.print_summary(table)
    assert "same masks): median ratio -" in capsys.readouterr().out


def test_precision_weights_reach_the_torch_comparison(tmp_path, capsys, monkeypatch):
    """--weights is read before torch is needed (a bad file: one line, exit 2), and its float32-rounded
    weights, not the random ones, go to every network."""
    bp = _bp()
    assert bp.main(["--weights", str(tmp_path / "nope.h5")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    fake, prep = {"conv1_1": (np.full((3, 3, 3, 64), 0.1), np.zeros(64))}, object()
    monkeypatch.setattr("nst_numpy.weights.read_weights", lambda path: (fake, prep))
    seen = []

    def record(kind):
        return lambda params, preprocessing=None, dtype=None: seen.append((kind, params, preprocessing)) or \
            types.SimpleNamespace(set_threads=lambda n: None)
    monkeypatch.setattr(bp, "VGG19", record("truth"))
    monkeypatch.setattr(bp, "FastVGG19", record("ours"))
    monkeypatch.setattr(bp, "torch_network", lambda torch, params, dtype: seen.append(("torch", params, prep)))
    monkeypatch.setattr(bp, "measure", lambda *a: {})
    monkeypatch.setattr(bp, "print_table", lambda table: None)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(set_num_threads=lambda n: None, __version__="x"))
    assert bp.main(["--weights", "w.h5", "--size", "16", "16", "--seeds", "0"]) == 0
    assert [k for k, _, _ in seen] == ["truth", "ours", "torch"] and all(p is prep for _, _, p in seen)
    for _, params, _ in seen:   # the file's weights, rounded to float32 and held as float64
        k = params["conv1_1"][0]
        assert k.dtype == np.float64 and k[0, 0, 0, 0] == np.float64(np.float32(0.1)) != 0.1


def test_precision_run_uses_the_longest_side(monkeypatch):
    bp = _bp()
    seen = []
    monkeypatch.setattr(bp, "final_losses", lambda networks, side, it, threads: seen.append(side))
    assert bp.main(["--run", "1", "--size", "16", "32"]) == 0 and seen == [32]


def test_precision_final_losses_relative_and_second_run_in_lavin_gray_points(monkeypatch, capsys):
    bp = _bp()
    import bench_schedule
    from nst_numpy import optimize
    from nst_numpy.fast import winograd
    gs, losses = [], iter([101.0, 102.0, 100.0])
    monkeypatch.setattr(optimize, "stylize", lambda net, c, s, config: gs.append(winograd.G.copy()) or np.zeros((4, 6, 3)))
    monkeypatch.setattr(bench_schedule, "final_loss", lambda net, c, s, out: (next(losses),))
    monkeypatch.setattr(bp.samples, "photo", lambda: np.zeros((4, 6, 3)))
    monkeypatch.setattr(bp.samples, "painting", lambda: np.zeros((4, 6, 3)))
    bp.final_losses(lambda engine, dtype: types.SimpleNamespace(set_threads=lambda n: None), 6, 1, 1)
    assert "by 1.00e-02 (relative); the float32 runs lie 1.00e-02 and 2.00e-02" in capsys.readouterr().out
    assert not np.array_equal(gs[0], gs[1]) and np.array_equal(gs[0], gs[2])


def test_backward_with_masks_restores_the_caches():
    from nst_numpy import VGG19
    bp = _bp()
    net64 = VGG19(bp.shared_params(0), dtype=np.float64)
    x, grads = bp.case(0, 32, 32, net64.preprocess)
    acts = net64.forward(x, bp.RELUS)
    plain = net64.backward(grads)
    net64.forward(x, bp.RELUS)
    bp.backward_with_masks(net64, {n: a <= 0 for n, a in acts.items()}, grads)
    assert np.array_equal(net64.backward(grads), plain)


# --- samples ----------------------------------------------------------------------------------

def test_every_shipped_sample_is_credited_with_its_size_and_a_free_licence():
    from nst_numpy import samples
    files = sorted(samples.SAMPLE_DIR.glob("*.jpg"))
    assert len(files) >= 9
    for path in files:
        line = [ln for ln in samples.__doc__.splitlines() if ln.strip().startswith(path.name)]
        assert len(line) == 1, path.name
        with Image.open(path) as im:
            w, h = im.size
        assert f"{w}x{h}" in line[0], (line[0], w, h)
        licence = line[0].rsplit(":", 1)[1].strip()
        assert licence.startswith(("CC0 1.0", "public domain")), line[0]
