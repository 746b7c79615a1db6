"""Make the README's pictures from the shipped samples (nst_numpy/sample_images/) with real VGG19 weights.

    python scripts/make_readme_images.py --weights PATH               # all of them (about an hour on 2 cores)
    python scripts/make_readme_images.py --weights PATH --only grid   # or default figure1 colors texture blend scale

Writes JPEGs into docs/images/, each titled with the weights that made it. Every run uses
Config() defaults except what the picture is about. The default run and the grid run at 512 px;
the pictures of one option run at 256 px, to fit a 2-core CPU budget. Runs are cached
(scripts/gallery.py), also across make_tuning_images.py: an interrupted script resumes, and a
run two pictures share is made once. Bad input: a one-line error, exit status 2.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # gallery.py, also when imported by the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

from gallery import (ROOT, Config, Runner, check_folder, run_guarded, sample, save_grid, to_uint8,  # noqa: E402
                     weights_label, weights_tag)

import numpy as np  # noqa: E402

from nst_numpy.image import fit_size, resize  # noqa: E402
from nst_numpy.console import OneLineParser  # noqa: E402
from nst_numpy.reconstruct import figure1  # noqa: E402

CONTENTS = ("astronaut", "coffee", "rocket")
STYLES = ("starry_night", "great_wave", "the_scream", "composition_vii")
SIZE = 512            # the default run and the grid, as the default run
CELL = 256            # grid cells are shown smaller; the runs are at SIZE
DEMO = 256            # the pictures of one option (colours, blend, style scale, texture): small runs, to fit 2 cores
FIGURE_SIZE = 128     # Figure 1: longest side of each cell, and its iterations
FIGURE_ITERATIONS = 100
PARTS = ("default", "grid", "figure1", "colors", "texture", "blend", "scale")
_BLANK = np.full((8, 8, 3), 255, np.uint8)   # the grid's empty top-left cell
TAG = ["vgg19_q8"]   # file-name tag, from --weights
RUN = {}   # --size / --iterations overrides (tests use them to stay fast); empty = the README's pictures


def cfg(demo=False, **changes):
    """Config() defaults at SIZE (DEMO if demo), with the picture's changes and any command-line overrides."""
    size = RUN.get("size", SIZE) * DEMO // SIZE if demo else RUN.get("size", SIZE)
    return Config(**dict(changes, size=size, **{k: v for k, v in RUN.items() if k not in changes and k != "size"}))


def part_grid(runner, outdir, label):
    """A row per photo: the photo, then its result in the style of each painting (shown in the first row)."""
    rows, labels = [[_BLANK] + [to_uint8(sample(s)) for s in STYLES]], [[""] + list(STYLES)]
    for c in CONTENTS:
        rows.append([to_uint8(sample(c))] + [runner.run(c, [s], cfg(), label=f"grid/{c}/{s}")
                                             for s in STYLES])
        labels.append([c] + [f"{c} x {s}" for s in STYLES])
    save_grid(os.path.join(outdir, f"grid_{TAG[0]}.jpg"), rows, labels,
              f"3 photos x 4 paintings, {RUN.get('size', SIZE)} px, default flags; {label}", side=CELL)


def part_default(runner, outdir, label):
    """What `python scripts/stylize.py` makes: the built-in cat in the style of the built-in The Starry Night."""
    img = runner.run("chelsea_cat", ["starry_night"], cfg(), label="default run")
    save_grid(os.path.join(outdir, f"default_run_{TAG[0]}.jpg"), [[img]], [[""]],
              f"the default run (no flags), {max(img.shape)} px; {label}", side=max(img.shape))


def part_figure1(runner, outdir, label):
    """Content reconstructions from relu1_2..relu5_2 and style reconstructions from growing layer sets."""
    content = sample("astronaut")
    content = resize(content, fit_size(content.shape, FIGURE_SIZE))
    style = resize(sample("starry_night"), content.shape[:2])   # each style reconstruction has the content's size
    start = time.perf_counter()
    iterations = RUN.get("iterations", FIGURE_ITERATIONS)
    fig = figure1(runner.net("avg"), content, style, iterations, seed=0,
                  title=f"Figure 1 (Gatys et al.), {FIGURE_SIZE} px, {iterations} iterations from noise; {label}",
                  progress=lambda m: print(m, file=sys.stderr, flush=True))
    runner.seconds["figure1"] = time.perf_counter() - start
    save_grid(os.path.join(outdir, f"figure1_{TAG[0]}.jpg"), [[np.asarray(fig)]], [[""]], "", side=max(fig.size))


def part_colors(runner, outdir, label):
    c, s = "astronaut", "starry_night"
    row = [to_uint8(sample(c)), to_uint8(sample(s))]
    names = [c, s]
    for mode in ("none", "luminance", "histogram"):
        row.append(runner.run(c, [s], cfg(True, preserve_colors=mode), label=f"colors/{mode}"))
        names.append(f"--preserve-colors {mode}")
    save_grid(os.path.join(outdir, f"colors_{TAG[0]}.jpg"), [row], [names],
              f"colour preservation, {row[-1].shape[1]} px, other flags default; {label}", side=CELL)


def part_texture(runner, outdir, label):
    row, names = [], []
    for s in ("starry_night", "composition_vii"):
        row += [to_uint8(sample(s)), runner.run(None, [s], cfg(True, content_weight=0.0, init="noise"),
                                                label=f"texture/{s}")]
        names += [s, "texture (--content none)"]
    save_grid(os.path.join(outdir, f"texture_{TAG[0]}.jpg"), [row], [names],
              f"texture synthesis from noise, {max(row[-1].shape)} px; {label}", side=CELL)


def part_blend(runner, outdir, label):
    c, (s1, s2) = "rocket", ("great_wave", "starry_night")
    row = [to_uint8(sample(c)), runner.run(c, [s1], cfg(True), label=f"blend/{s1}"),
           runner.run(c, [s1, s2], cfg(True), label="blend/50-50"),
           runner.run(c, [s2], cfg(True), label=f"blend/{s2}")]
    names = [c, s1, "both, --style-weights 1,1", s2]
    save_grid(os.path.join(outdir, f"blend_{TAG[0]}.jpg"), [row], [names],
              f"a two-style blend, {max(row[-1].shape)} px, other flags default; {label}", side=CELL)


def part_scale(runner, outdir, label):
    c, s = "coffee", "the_scream"
    row, names = [to_uint8(sample(c)), to_uint8(sample(s))], [c, s]
    for scale in (0.5, 1.0, 2.0):
        row.append(runner.run(c, [s], cfg(True, style_scale=scale), label=f"scale/{scale}"))
        names.append(f"--style-scale {scale}")
    save_grid(os.path.join(outdir, f"style_scale_{TAG[0]}.jpg"), [row], [names],
              f"style scale, {max(row[-1].shape)} px, other flags default; {label}", side=CELL)


def main(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="VGG19 weight file (the README's: the 8-bit quantized one); 'random' for a smoke test")
    p.add_argument("--only", action="append", choices=PARTS, help="make only this picture; repeatable (default: all)")
    p.add_argument("--size", type=int, help=f"longest side of the default run and the grid (default {SIZE}); "
                                            f"the option pictures run at half of it")
    p.add_argument("--iterations", type=int, help="iterations per scale of every run (default: Config's)")
    p.add_argument("--outdir", default=os.path.join(ROOT, "docs", "images"), help="output folder (default docs/images)")
    p.add_argument("--cache", default=os.path.join(ROOT, ".cache", "gallery"), help="run cache (default .cache/gallery)")
    args = p.parse_args(argv)

    def work():
        if (args.size is not None and args.size < 384) or (args.iterations is not None and args.iterations < 1):
            raise ValueError("--size must be at least 384 (the option pictures run at half of it, and --style-scale 0.5 "
                             "must leave 16 px at the coarsest scale); --iterations at least 1")
        RUN.clear()
        RUN.update({k: v for k, v in (("size", args.size), ("iterations", args.iterations),
                                      ("coarse_iterations", args.iterations)) if v is not None})
        if args.weights != "random" and not os.path.isfile(args.weights):
            raise ValueError(f"{args.weights}: no such weight file")
        if not os.path.isdir(args.outdir):
            raise ValueError(f"{args.outdir}: no such folder")
        check_folder(args.cache, "--cache")   # made by the first run: checked before it
        runner = Runner(args.weights, args.cache)
        TAG[0] = weights_tag(args.weights)
        label = weights_label(args.weights)
        start = time.perf_counter()
        for part in args.only or PARTS:
            globals()[f"part_{part}"](runner, args.outdir, label)
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    return run_guarded(work)

