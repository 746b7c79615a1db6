"""Make the grids of docs/tuning.md: how each loss weight and option changes real pictures.

    python scripts/make_tuning_images.py --weights PATH                 # every grid
    python scripts/make_tuning_images.py --weights PATH --only beta     # one grid (names: see --help)

Writes small JPEGs into docs/images/tuning/. Every run uses the shipped samples
(nst_numpy/sample_images/) and Config() defaults except what the grid varies and the schedule
(SCHEDULE); the grids run at --size (default 256 px, to fit a 2-core CPU budget) except "sizes". Runs are cached
(see gallery.py), so re-running after an interruption, or for one more grid, repeats nothing.
Bad input: a one-line error, exit status 2.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # gallery.py, also when imported by the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

from gallery import (ROOT, Config, Runner, check_folder, run_guarded, sample, save_grid, to_uint8,  # noqa: E402
                     weights_label)
from nst_numpy.console import OneLineParser  # noqa: E402

# (content, style): a portrait on a figurative portrait, a landscape-like scene on a figurative
# seascape, an object on an abstract painting, an animal on an expressive landscape.
PAIRS = (("astronaut", "woman_with_hat"), ("rocket", "great_wave"),
         ("coffee", "composition_vii"), ("chelsea_cat", "starry_night"))
ONE = PAIRS[:1]   # the hardest pair (a figurative portrait on a portrait), for the cheaper grids
BETAS = (3, 10, 30, 100, 300)
DEEP = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# The beta and layer grids were made before relu5_1 left the defaults: their layers are pinned, so they stay reproducible.
EQUAL = dict(style_layers=DEEP, style_layer_weights=(0.2,) * 5)
# Every grid was made with the schedule of its time, 3 scales and plain L-BFGS-B (no step sizes) with 10
# correction pairs: pinned too, so that this script still makes the pictures docs/tuning.md shows.
SCHEDULE = dict(scales=3, precondition_after=0, lbfgs_memory=10)

# grid name -> (pairs, [(column label, Config changes, pooling)], what the title says is varied)
GRIDS = {
    "beta": (PAIRS, [(f"beta {b}", dict(EQUAL, style_weight=float(b)), "avg") for b in BETAS],
             "style weight beta (relu1_1..relu5_1, 0.2 each)"),
    "layers": (PAIRS, [("equal 0.2 each", EQUAL, "avg"),
                       ("relu4_1,5_1 halved", dict(style_layers=DEEP, style_layer_weights=(0.25, 0.25, 0.25, 0.125, 0.125)),
                        "avg"),
                       ("no relu5_1", dict(style_layers=DEEP[:4], style_layer_weights=(0.25,) * 4), "avg")],
               "per-layer style weights (each set sums to 1, so beta means the same)"),
    "tv": (ONE, [(f"tv {t:g}", dict(tv_weight=t), "avg") for t in (0.0, 1.0, 10.0)], "TV weight gamma"),
    "content_layer": (ONE, [("content relu4_2", dict(content_layers=("relu4_2",)), "avg"),
                              ("content relu3_2", dict(content_layers=("relu3_2",)), "avg")], "content layer"),
    "pooling": (ONE, [("avg pooling", {}, "avg"), ("max pooling", {}, "max")], "pooling"),
    "init": (ONE, [("init content", dict(init="content"), "avg"), ("init noise", dict(init="noise"), "avg")],
             "starting image"),
}
SIZES = (256, 512, 1024)
SIZE_PAIR = ("rocket", "great_wave")


def make(runner, name, size, outdir, label, defaults):
    """One grid: a row per pair, the pair's photo and painting, then a column per variant."""
    pairs, variants, what = GRIDS[name]
    rows, labels = [], []
    for content, style in pairs:
        row = [to_uint8(sample(content)), to_uint8(sample(style))]
        names = [content, style]
        for col, changes, pooling in variants:
            cfg = Config(**dict(defaults, size=size, **changes))
            row.append(runner.run(content, [style], cfg, pooling, label=f"{name}/{content}/{col}"))
            names.append(col)
        rows.append(row)
        labels.append(names)
    title = f"{what}; {size} px, other flags default; {label}"
    save_grid(os.path.join(outdir, f"{name}.jpg"), rows, labels, title, side=size)


def make_sizes(runner, outdir, label, defaults, big_iterations, sizes=SIZES):
    """The same flags at several sizes (256, 512, 1024 px), shown at one display size to compare the balance."""
    content, style = SIZE_PAIR
    row, names = [to_uint8(sample(content)), to_uint8(sample(style))], [content, style]
    for size in sizes:
        changes = dict(size=size)
        if size > 512:
            changes["iterations"] = big_iterations
        cfg = Config(**dict(defaults, **changes))
        row.append(runner.run(content, [style], cfg, "avg", label=f"sizes/{size}"))
        names.append(f"{size} px" + (f", {big_iterations} it" if size > 512 else ""))
    save_grid(os.path.join(outdir, "sizes.jpg"), [row], [names],
              f"the same flags at {', '.join(map(str, sizes))} px (each shown at 400 px); {label}", side=400)


def smallest_size(pairs):
    """The least size from which up SCHEDULE runs every (content, style) of pairs (script_guard.smallest_size)."""
    return max(script_guard.smallest_size([sample(c).shape[:2]], [sample(s).shape[:2]], **SCHEDULE)
               for c, s in pairs)


def main(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="VGG19 weight file (e.g. the 8-bit quantized one)")
    p.add_argument("--only", action="append", choices=sorted(GRIDS) + ["sizes"],
                   help="make only this grid; repeat for several (default: all)")
    p.add_argument("--size", type=int, default=256, help="longest side of every run except 'sizes' (default 256)")
    p.add_argument("--big-iterations", type=int, default=60,
                   help="iterations of the runs above 512 px in 'sizes' (default 60, to fit a CPU budget; the default "
                   "has 150)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="the sizes of 'sizes' (default 256,512,1024)")
    p.add_argument("--outdir", default=os.path.join(ROOT, "docs", "images", "tuning"))
    p.add_argument("--cache", default=os.path.join(ROOT, ".cache", "gallery"))
    args = p.parse_args(argv)

    def work():
        tokens = [t.strip() for t in args.sizes.split(",")]
        sizes = tuple(int(t) for t in tokens if t.isdigit())
        if args.big_iterations < 1 or len(sizes) != len(tokens):
            raise ValueError("--sizes takes whole numbers separated by commas, --big-iterations at least 1")
        names = args.only or list(GRIDS) + ["sizes"]
        grid_pairs = {pair for n in names if n != "sizes" for pair in GRIDS[n][0]}
        checks = [("--size", [args.size], grid_pairs)] if grid_pairs else []
        checks += [("--sizes", sizes, [SIZE_PAIR])] if "sizes" in names else []
        for flag, given, pairs in checks:   # before any run: a failing size would have cost the ones before it
            least = smallest_size(pairs)
            if min(given) < least:
                raise ValueError(f"{flag} must be at least {least} px for these grids: at smaller sizes their "
                                 f"{SCHEDULE['scales']}-scale schedule can leave a painting under 16 px per side "
                                 f"at its coarsest scale")
        if not os.path.isfile(args.weights):
            raise ValueError(f"{args.weights}: no such weight file")
        for folder, flag in ((args.outdir, "--outdir"), (args.cache, "--cache")):   # made if missing
            check_folder(folder, flag)
        runner = Runner(args.weights, args.cache)
        label = weights_label(args.weights)
        start = time.perf_counter()
        for name in names:
            if name == "sizes":
                make_sizes(runner, args.outdir, label, SCHEDULE, args.big_iterations, sizes)
            else:
                make(runner, name, args.size, args.outdir, label, SCHEDULE)
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    return run_guarded(work)

