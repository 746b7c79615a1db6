"""Smoke tests of the benchmark scripts (scripts/benchmark.py in every mode, with bench_tiling.py behind it;
--schedule and --curve, bench_schedule.py, are in test_bench_schedule.py), at tiny sizes with random weights.

The speed targets live in scripts/benchmark.py, which prints them: nothing here asserts a time. These
tests check that each mode runs and that what it prints is well formed and self-consistent (a row per
size or pair, the expected columns, ratios equal to the figures they divide, finite positive losses),
so that a broken script fails here.
"""
import ast
import functools
import io
import math
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from nst_numpy.vgg_spec import LAYER_NAMES
import script_helpers
from script_helpers import SCRIPTS, load_script, write_random_weights

NUM = r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"


one_blas_thread = script_helpers.one_blas_thread   # autouse: every test here runs on one BLAS thread


@pytest.fixture
def bench(monkeypatch):
    """scripts/benchmark.py as a module. It imports bench_schedule and bench_tiling by their plain names,
    found because a script's own folder is sys.path[0]: the tests put scripts/ on the path the same way."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return load_script("benchmark")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A converted weight file holding random weights: these modes read a file, not `random`."""
    return write_random_weights(tmp_path_factory.mktemp("weights") / "vgg19.h5")[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """'content.png:style.png': a 64x48 landscape photo (its 16:9 crop is 64x36) and a square painting."""
    folder = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(0)
    for name, shape in (("content", (48, 64, 3)), ("style", (40, 40, 3))):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{name}.png")
    return f"{folder / 'content.png'}:{folder / 'style.png'}"


def _is_ratio(ratio, a, b):
    """The printed ratio is a / b, within the rounding of the three printed figures (strings)."""
    half = {s: 0.5 * 10.0 ** -len(s.partition(".")[2]) for s in (ratio, a, b)}
    x, y = float(a), float(b)
    low = (x - half[a]) / (y + half[b])
    high = (x + half[a]) / (y - half[b]) if y > half[b] else math.inf
    return low - half[ratio] <= float(ratio) <= high + half[ratio]


def _positive(text):
    """A printed figure that is a finite number > 0."""
    value = float(text)
    return math.isfinite(value) and value > 0


# ---------------------------------------------------------------------------
# Default mode: the network alone
# ---------------------------------------------------------------------------

def test_conv_flops_counts_each_conv_once():
    """2 H W C_in C_out 9 per conv at its own resolution (halved by each pool), up to the layer asked for."""
    bench = load_script("benchmark")
    flops = bench.conv_flops(32, 32, "conv5_1")
    assert list(flops) == [n for n in LAYER_NAMES[:LAYER_NAMES.index("conv5_1") + 1] if n.startswith("conv")]
    assert flops["conv1_1"] == 2 * 32 * 32 * 3 * 64 * 9
    assert flops["conv3_4"] == 2 * 8 * 8 * 256 * 256 * 9
    assert flops["conv5_1"] == 2 * 2 * 2 * 512 * 512 * 9   # after four pools: 2x2
    assert list(bench.conv_flops(32, 32, "relu1_2")) == ["conv1_1", "conv1_2"]


def test_median_time_is_the_median_of_its_runs(bench, monkeypatch):
    """Runs of 1, 5 and 2 s (a noisy machine's outlier in the middle): the median, 2 s, not the mean."""
    clock = iter([0.0, 1.0, 10.0, 15.0, 20.0, 22.0])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    median, runs = bench.median_time(lambda: None, 3)
    assert median == pytest.approx(2.0) and runs == pytest.approx([1.0, 5.0, 2.0])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="VmHWM is Linux's")
def test_peak_rss_is_in_mib(bench):
    """VmHWM is in KiB: the same peak as getrusage's ru_maxrss (KiB on Linux), over 1024."""
    import resource
    assert bench.peak_rss_mb() == pytest.approx(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rel=0.005)


def test_network_mode_prints_a_layer_table_per_size(bench, capsys, monkeypatch):
    """A block per size; every conv and pool up to conv5_1 has a row, in network order, and only the
    convs a GFLOP/s figure."""
    # The 4096^3 product takes seconds on 2 cores; its rate is only printed, so a small one will do.
    monkeypatch.setattr(bench, "gemm_gflops", functools.partial(bench.gemm_gflops, n=128, repeat=1))
    assert bench.main(["--sizes", "16", "32", "--repeat", "1", "--threads", "1"]) in (None, 0)
    out = capsys.readouterr().out
    assert re.match(rf"float32 GEMM 4096\^3 with numpy's BLAS: {NUM} GFLOP/s\n", out)
    blocks = out.split("\n\n")[1:]
    expected = [n for n in LAYER_NAMES[:LAYER_NAMES.index("conv5_1") + 1] if n.startswith(("conv", "pool"))]
    assert len(blocks) == 2
    for size, block in zip((16, 32), blocks):
        head, columns, *rows = block.strip("\n").splitlines()
        m = re.fullmatch(rf"{size}x{size}: forward to conv5_1 \+ backward to pixels: median ({NUM}) s over 1, "
                         rf"(\d+) GFLOP \(direct-conv count\) -> (\d+) GFLOP/s effective, ({NUM})x the GEMM rate", head)
        assert m and _positive(m[1]), head
        assert columns.split() == ["layer", "forward", "ms", "backward", "ms", "GFLOP/s"]
        cells = [row.split() for row in rows]
        assert [c[0] for c in cells if not c[0].startswith("relu")] == expected   # ReLUs fused into convs are left out
        for c in cells:
            assert len(c) == (4 if c[0].startswith("conv") else 3), c
            assert all(math.isfinite(float(v)) and float(v) >= 0 for v in c[1:])


def test_network_mode_counts_forward_and_backward_against_the_gemm_rate(bench, capsys, monkeypatch):
    """The head line's figures from fixed timings: forward + backward are twice the convs' forward FLOPs,
    the effective rate is that over the median time, and its ratio is to the GEMM rate."""
    monkeypatch.setattr(bench, "gemm_gflops", lambda: 100.0)
    monkeypatch.setattr(bench, "median_time", lambda fn, repeat: (0.5, [0.5]))
    assert bench.main(["--sizes", "128", "--repeat", "1", "--threads", "1"]) in (None, 0)
    total = 2 * sum(bench.conv_flops(128, 128, "conv5_1").values())
    head = capsys.readouterr().out.split("\n\n")[1].splitlines()[0]
    assert (f"median 0.500 s over 1, {total / 1e9:.0f} GFLOP (direct-conv count) -> {total / 0.5 / 1e9:.0f} GFLOP/s "
            f"effective, {total / 0.5 / 1e9 / 100:.2f}x the GEMM rate") in head, head


# ---------------------------------------------------------------------------
# --compare-torch
# ---------------------------------------------------------------------------

def test_compare_torch_without_torch_says_so(bench, capsys, monkeypatch):
    """torch is optional: without it the mode explains and exits 2, no traceback."""
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch raises ImportError
    assert bench.main(["--compare-torch", "--sizes", "32"]) == 2
    assert "torch is not importable" in capsys.readouterr().out


def test_compare_torch_computes_the_same_objective(bench, capsys, request):
    """The PyTorch port of the objective agrees with ours (loss and gradient), and the printed ratio
    is ours / torch of the printed medians, one timing per --repeat."""
    torch = pytest.importorskip("torch")
    # compare_torch sets torch's process-wide thread count: put it back for later tests.
    request.addfinalizer(functools.partial(torch.set_num_threads, torch.get_num_threads()))
    assert bench.main(["--compare-torch", "--sizes", "32", "--repeat", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    m = re.search(rf"32x32: nst_numpy ({NUM}) s, torch ({NUM}) s, ratio ({NUM})x \(loss rel\. diff ({NUM}), "
                  rf"grad max diff / max ({NUM})\); runs: ours (.*); torch (.*)", out)
    assert m, out
    ours, theirs, ratio, loss_diff, grad_diff = m.group(1, 2, 3, 4, 5)
    assert _is_ratio(ratio, ours, theirs)
    assert float(loss_diff) < 1e-4 and float(grad_diff) < 1e-3   # float32 both: measured 1e-7 and 2e-6
    assert len(m[6].split(", ")) == len(m[7].split(", ")) == 2


# ---------------------------------------------------------------------------
# --table: one subprocess per size and framework
# ---------------------------------------------------------------------------

def _table(out):
    """The Markdown table's header cells and rows of cells."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    head, rule, *rows = ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    assert set("".join(rule)) == {"-"} and len(rule) == len(head)
    return head, rows


def _worker_results(err):
    """{(size, framework): the worker's JSON}, as the parent echoes it on stderr."""
    found = re.findall(r"^(\d+)px (\w+): (\{.*\})$", err, re.M)
    return {(int(size), framework): ast.literal_eval(d) for size, framework, d in found}


def test_table_mode_runs_a_real_stylize_per_size(bench, capsys):
    """A row per size, each from its worker's stylize: seconds per iteration and evaluation, and the
    peak RSS in GiB (VmHWM is in kB: a unit slip would put the 80 MB of weights far off)."""
    assert bench.main(["--table", "--sizes", "32", "48", "--iterations", "2", "--threads", "1"]) in (None, 0)
    out, err = capsys.readouterr()
    head, rows = _table(out)
    assert head == ["size", "nst_numpy s/iteration", "nst_numpy s/evaluation",
                    "nst_numpy ms/iteration outside evaluations", "nst_numpy peak RSS"]
    results = _worker_results(err)
    assert sorted(results) == [(32, "numpy"), (48, "numpy")]
    for size, row in zip((32, 48), rows):
        r = results[size, "numpy"]
        assert r["evaluations"] >= 2 and _positive(r["sec_per_iter"]) and _positive(r["sec_per_eval"])
        assert r["peak_mb"] > 80
        assert row == [f"{size}²", f"{r['sec_per_iter']:.2f}", f"{r['sec_per_eval']:.2f}", f"{r['outside_ms']:.0f}",
                       f"{r['peak_mb'] / 1024:.2f} GiB"]
    assert len(rows) == 2


def test_outside_seconds_subtracts_the_evaluations(bench):
    """Made-up times: iterations end at 1, 3, 6; evaluations 0.5-0.9 (before the span), 1.5-2.5,
    2.8-3.2 (straddles 3: both halves inside), 4-5. Outside: (6 - 1 - 1 - 0.4 - 1) / 2 iterations."""
    evals = [(0.5, 0.9), (1.5, 2.5), (2.8, 3.2), (4.0, 5.0)]
    assert bench.outside_seconds([1.0, 3.0, 6.0], evals) == pytest.approx(1.3)
    assert bench.outside_seconds([1.0, 2.0], [(0.0, 1.5)]) == pytest.approx(0.5)   # straddles the start


def test_table_runs_one_scale_of_plain_lbfgs_at_every_size(bench):
    """The default would start 1024 px coarse and stop by its rule: --table's median per iteration
    would then mix sizes. Its run is one scale, every iteration, 10 correction pairs, no restart."""
    from nst_numpy.optimize import iteration_budgets, scale_sizes
    for size in (256, 1024, 2048):
        config = bench.table_config(size, 12)
        assert scale_sizes((size, size), size, config.scales) == [(size, size)]
        assert iteration_budgets(config, 1) == [12] and config.min_improvement == 0
        assert config.correction_pairs() == 10 and config.restart_with_step_sizes_at() == 0


def test_table_torch_column(bench, capsys):
    """With --torch-column a second worker evaluates the objective in PyTorch; the ratio cell is
    ours / torch of the two workers' seconds per evaluation."""
    pytest.importorskip("torch")
    args = ["--table", "--torch-column", "--sizes", "32", "--iterations", "2", "--threads", "1"]
    assert bench.main(args) in (None, 0)
    out, err = capsys.readouterr()
    head, rows = _table(out)
    assert head[5:] == ["PyTorch s/evaluation", "PyTorch peak RSS", "ratio of s/evaluation"] and len(rows) == 1
    ours, theirs = (_worker_results(err)[32, fw] for fw in ("numpy", "torch"))
    assert theirs["evaluations"] == min(2, bench.TORCH_EVALUATIONS) and theirs["peak_mb"] > 0
    assert rows[0][5:] == [f"{theirs['sec_per_eval']:.2f}", f"{theirs['peak_mb'] / 1024:.2f} GiB",
                           f"{ours['sec_per_eval'] / theirs['sec_per_eval']:.2f}x"]


def test_table_marks_a_failed_worker(bench, capsys, monkeypatch):
    """A worker that crashes (the torch one, where torch is not installed) gives 'failed' cells and its
    last stderr line, not a traceback in the parent. The workers are stand-ins: only the parent is tested."""
    calls = []

    def fake_run(cmd, capture_output, text):
        calls.append(cmd)
        size, framework = int(cmd[cmd.index("--table-worker") + 1]), cmd[cmd.index("--framework") + 1]
        if framework == "torch" or size == 48:
            return subprocess.CompletedProcess(cmd, 1, "", "Traceback (most recent call last):\n"
                                               "ModuleNotFoundError: No module named 'torch'\n")
        return subprocess.CompletedProcess(cmd, 0, '{"sec_per_iter": 0.5, "sec_per_eval": 0.25, '
                                           '"evaluations": 3, "outside_ms": 40.4, "peak_mb": 2048}\n', "")

    monkeypatch.setattr(bench, "subprocess", types.SimpleNamespace(run=fake_run))
    bench.main(["--table", "--torch-column", "--sizes", "32", "48", "--iterations", "2", "--threads", "1"])
    out, err = capsys.readouterr()
    assert _table(out)[1] == [["32²", "0.50", "0.25", "40", "2.00 GiB", "failed", "", ""],
                              ["48²", "failed", "", "", "", "failed", "", ""]]
    assert "32px torch: failed: ModuleNotFoundError: No module named 'torch'\n" in err
    workers = [(sys.executable, "numpy"), (sys.executable, "torch")] * 2   # per size: ours, then PyTorch
    assert [(c[0], c[c.index("--framework") + 1]) for c in calls] == workers
    assert all(c[c.index("--iterations") + 1] == "2" and c[c.index("--threads") + 1] == "1" for c in calls)


# ---------------------------------------------------------------------------
# --schedule and --curve (bench_schedule.py)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["--schedule", "--curve", "--tiling-overhead", "--tiling-run"])
def test_modes_that_read_weights_refuse_to_run_without_them(bench, capsys, mode):
    """A usage error (exit 2) naming what is missing, before any work."""
    with pytest.raises(SystemExit) as e:
        bench.main([mode, "--pairs", "a.png:b.png"])
    assert e.value.code == 2 and "need --weights PATH" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--sizes", "8"], "--sizes must be at least 16"),
    (["--repeat", "0"], "at least 1"),
    (["--threads", "0"], "at least 1"),
    (["--tiling-overhead", "--tile-size", "0"], "multiple of 16"),
    (["--tiling-overhead", "--tile-size", "40"], "multiple of 16"),
    (["--table", "--iterations", "0"], "at least 1"),
    (["--schedule", "--weights", "w.h5", "--pairs", "c.png"], "CONTENT:STYLE"),
])
def test_bad_arguments_are_usage_errors(bench, capsys, args, message):
    """Checked after parsing, before any work: argparse's exit 2 with the reason."""
    with pytest.raises(SystemExit) as e:
        bench.main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_bad_inputs_in_a_mode_are_one_line_errors(bench, weights_file, pair, tmp_path, capsys):
    """Missing images, a file that is not weights, a bad --set: `error: ...` and exit 2, no traceback, and
    no table: --schedule reads every pair before its first run, so a bad last pair costs no runs."""
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    content, style = pair.split(":")
    cases = [(["--schedule", "--weights", str(text), "--pairs", pair], "not a recognised"),
             (["--curve", "--weights", weights_file, "--pairs", f"{tmp_path / 'nope.png'}:{style}"], "no such file"),
             (["--schedule", "--weights", weights_file, "--pairs", pair, "--set", "iterations=abc"], "invalid literal"),
             (["--schedule", "--weights", weights_file, "--pairs", pair, f"{content}:{tmp_path / 'nope.png'}"],
              "no such file")]
    for args, message in cases:
        assert bench.main(args + ["--sizes", "32"]) == 2
        out, err = capsys.readouterr()
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
        assert out == "", out


# ---------------------------------------------------------------------------
# --tiling-overhead and --tiling-run (bench_tiling.py)
# ---------------------------------------------------------------------------

def test_tiling_overhead_mode(bench, weights_file, pair, capsys):
    """Untiled against tiles forced: the median of --repeat runs each, and the ratio of the per-pixel figures."""
    assert bench.main(["--tiling-overhead", "--weights", weights_file, "--pairs", pair, "--sizes", "64",
                       "--tile-size", "32", "--repeat", "2", "--threads", "1"]) in (None, 0)
    out = capsys.readouterr().out
    assert re.search(r"^tiles of 32 px: \d+ windows of \d+ px$", out, re.M)
    per_px = {}
    for name in ("untiled", "tiles of 32 px"):
        m = re.search(rf"^64x64 {name}: median ({NUM}) s per evaluation \(({NUM}) us/px\), runs (.*)$", out, re.M)
        assert m and _positive(m[2]) and len(m[3].split(", ")) == 2, out
        per_px[name] = m[2]
    m = re.search(rf"^tiled / untiled per pixel: ({NUM})x$", out, re.M)
    assert m and _is_ratio(m[1], per_px["tiles of 32 px"], per_px["untiled"])


def test_tiling_run_mode_plans_then_runs_the_cli(bench, weights_file, pair, capfd, monkeypatch, tmp_path):
    """The command line's --dry-run plan, then the real run on a 16:9 crop; NST_BENCH_KEEP keeps its picture."""
    monkeypatch.setenv("NST_BENCH_KEEP", str(tmp_path))
    ballast = np.ones(1 << 27)   # 1 GiB in this process: the child's figure must not include it
    assert bench.main(["--tiling-run", "--weights", weights_file, "--pairs", pair, "--sizes", "64",
                       "--max-memory", "2G", "--set", "iterations=1", "scales=1"]) == 0
    del ballast
    out = capfd.readouterr().out   # capfd: the CLI children write to the inherited file descriptors
    assert "memory cap 2.00 GiB (--max-memory)" in out and "peak estimate" in out   # the plan
    m = re.search(rf"^measured: exit 0, wall \d+ s, peak RSS ({NUM}) GiB$", out, re.M)
    # The child's own peak (its VmHWM): a Python with numpy and the network, about 0.4 GiB. wait4's figure
    # had the spawning process's peak as a floor: at least the ballast.
    assert m and 0.02 < float(m[1]) < 1.0, out
    assert "VmHWM" not in out
    kept = list(tmp_path.glob("tiled_64_*.png"))
    assert len(kept) == 1
    with Image.open(kept[0]) as im:
        assert im.size == (64, 36)   # the 64x48 photo cropped to 16:9


@pytest.mark.parametrize("threads", [None, "3"])
def test_tiling_run_passes_threads_and_a_ctrl_c_leaves_no_kept_file(bench, pair, tmp_path, monkeypatch, capsys,
                                                                      threads):
    """--threads reaches both CLI runs (without it, the CLI's default); a Ctrl-C while the picture is copied
    into NST_BENCH_KEEP leaves nothing there (it once left a visible X.png.tmp). The CLI is stood in for."""
    import bench_tiling
    commands = []

    class Popen:   # the real run: writes its picture, reports its peak
        def __init__(self, args, **kwargs):
            commands.append(args)
            Image.new("RGB", (64, 36)).save(args[args.index("-o") + 1])
            self.stderr = io.StringIO("VmHWM 1024 kB\n")

        def wait(self):
            return 0

    def run(args, **kwargs):   # the --dry-run
        commands.append(args)
        return subprocess.CompletedProcess(args, 0, "plan\n", "")

    def copyfile(src, dst):
        with open(dst, "wb") as f:
            f.write(b"part of a picture")
        raise KeyboardInterrupt
    monkeypatch.setattr(bench_tiling, "subprocess", types.SimpleNamespace(run=run, Popen=Popen, PIPE=subprocess.PIPE))
    monkeypatch.setattr(bench_tiling.shutil, "copyfile", copyfile)
    keep = tmp_path / "keep"
    keep.mkdir()
    monkeypatch.setenv("NST_BENCH_KEEP", str(keep))
    args = ["--tiling-run", "--weights", "w.h5", "--pairs", pair, "--sizes", "64"]
    args += ["--threads", threads] if threads else []
    assert bench.main(args) == 130 and capsys.readouterr().err == "interrupted\n"
    assert len(commands) == 2 and os.listdir(keep) == []
    for command in commands:
        assert (command[command.index("--threads") + 1] == threads) if threads else "--threads" not in command
