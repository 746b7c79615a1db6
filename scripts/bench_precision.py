#!/usr/bin/env python
"""Float32 precision of the engine, next to PyTorch's float32, both against float64 (issue 13).

    python scripts/bench_precision.py                       # 160x224, seeds 0..9, one thread
    python scripts/bench_precision.py --weights W --objective   # the real weights instead of random ones
    python scripts/bench_precision.py --run 40 --size 112 160 --weights W   # final losses; no torch needed

One network, three ways, all with the He weights of FastVGG19.random(seed=0), or the weights of
--weights, rounded to float32 once, so the three share them exactly:

- truth: the reference network vgg.VGG19 (im2col, layers.py) in float64;
- ours:  the engine fast.FastVGG19 in float32 (Winograd F(4x4, 3x3), fast/winograd.py);
- torch: the same network in PyTorch float32 (conv2d with padding 1, relu, avg_pool2d 2x2;
  channels-last arrays -> NCHW), autograd for the backward.

For each seed: the built-in landscape (samples.py) plus noise as the image, and standard
normal upstream gradients at the style and content taps relu1_1, relu2_1, relu3_1,
relu4_1, relu4_2, relu5_1, as an objective's backward gets them. The error of a result a
against the truth b is max|a - b| / max|b| (the worst entry on the scale of the largest).
Columns, each for ours and torch and their ratio, one row per seed and the median:

- dx: the input gradient. Mostly decided by ReLU flips (see measure()): a run with no flip
  has ~1e-7..1e-6, one flip 1e-5..1e-2 whatever the rounding, so per-seed ratios swing by
  orders of magnitude, and so does the median of a few seeds (whether most seeds of one run
  flip). The summary under the table says how many seeds flipped for each, and compares dx
  over the seeds where neither did.
- dx, same masks: against the float64 backward through the run's own ReLU masks: the
  rounding error alone.
- acts: the worst tap's activation (every tap below, median over seeds).
- ReLU flips: units, over all 16 ReLUs, on in one precision and off in the other.

--objective also evaluates a real objective (make_objective, Config(), landscape content,
swirls style) at the content image plus noise with the float32 engine and with the float64
reference network, and prints the relative error of the loss and of its gradient.

--run N answers "does the engine's rounding change the picture?" without torch: N plain L-BFGS-B
iterations (one scale, no stopping rule) on the built-in cat and The Starry Night at --size,
three times: the float32 engine with its interpolation points (0, +-3/2, +-2/3), the float32
engine with Lavin & Gray's (0, +-1, +-2), and the float64 reference network. Each result is
scored alike, as bench_schedule.final_loss scores a run (the default objective on the output as
saved, in 8 bits) on the float64 reference network, so only the runs differ.

torch is imported in main() only (not for --run); without it the script says so and returns.
"""
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # script_guard, bench_schedule; also for the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

import numpy as np  # noqa: E402

from nst_numpy import VGG19, FastVGG19, samples  # noqa: E402
from nst_numpy.fast import winograd  # noqa: E402
from nst_numpy.fast.threads import blas_threads  # noqa: E402
from nst_numpy.console import OneLineParser, one_line  # noqa: E402
from nst_numpy.vgg_spec import CAFFE, LAYER_NAMES, random_params  # noqa: E402

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
LAST = max(LAYER_NAMES.index(t) for t in TAPS)
RELUS = [n for n in LAYER_NAMES[:LAST + 1] if n.startswith("relu")]


def rel_err(a, b):
    """max|a - b| / max|b|, b the float64 truth (the measure of issue 13)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def shared_params(seed=0, params=None):
    """FastVGG19.random(seed)'s weights, or params, rounded to float32 and held as float64: every network
    gets these."""
    return {n: (k.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
            for n, (k, b) in (params or random_params(seed)).items()}


def torch_network(torch, params, dtype):
    """run(x (H, W, 3), grads {tap: (H_l, W_l, C_l)}) -> ({relu: output}, dx (H, W, 3)), in PyTorch.

    Returns every ReLU's output up to the deepest tap (their signs are the backward's masks)."""
    tf = torch.nn.functional
    tdt = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    convs = {n: (torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))).to(tdt),   # HWIO -> OIHW
                 torch.from_numpy(b).to(tdt)) for n, (k, b) in params.items()}

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(2, 0, 1))[None]).to(tdt)

    def run(x, grads):
        xt = nchw(x).requires_grad_(True)
        h, acts = xt, {}
        for name in LAYER_NAMES[:LAST + 1]:
            if name.startswith("conv"):
                h = tf.conv2d(h, *convs[name], padding=1)
            elif name.startswith("relu"):
                h = acts[name] = tf.relu(h)
            else:
                h = tf.avg_pool2d(h, 2)
        torch.autograd.backward([acts[t] for t in TAPS], [nchw(grads[t]) for t in TAPS])
        out = {t: a.detach()[0].numpy().transpose(1, 2, 0) for t, a in acts.items()}
        return out, xt.grad[0].numpy().transpose(1, 2, 0)

    return run


def numpy_network(net):
    """The same run for a VGG19 or FastVGG19 (every ReLU requested: the same arithmetic, all kept)."""
    def run(x, grads):
        acts = net.forward(np.asarray(x, net.dtype), RELUS)   # copies: backward overwrites its buffers
        return acts, net.backward({t: np.asarray(g, net.dtype) for t, g in grads.items()})
    return run


def backward_with_masks(net64, masks, grads):
    """dx of the float64 reference network's last forward, with the ReLU masks given (bool, by name)
    instead of its own: the exact gradient of the network a float32 run decided on."""
    saved = list(net64._caches)
    # relu_backward passes the gradient where its cache > 0; a mask in its place does the same.
    net64._caches = [(n, masks[n].astype(np.float64) if n in masks else c) for n, c in saved]
    try:
        return net64.backward(grads)
    finally:
        net64._caches = saved


def case(seed, H, W, preprocess):
    """(image (H, W, 3) float64 network input, {tap: standard normal gradient})."""
    rng = np.random.default_rng(seed)
    x = preprocess(np.clip(samples.landscape(H, W) + rng.normal(0, 8, (H, W, 3)), 0, 255)).astype(np.float64)
    sizes = {t: (H >> (int(t[4]) - 1), W >> (int(t[4]) - 1), 64 << min(int(t[4]) - 1, 3)) for t in TAPS}
    return x, {t: rng.standard_normal(sizes[t]) for t in TAPS}


def measure(seeds, H, W, runs, net64):
    """{seed: {run name: {"dx", "dx_masks", "flips", "acts": {tap: error}}}} against the float64 net64.

    dx: the input gradient against the float64 truth. A ReLU whose input is within rounding
    of 0 can be on in float32 and off in float64 (a flip); the whole gradient through that
    unit then differs, an error that does not shrink with the rounding, only gets rarer,
    so one flip near the input can decide dx's error. dx_masks: against the float64
    backward through the float32 run's own masks (backward_with_masks), which leaves only
    the rounding error. flips: ReLU units of a different sign than in float64, all layers.
    """
    table = {}
    truth = numpy_network(net64)
    for seed in seeds:
        x, grads = case(seed, H, W, net64.preprocess)
        acts64, dx64 = truth(x, grads)
        table[seed] = {}
        for name, run in runs.items():
            acts, dx = run(x, grads)
            masks = {n: a > 0 for n, a in acts.items()}
            table[seed][name] = dict(
                dx=rel_err(dx, dx64), dx_masks=rel_err(dx, backward_with_masks(net64, masks, grads)),
                flips=sum(int(np.sum(masks[n] != (acts64[n] > 0))) for n in RELUS),
                acts={t: rel_err(acts[t], acts64[t]) for t in TAPS})
    return table


def print_table(table, names=("ours", "torch")):
    """One row per seed and the median; each measure for each run, then their ratio."""
    cols = [("dx", lambda r: r["dx"]), ("dx, same masks", lambda r: r["dx_masks"]),
            ("acts (worst tap)", lambda r: max(r["acts"].values())), ("ReLU flips", lambda r: r["flips"])]
    print(f"{'':>6s}" + "".join(f"  {c:^28s}" for c, _ in cols))
    print(f"{'seed':>6s}" + f"  {names[0]:>9s} {names[1]:>9s} {'ratio':>8s}" * len(cols))
    rows = np.array([[get(table[s][n]) for _, get in cols for n in names] for s in table], np.float64)
    for label, row in [(str(s), rows[i]) for i, s in enumerate(table)] + [("median", np.median(rows, 0))]:
        line = f"{label:>6s}"
        for k in range(len(cols)):
            a, b = row[2 * k], row[2 * k + 1]
            fmt = "{:9.0f}" if cols[k][0] == "ReLU flips" else "{:9.2e}"
            ratio = f"{a / b:8.1f}" if b > 0 else f"{'-':>8s}"
            line += "  " + fmt.format(a) + " " + fmt.format(b) + " " + ratio
        print(line)
    print_summary(table, names)
    print("\nactivation error per tap (median over seeds):")
    print(f"{'':>8s}" + "".join(f"{t:>10s}" for t in TAPS))
    for n in names:
        print(f"{n:>8s}" + "".join(f"{np.median([table[s][n]['acts'][t] for s in table]):10.2e}" for t in TAPS))


def print_summary(table, names=("ours", "torch")):
    """How often each run flipped a ReLU, and the two fair comparisons: dx over the seeds where neither
    flipped, and the rounding alone (dx through each run's own masks), as medians of per-seed ratios."""
    a, b = names
    flipped = {n: sum(table[s][n]["flips"] > 0 for s in table) for n in names}
    calm = [s for s in table if table[s][a]["flips"] == table[s][b]["flips"] == 0]
    line = f"\nReLU flips: {a} in {flipped[a]} of {len(table)} seeds, {b} in {flipped[b]}; "
    def median_ratio(key, seeds):   # of the per-seed ratios; a run with no error at all has none
        ratios = [table[s][a][key] / table[s][b][key] for s in seeds if table[s][b][key] > 0]
        return f"{np.median(ratios):.1f}" if ratios else "-"
    if calm:
        line += f"dx where neither flipped ({len(calm)} seeds): median ratio {median_ratio('dx', calm)}; "
    else:
        line += "no seed where neither flipped; "
    print(line + f"rounding alone (dx, same masks): median ratio {median_ratio('dx_masks', table)}")


def objective_errors(params, H, W, threads, prep=CAFFE):
    """Loss and gradient of make_objective, float32 engine vs float64 reference network."""
    from nst_numpy.config import Config
    from nst_numpy.objective import make_objective
    nets = {"ours": FastVGG19(params, preprocessing=prep, dtype=np.float32),
            "truth": VGG19(params, preprocessing=prep, dtype=np.float64)}
    nets["ours"].set_threads(threads)
    pre = nets["truth"].preprocess
    content, style = pre(samples.landscape(H, W)), pre(samples.swirls(H, W))
    x = content.reshape(-1) + np.random.default_rng(1).normal(0, 10, content.size)
    out = {}
    for name, net in nets.items():
        f = make_objective(net, content, [(style, 1.0)], Config())
        out[name] = f(x)
    (l32, g32), (l64, g64) = out["ours"], out["truth"]
    print(f"\nobjective at {H}x{W} (content landscape + noise, style swirls, Config()): loss {l64:.6g}; "
          f"float32 engine vs float64 reference: loss rel. error {abs(l32 - l64) / abs(l64):.1e}, "
          f"gradient max|a-b|/max|b| {rel_err(g32, g64):.2e}")


LAVIN_GRAY_POINTS = (0, 1, -1, 2, -2)


def final_losses(networks, side, iterations, threads):
    """{run name: loss}: N plain L-BFGS-B iterations three ways (module docstring, --run), the output's
    longest side `side`, each result scored as the schedule benchmark scores (bench_schedule.final_loss:
    the default objective on the output as saved) on the float64 reference network.
    networks(engine, dtype) -> a network ("fast" or "reference"), all with the same weights."""
    from bench_schedule import final_loss
    from nst_numpy.config import Config
    from nst_numpy.optimize import stylize
    photo, painting = samples.photo(), samples.painting()
    config = Config(size=side, iterations=iterations, scales=1, min_improvement=0, lbfgs_memory=10)
    net64 = networks("reference", np.float64)

    def fast():   # made inside the points' context: it transforms its kernels with their G once
        net = networks("fast", np.float32)
        net.set_threads(threads)
        return net
    runs = {"float32 engine, points 0, +-3/2, +-2/3": (fast, contextlib.nullcontext()),
            "float32 engine, points 0, +-1, +-2": (fast, winograd.interpolation_points(LAVIN_GRAY_POINTS)),
            "float64 reference network": (lambda: net64, contextlib.nullcontext())}
    losses = {}
    for name, (make, points) in runs.items():
        with points:
            out = stylize(make(), photo, [painting], config)
        losses[name] = final_loss(net64, photo, painting, out)[0]
        print(f"{name:>40s}: loss {losses[name]:.6f}", flush=True)
    first, second, truth = losses.values()
    print(f"{iterations} iterations at {out.shape[1]}x{out.shape[0]}: the points move the final loss by "
          f"{abs(first - second) / truth:.2e} (relative); the float32 runs lie {abs(first - truth) / truth:.2e} and "
          f"{abs(second - truth) / truth:.2e} from the float64 one")
    return losses


@script_guard.guarded()
def main(argv=None):
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, nargs=2, default=(160, 224), metavar=("H", "W"))
    p.add_argument("--seeds", type=int, nargs="+", default=tuple(range(10)))
    p.add_argument("--threads", type=int, default=1, help="for every network and BLAS (1)")
    p.add_argument("--objective", action="store_true", help="also the error of a real objective's loss and gradient")
    p.add_argument("--run", type=int, metavar="N", help="instead: final losses of N L-BFGS iterations at the "
                   "longest side of --size, float32 with either interpolation points and float64 (docstring)")
    p.add_argument("--weights", help="a VGG19 weights file (default: random He weights)")
    args = p.parse_args(argv)
    if min(args.size) < 16 or min(args.seeds) < 0 or args.threads < 1 or (args.run is not None and args.run < 1):
        p.error("--size needs at least 16 px per side, --seeds numbers >= 0, --threads and --run at least 1")
    if args.run is not None:   # the cat and The Starry Night at the longest side of --size: both must fit the network
        least = script_guard.smallest_size([samples.photo().shape[:2]], [samples.painting().shape[:2]], scales=1)
        if max(args.size) < least:
            p.error(f"--run needs a longest side (of --size) of at least {least} px: below it the built-in "
                    f"photo or painting is under 16 px on its short side")
    from nst_numpy.weights import WeightsError, read_weights
    try:   # a missing or bad file: one line, before any run
        params, prep = read_weights(args.weights)[:2] if args.weights else (None, CAFFE)
    except WeightsError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    params = shared_params(0, params)
    weights = f"weights {args.weights}" if args.weights else "He weights FastVGG19.random(0)"
    if args.run is not None:
        def networks(engine, dtype):
            return (FastVGG19 if engine == "fast" else VGG19)(params, preprocessing=prep, dtype=dtype)
        print(f"--run {args.run}, longest side {max(args.size)}, {weights}; losses scored in float64")
        with blas_threads(args.threads):
            final_losses(networks, max(args.size), args.run, args.threads)
        return 0
    try:
        import torch
    except ImportError:
        print("bench_precision: torch is not importable here (pip install torch); it is the comparison, so "
              "nothing is measured")
        return 0
    torch.set_num_threads(args.threads)
    H, W = args.size
    truth_net = VGG19(params, preprocessing=prep, dtype=np.float64)
    ours = FastVGG19(params, preprocessing=prep, dtype=np.float32)
    ours.set_threads(args.threads)
    runs = {"ours": numpy_network(ours), "torch": torch_network(torch, params, np.float32)}
    print(f"{H}x{W}, {weights}, taps {', '.join(TAPS)}; torch {torch.__version__}; "
          f"error = max|a - b| / max|b| against the float64 reference network")
    with blas_threads(args.threads):   # the reference network's products too
        print_table(measure(args.seeds, H, W, runs, truth_net))
        if args.objective:
            objective_errors(params, H, W, args.threads, prep)
    return 0

