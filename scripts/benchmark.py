#!/usr/bin/env python
"""Speed and memory of the engine: where the speed targets live (never in timed tests).

    python scripts/benchmark.py                      # VGG19 forward to conv5_1 + backward, 256 and 512 px
    python scripts/benchmark.py --compare-torch      # one objective evaluation, side by side with PyTorch
    python scripts/benchmark.py --table              # time per iteration and peak RSS, 256..2048 px
    python scripts/benchmark.py --schedule --weights W --pairs C:S ...   # time to result (bench_schedule.py)
    python scripts/benchmark.py --tiling-overhead / --tiling-run ...    # any size in bounded memory (bench_tiling.py)
    python scripts/bench_precision.py                # float32 gradient error, ours and PyTorch's

Default mode (issue 2): for each size, the median time of a forward pass to conv5_1
plus a backward pass to the pixels, the effective GFLOP/s (2 H W C_in C_out 9 per
conv, the same again for the backward to the input), the time per layer, and the
GFLOP/s of a large float32 matrix product on this machine, with the ratio.

--compare-torch (issue 5): one full objective evaluation (forward to the default Config's
deepest layer, relu4_2; the paper's content and style losses plus TV; backward to the
pixels; float32) with make_objective, against the same network and losses written in PyTorch, run
alternately in one process; prints both medians and their ratio. torch is imported
only here and only with this flag; it is never a dependency of nst_numpy.

--table: for each size, a subprocess runs a real stylize (plain L-BFGS-B at that size alone, random
weights, synthetic images) for --iterations iterations and reports the median seconds per
iteration and per objective evaluation and its peak RSS (VmHWM); with --torch-column, a second subprocess
evaluates the same objective in PyTorch 3 times (median seconds per evaluation,
and the peak RSS of those evaluations alone). Prints a Markdown table.

All weights are random (He initialisation): the speed does not depend on them.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # script_guard, bench_*.py; also for the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from nst_numpy import FastVGG19  # noqa: E402
from nst_numpy.vgg_spec import CONV_SPECS, LAYER_NAMES  # noqa: E402
from nst_numpy.config import Config  # noqa: E402
from nst_numpy.console import OneLineParser  # noqa: E402
from nst_numpy.fast.threads import available_cores  # noqa: E402
from nst_numpy.weights import WeightsError  # noqa: E402

TORCH_EVALUATIONS = 3   # --table: PyTorch objective evaluations per size (median); it has no optimiser state


def conv_flops(H, W, upto):
    """{conv name: 2 H_l W_l C_in C_out 9} for the convs up to layer upto, one direction."""
    flops = {}
    for name in LAYER_NAMES[:LAYER_NAMES.index(upto) + 1]:
        if name.startswith("pool"):
            H, W = H // 2, W // 2
        elif name.startswith("conv"):
            c_in, c_out = dict((n, (a, b)) for n, a, b in CONV_SPECS)[name]
            flops[name] = 2 * H * W * c_in * c_out * 9
    return flops


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times


def gemm_gflops(n=4096, repeat=5):
    """GFLOP/s of an (n x n) @ (n x n) float32 product with numpy's BLAS (all its threads)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    a @ b
    t, _ = median_time(lambda: a @ b, repeat)
    return 2 * n ** 3 / t / 1e9


def synthetic_rgb(h, w, seed):
    """A smooth colourful test image, (h, w, 3) in 0..255 (no files needed)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    f = rng.uniform(2, 9, 3)
    img = np.stack([np.sin(f[c] * x + 3 * c) * np.cos(f[(c + 1) % 3] * y) for c in range(3)], -1)
    return (127.5 + 100 * img + rng.normal(0, 10, (h, w, 3))).clip(0, 255)


# ---------------------------------------------------------------------------
# Default mode: the network alone
# ---------------------------------------------------------------------------

def bench_network(sizes, repeat, threads):
    net = FastVGG19.random(seed=0, dtype=np.float32)
    net.set_threads(threads)
    rng = np.random.default_rng(0)
    gemm = gemm_gflops()
    print(f"float32 GEMM 4096^3 with numpy's BLAS: {gemm:.0f} GFLOP/s")
    for size in sizes:
        x = rng.standard_normal((size, size, 3)).astype(np.float32) * 50
        g = None

        def step():
            nonlocal g
            act = net.forward(x, ["conv5_1"])["conv5_1"]
            if g is None:
                g = rng.standard_normal(act.shape).astype(np.float32)
            net.backward({"conv5_1": g})

        step()  # warm-up: kernels transformed and buffers made once
        net.timings = {}
        t, _ = median_time(step, repeat)
        per_layer = {k: v / repeat for k, v in net.timings.items()}
        net.timings = None
        flops = conv_flops(size, size, "conv5_1")
        total = 2 * sum(flops.values())
        rate = total / t / 1e9
        print(f"\n{size}x{size}: forward to conv5_1 + backward to pixels: median {t:.3f} s over {repeat}, "
              f"{total / 1e9:.0f} GFLOP (direct-conv count) -> {rate:.0f} GFLOP/s effective, "
              f"{rate / gemm:.2f}x the GEMM rate")
        print(f"  {'layer':8s} {'forward ms':>10s} {'backward ms':>11s} {'GFLOP/s':>8s}")
        for name in LAYER_NAMES[:LAYER_NAMES.index("conv5_1") + 1]:
            if (name, "forward") not in per_layer and (name, "backward") not in per_layer:
                continue   # a ReLU fused into its conv
            f, b = per_layer.get((name, "forward"), 0.0), per_layer.get((name, "backward"), 0.0)
            gf = f"{2 * flops[name] / (f + b) / 1e9:8.0f}" if name in flops else ""
            print(f"  {name:8s} {1e3 * f:10.1f} {1e3 * b:11.1f} {gf}")


# ---------------------------------------------------------------------------
# --compare-torch: one objective evaluation, numpy vs PyTorch
# ---------------------------------------------------------------------------

def make_numpy_objective(net, size, seed=0):
    from nst_numpy.config import Config
    from nst_numpy.objective import make_objective
    content = net.preprocess(synthetic_rgb(size, size, seed))
    style = net.preprocess(synthetic_rgb(size, size, seed + 1))
    f = make_objective(net, content, [(style, 1.0)], Config())
    x0 = np.asarray(content, np.float64).reshape(-1)
    return f, x0


def make_torch_objective(net, f, threads):
    """The same network and losses in PyTorch, with the weights and targets of objective f."""
    import torch
    torch.set_num_threads(threads)
    tf = torch.nn.functional
    convs = {name: (torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))), torch.from_numpy(b))
             for name, (k, b) in net.params.items()}
    P = {n: torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1))[None]) for n, p in f.P.items()}
    A = {n: torch.from_numpy(a.astype(np.float32)) for n, a in f.A.items()}
    taps = set(f.layers)
    last = max(LAYER_NAMES.index(n) for n in taps)
    tv_scale = torch.from_numpy(f.tv_scale.astype(np.float32)).view(1, 3, 1, 1)
    H, W = f.shape[:2]

    def objective(x_flat):
        x = torch.from_numpy(np.asarray(x_flat, np.float32).reshape(H, W, 3).transpose(2, 0, 1).copy())[None]
        x.requires_grad_(True)
        h, acts = x, {}
        for name in LAYER_NAMES[:last + 1]:
            if name.startswith("conv"):
                h = tf.conv2d(h, *convs[name], padding=1)
            elif name.startswith("relu"):
                h = tf.relu(h)
            else:
                h = tf.avg_pool2d(h, 2)
            if name in taps:
                acts[name] = h
        loss = 0.0
        for name in f.content_layers:
            loss = loss + f.content_w[name] * 0.5 * ((acts[name] - P[name]) ** 2).sum()
        for name in f.style_layers:
            F2 = acts[name][0].reshape(acts[name].shape[1], -1)       # (N, M)
            N, M = F2.shape
            G = F2 @ F2.T
            loss = loss + f.style_w[name] * ((G - A[name]) ** 2).sum() / (4.0 * N ** 2 * M ** 2)
        xs = x * tv_scale
        tv = ((xs[:, :, 1:] - xs[:, :, :-1]) ** 2).sum() + ((xs[:, :, :, 1:] - xs[:, :, :, :-1]) ** 2).sum()
        loss = loss + f.tv_w * tv
        loss.backward()
        return float(loss.detach()), x.grad[0].numpy().transpose(1, 2, 0).reshape(-1)

    return objective


def compare_torch(sizes, repeat, threads):
    try:
        import torch
    except ImportError:
        print("--compare-torch: torch is not importable here (pip install torch); nothing to compare")
        return 2
    n = threads or available_cores()
    cfg = Config()   # the objective make_numpy_objective builds
    deepest = max(cfg.content_layers + cfg.style_layers, key=LAYER_NAMES.index)
    print(f"torch {torch.__version__}, {n} threads for both; float32; VGG19 to {deepest}, avg pooling, content "
          f"{','.join(cfg.content_layers)} + style {','.join(cfg.style_layers)} + TV; "
          f"medians over {repeat} alternating runs")
    for size in sizes:
        net = FastVGG19.random(seed=0, dtype=np.float32)
        net.set_threads(n)
        f, x0 = make_numpy_objective(net, size)
        tobj = make_torch_objective(net, f, n)
        x = x0 + np.random.default_rng(1).normal(0, 5, x0.shape)
        l_np, g_np = f(x)     # warm-up both, and check they compute the same thing
        l_t, g_t = tobj(x)
        gerr = float(np.max(np.abs(g_np - g_t)) / np.max(np.abs(g_t)))
        ours, theirs = [], []
        for _ in range(repeat):
            ours.append(median_time(lambda: f(x), 1)[0])
            theirs.append(median_time(lambda: tobj(x), 1)[0])
        a, b = float(np.median(ours)), float(np.median(theirs))
        print(f"{size}x{size}: nst_numpy {a:.3f} s, torch {b:.3f} s, ratio {a / b:.2f}x "
              f"(loss rel. diff {abs(l_np - l_t) / abs(l_t):.1e}, grad max diff / max {gerr:.1e}); "
              f"runs: ours {', '.join(f'{t:.2f}' for t in ours)}; torch {', '.join(f'{t:.2f}' for t in theirs)}")
    return 0


# ---------------------------------------------------------------------------
# --table: time per iteration and peak memory of a real stylize run, per size
# ---------------------------------------------------------------------------

def peak_rss_mb():
    """Peak resident set size of this process (VmHWM), in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def outside_seconds(stamps, evals):
    """Mean time per iteration spent outside the evaluations, from the first iteration's end to the
    last's. stamps: the iterations' end times; evals: (start, end) of every evaluation. An
    evaluation straddling a stamp counts only its part inside the span."""
    t0, t1 = stamps[0], stamps[-1]
    inside = sum(min(b, t1) - max(a, t0) for a, b in evals if b > t0 and a < t1)
    return (t1 - t0 - inside) / max(len(stamps) - 1, 1)


def table_config(size, iterations):
    """--table's run: `iterations` iterations of plain L-BFGS-B at the size asked, with 10 correction pairs
    (`--scales 1 --min-improvement 0`). The default would start 1024 px and larger runs at coarser scales, stop
    early by its rule and restart at iteration 20, so a median per iteration would mix sizes and events."""
    return Config(size=size, iterations=iterations, scales=1, min_improvement=0)


def table_worker(size, iterations, threads, framework):
    """Runs in a subprocess: prints one JSON line {sec_per_iter, sec_per_eval, evaluations,
    outside_ms, peak_mb}; outside_ms is the time per iteration spent outside the evaluations
    (scipy's L-BFGS-B update and the copies around it), from iteration 1 to the last."""
    if framework == "numpy":
        from nst_numpy import objective, optimize
        net = FastVGG19.random(seed=0, dtype=np.float32)
        net.set_threads(threads)
        evals, plain = [], objective.Objective.__call__

        def timed(self, x):   # time every objective evaluation (L-BFGS may do more than one per iteration)
            t0 = time.perf_counter()
            res = plain(self, x)
            evals.append((t0, time.perf_counter()))
            return res

        objective.Objective.__call__ = timed
        stamps = []
        optimize.stylize(net, synthetic_rgb(size, size, 0), [synthetic_rgb(size, size, 1)],
                         table_config(size, iterations),
                         callback=lambda s: stamps.append(time.perf_counter()))
        per_iter = float(np.median(np.diff(stamps))) if len(stamps) > 1 else float("nan")
        outside = outside_seconds(stamps, evals)
        print(json.dumps({"sec_per_iter": per_iter, "sec_per_eval": float(np.median([b - a for a, b in evals])),
                          "evaluations": len(evals), "outside_ms": 1000 * outside, "peak_mb": peak_rss_mb()}))
        return
    else:   # the same objective in torch, evaluated `iterations` times (no optimiser: time per evaluation)
        import gc
        net = FastVGG19.random(seed=0, dtype=np.float32)
        f, x0 = make_numpy_objective(net, size)   # the targets; then free our side and restart the peak
        tobj = make_torch_objective(net, f, threads)
        net.free_memory()
        del f
        gc.collect()
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")                          # resets VmHWM (Linux): count torch's peak only
        times = [median_time(lambda: tobj(x0), 1)[0] for _ in range(min(iterations, TORCH_EVALUATIONS))]
        print(json.dumps({"sec_per_eval": float(np.median(times)), "evaluations": len(times),
                          "peak_mb": peak_rss_mb()}))


def table(sizes, iterations, threads, torch_column):
    n = threads or available_cores()
    rows = []
    for size in sizes:
        row = {"size": size}
        for framework in ("numpy", "torch") if torch_column else ("numpy",):
            cmd = [sys.executable, os.path.abspath(__file__), "--table-worker", str(size), "--iterations",
                   str(iterations), "--threads", str(n), "--framework", framework]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                row[framework] = None
                last = (res.stderr.strip().splitlines() or ["no message"])[-1]
                print(f"{size}px {framework}: failed: {last}", file=sys.stderr)
            else:
                row[framework] = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{size}px {framework}: {row[framework]}", file=sys.stderr, flush=True)
        rows.append(row)
    head = ("| size | nst_numpy s/iteration | nst_numpy s/evaluation | nst_numpy ms/iteration outside evaluations "
            "| nst_numpy peak RSS |")
    line = "|---|---|---|---|---|"
    if torch_column:
        head += " PyTorch s/evaluation | PyTorch peak RSS | ratio of s/evaluation |"
        line += "---|---|---|"
    print(head + "\n" + line)
    for row in rows:
        ours = row["numpy"]
        cells = [f"{row['size']}²"]
        cells += ([f"{ours['sec_per_iter']:.2f}", f"{ours['sec_per_eval']:.2f}", f"{ours['outside_ms']:.0f}",
                   f"{ours['peak_mb'] / 1024:.2f} GiB"] if ours else ["failed", "", "", ""])
        if torch_column:
            th = row.get("torch")
            cells += [f"{th['sec_per_eval']:.2f}", f"{th['peak_mb'] / 1024:.2f} GiB"] if th else ["failed", ""]
            cells.append(f"{ours['sec_per_eval'] / th['sec_per_eval']:.2f}x" if ours and th else "")
        print("| " + " | ".join(cells) + " |")


@script_guard.guarded(errors=(ValueError, OSError, WeightsError))   # ImageError is a ValueError
def main(argv=None):
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", help="image sides (default: 256 512; 512 1024 with "
                   "--compare-torch; 256 512 1024 2048 with --table; 320 512 with --schedule; 320 with --curve; "
                   "2048 with --tiling-overhead; 3840 with --tiling-run)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per size (median reported; at most 3 with "
                   "--tiling-overhead, whose runs take minutes at 2048 px)")
    p.add_argument("--threads", type=int, default=None, help="threads for nst_numpy and torch alike (default: all cores)")
    p.add_argument("--compare-torch", action="store_true", help="objective evaluation vs PyTorch, side by side")
    p.add_argument("--table", action="store_true", help="time per iteration and peak RSS of stylize per size")
    p.add_argument("--torch-column", action="store_true", help="with --table: add PyTorch's time and RSS")
    p.add_argument("--iterations", type=int, default=25, help="with --table: iterations per size of plain L-BFGS-B "
                   "at that size (--scales 1 --min-improvement 0); more than its 10 stored pairs, so that the "
                   "optimiser's memory is counted")
    p.add_argument("--schedule", action="store_true", help="time to result: the default schedule against "
                   "--scales 1 --iterations 300 --min-improvement 0 (plain L-BFGS-B), on --pairs with "
                   "--weights (see bench_schedule.py)")
    p.add_argument("--curve", action="store_true", help="content, per-layer style and TV terms against iteration "
                   "and seconds, for one run of the first --pairs entry")
    p.add_argument("--weights", help="with --schedule / --curve: a VGG19 weight file (random weights say nothing here)")
    p.add_argument("--pairs", nargs="+", metavar="CONTENT:STYLE", help="with --schedule / --curve: image pairs")
    p.add_argument("--set", nargs="+", metavar="FIELD=VALUE", help="with --schedule / --curve: Config overrides, "
                   "e.g. scales=3 min_improvement=0.001. Schedule fields (scales, iterations, lbfgs_memory, "
                   "precondition_after, optimizer, ...) change the new run only; the others (loss weights, layers, "
                   "style_scale) the objective both runs minimise and are scored by")
    p.add_argument("--tiling-overhead", action="store_true", help="one evaluation untiled against tiles forced "
                   "(--tile-size), at --sizes (default 2048), with --weights and the first --pairs entry")
    p.add_argument("--tiling-run", action="store_true", help="the command line at --sizes on a 16:9 crop: the "
                   "--dry-run plan beside the measured peak RSS and time (see bench_tiling.py)")
    p.add_argument("--tile-size", type=int, default=1024, help="with --tiling-overhead (default 1024)")
    p.add_argument("--max-memory", help="with --tiling-run: passed to the command line, e.g. 8G")
    p.add_argument("--table-worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--framework", default="numpy", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if any(n < 16 for n in a.sizes or []):
        p.error(f"--sizes must be at least 16 px, got {min(a.sizes)}")
    if min(a.repeat, a.iterations) < 1 or (a.threads is not None and a.threads < 1):
        p.error("--repeat, --iterations and --threads must be at least 1")
    if a.tile_size < 16 or a.tile_size % 16:
        p.error(f"--tile-size must be a positive multiple of 16, got {a.tile_size}")
    if any(":" not in q for q in a.pairs or []):
        p.error("--pairs takes CONTENT:STYLE, the two paths joined by a colon")
    return _dispatch(p, a)


def _dispatch(p, a):
    """Runs the mode the parsed arguments `a` ask for; p reports usage errors."""
    if a.table_worker:
        return table_worker(a.table_worker, a.iterations, a.threads, a.framework)
    if a.compare_torch:
        return compare_torch(a.sizes or [512, 1024], a.repeat, a.threads)
    if a.table:
        return table(a.sizes or [256, 512, 1024, 2048], a.iterations, a.threads, a.torch_column)
    if a.tiling_overhead or a.tiling_run:
        import bench_tiling
        if not (a.weights and a.pairs):
            p.error("--tiling-overhead and --tiling-run need --weights PATH and --pairs CONTENT:STYLE")
        if a.tiling_run:
            return bench_tiling.run(a.weights, a.pairs[0], (a.sizes or [3840])[0], a.max_memory, a.set, a.threads)
        from nst_numpy.weights import load_vgg19
        net = load_vgg19(a.weights)
        net.set_threads(a.threads)
        return bench_tiling.overhead(net, a.pairs[0], (a.sizes or [2048])[0], a.tile_size, min(a.repeat, 3))
    if a.schedule or a.curve:
        import bench_schedule as B
        if not (a.weights and a.pairs):
            p.error("--schedule and --curve need --weights PATH and --pairs CONTENT:STYLE ...")
        from nst_numpy.weights import load_vgg19
        net = load_vgg19(a.weights)
        net.set_threads(a.threads)
        if a.curve:
            return B.curve(net, a.pairs[0], (a.sizes or [320])[0], B.parse_set(a.set))
        return B.schedule(net, a.pairs, a.sizes or [320, 512], B.parse_set(a.set))
    return bench_network(a.sizes or [256, 512], a.repeat, a.threads)

