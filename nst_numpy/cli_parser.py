"""The command line's flags: build_parser(), with one-line errors (UsageError) and checked values.

cli.py runs what they ask; README.md's flag table explains them.
"""
import argparse
import math
import os
import re
import sys

from . import __version__
from .config import (AUTO_LBFGS_MEMORY, AUTO_PRECONDITION_AFTER, MAX_LBFGS_MEMORY, MAX_WEIGHT, OPTIMIZERS,
                     PLAIN_LBFGS_MEMORY, PRESERVE, Config)
from .fast.threads import available_cores
from .memory_plan import parse_size
from .optimize import AUTO_COARSEST
from .weights import ENGINES


class UsageError(Exception):
    """A problem with the command line or its inputs; printed as one line, exit status 2."""


class CliParser(argparse.ArgumentParser):
    """One-line errors, and no abbreviated options: `--resu X` taken for `--resume X` would write a
    checkpoint over X and delete it (_resumed looks for the full name)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)
        # argparse takes a value that starts with "-" for a value only if it looks like a plain negative
        # number, so `--style-weight -1e3` or `--max-memory -1G` said "expected one argument". No flag
        # of ours starts with "-" and a digit, so every such token is a value: its own check then
        # says what is wrong with it. (A private attribute, read by argparse's option matching.)
        self._negative_number_matcher = re.compile(r"^-\.?\d.*")

    def error(self, message):
        raise UsageError(message)  # one line, not argparse's usage block


def _number(kind, minimum=None, strict=False, maximum=None):
    """argparse type: a finite int/float >= minimum (> minimum if strict), <= maximum.

    Ints are capped at 2^63 - 1 even with no maximum: Python's are unbounded, and one of 400 digits
    would overflow the first float it meets (deep in a run, as a traceback)."""
    if kind is int and maximum is None:
        maximum = 2 ** 63 - 1

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {kind.__name__}: {text!r}")
        if kind is float and not math.isfinite(value):   # (math.isfinite of a 400-digit int overflows)
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum if kind is int else f'{maximum:g}'}, "
                                             f"got {text!r}")
        return value
    return parse


def _layer_list(text):
    """'relu1_1,relu2_1' or 'relu1_1 relu2_1' -> ('relu1_1', 'relu2_1'); Config.validate checks the names."""
    names = tuple(text.replace(",", " ").split())
    if not names:
        raise argparse.ArgumentTypeError("needs at least one layer name")
    return names


def _weights_list(text):
    """'1,2' or '1 2' -> [1.0, 2.0], each finite, >= 0 and at most MAX_WEIGHT."""
    parse = _number(float, 0.0, maximum=MAX_WEIGHT)
    if "," in text and not all(part.strip() for part in text.split(",")):   # '1,,1' was read as two weights
        raise argparse.ArgumentTypeError(f"an empty value between commas in {text!r}")
    values = [parse(t) for t in text.replace(",", " ").split()]
    if not values:
        raise argparse.ArgumentTypeError("needs at least one weight")
    return values


def _weights_path(text):
    if not text.strip():   # was "weight file . is not a file"
        raise argparse.ArgumentTypeError("needs a weight file's path, or random")
    return text


def _init_choice(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("needs content, noise or an image path")
    return text


def _memory_size(text):
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def build_parser():
    d = Config()
    prog = os.path.basename(sys.argv[0]) or "nst-numpy"
    p = CliParser(prog="python -m nst_numpy" if prog == "__main__.py" else prog,
                  description="Neural style transfer (Gatys et al.) in pure NumPy. With no arguments: paints a "
                              "built-in photo of a cat in the style of The Starry Night into output.png.")
    io = p.add_argument_group("inputs and output")
    io.add_argument("--content", metavar="PATH",
                    help="content image (default: a built-in photo of a cat); 'none' for texture synthesis")
    io.add_argument("--style", metavar="PATH", action="append",
                    help="style image; repeat to blend several (default: built-in The Starry Night, van Gogh)")
    io.add_argument("--style-weights", metavar="W,W,...", type=_weights_list,
                    help="blend weight of each --style image (default: equal)")
    io.add_argument("--output", "-o", metavar="PATH", default="output.png",
                    help="output image; the format follows the extension (default: output.png)")
    io.add_argument("--size", type=_number(int, 16), default=d.size,
                    help=f"longest side of the output in pixels (default: {d.size})")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--iterations", type=_number(int, 1), default=d.iterations,
                     help=f"most L-BFGS (or Adam) iterations at the output size, the last scale; fewer when "
                          f"--min-improvement ends it first (default: {d.iterations})")
    opt.add_argument("--coarse-iterations", type=_number(int, 1), default=d.coarse_iterations,
                     help=f"most iterations at each coarser scale, when --scales > 1 (default: {d.coarse_iterations})")
    opt.add_argument("--min-improvement", type=_number(float, 0.0), default=d.min_improvement, metavar="FRACTION",
                     help=f"end a scale once the loss falls by less than this fraction of its current value per "
                          f"iteration, averaged over 10 iterations; 0 runs every iteration (default: {d.min_improvement:g})")
    opt.add_argument("--content-layers", type=_layer_list, default=d.content_layers, metavar="L,L,...",
                     help=f"layers whose activations carry the content (default: {','.join(d.content_layers)}); "
                          "relu3_2 keeps more of the photo's detail")
    opt.add_argument("--style-layers", type=_layer_list, default=d.style_layers, metavar="L,L,...",
                     help=f"layers whose Gram matrices carry the style (default: {','.join(d.style_layers)}); "
                          "adding relu5_1 brings in the painting's objects")
    opt.add_argument("--style-layer-weights", type=_weights_list, metavar="W,W,...",
                     help="weight of each --style-layers entry, in order (default: equal)")
    opt.add_argument("--content-weight", type=_number(float, 0.0, maximum=MAX_WEIGHT), default=d.content_weight,
                     help=f"alpha (default: {d.content_weight})")
    opt.add_argument("--style-weight", type=_number(float, 0.0, maximum=MAX_WEIGHT), default=d.style_weight,
                     help=f"beta, style against content: 30 to 100 for more style, 3 for more of your photo "
                          f"(default: {d.style_weight:g}; docs/tuning.md)")
    opt.add_argument("--tv-weight", type=_number(float, 0.0, maximum=MAX_WEIGHT), default=d.tv_weight,
                     help=f"gamma, smoothness (default: {d.tv_weight})")
    opt.add_argument("--init", type=_init_choice, default=None, metavar="{content,noise,PATH}",
                     help="starting image (default: content; noise for texture synthesis)")
    opt.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="default: lbfgs")
    opt.add_argument("--learning-rate", type=_number(float, 0.0, strict=True), default=d.learning_rate,
                     help=f"Adam's step in 0..255 pixel units (default: {d.learning_rate})")
    opt.add_argument("--lbfgs-memory", type=_number(int, 1, maximum=MAX_LBFGS_MEMORY), default=d.lbfgs_memory,
                     help=f"L-BFGS correction pairs, 1 to {MAX_LBFGS_MEMORY}; each costs 16 bytes per pixel-channel "
                          f"(default: {AUTO_LBFGS_MEMORY}, or {PLAIN_LBFGS_MEMORY} with --min-improvement 0)")
    opt.add_argument("--precondition-after", type=_number(int, 0), default=d.precondition_after, metavar="N",
                     help=f"after N iterations of a scale, restart L-BFGS with per-pixel step sizes from the "
                          f"gradient (faster to a low loss); 0 never does (default: {AUTO_PRECONDITION_AFTER}, "
                          "or 0 with --min-improvement 0, so a fixed-length run is plain L-BFGS-B as before)")
    opt.add_argument("--pooling", choices=("avg", "max"), default="avg",
                     help="the network's pooling: avg (Gatys et al.) or max (as VGG19 was trained); default: avg")
    sty = p.add_argument_group("style")
    sty.add_argument("--preserve-colors", choices=PRESERVE, default=d.preserve_colors,
                     help="keep the content's colours: luminance-only transfer, or recolour the style first (default: none)")
    sty.add_argument("--style-scale", type=_number(float, 0.0, strict=True), default=d.style_scale,
                     help="size of the style image relative to the output (default: 1.0)")
    sty.add_argument("--margin", type=_number(int, 0), default=d.margin, metavar="PX",
                     help="optimise PX more pixels around the picture (the photo mirrored into them) and crop them "
                          "off: no bright frame along the edges; 16 is plenty, and costs about 10%% more time at "
                          "512 px (default: 0)")
    sty.add_argument("--scales", type=_number(int, 1), default=d.scales,
                     help="coarse-to-fine: optimise at size / 2^(scales-1), ..., size, each scale starting from the "
                          f"last one's result enlarged (default: automatic, 1 below {2 * AUTO_COARSEST} px and one "
                          f"more per doubling, so the coarsest scale is {AUTO_COARSEST} to {2 * AUTO_COARSEST - 1} px)")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=_number(int, 0), default=d.seed, help="random seed (default: 0)")
    run.add_argument("--save-every", type=_number(int, 1), metavar="N",
                     help="also write numbered snapshots (output_0010.png, ...) every N iterations")
    run.add_argument("--weights", metavar="PATH", type=_weights_path,
                     help="VGG19 weights file (default: the converted file, downloaded on first use); "
                          "'random' = random weights (fixed seed 0), for tests and pipeline demos only")
    run.add_argument("--engine", choices=sorted(ENGINES), default="fast",
                     help="fast: the optimised engine (nst_numpy/fast/); reference: the readable network "
                          "of nst_numpy/vgg.py, the same numbers many times slower (default: fast)")
    run.add_argument("--threads", type=_number(int, 1), default=available_cores(),
                     help="threads for the convolutions of the fast engine (default: all cores)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    mem = p.add_argument_group("memory and long runs")
    mem.add_argument("--max-memory", metavar="SIZE", type=_memory_size,
                     help="memory the whole run may use, e.g. 8G or 512M; larger pictures are then computed in "
                          "tiles, exactly (default: 80%% of the memory available at the start)")
    mem.add_argument("--tile-size", type=_number(int, 16), metavar="PX",
                     help="evaluate in tiles with cores of PX x PX pixels, a multiple of 16 (default: automatic, "
                          "untiled when the run fits --max-memory)")
    mem.add_argument("--dry-run", action="store_true",
                     help="print the plan (sizes, tiles, peak memory, seconds per iteration) and exit without "
                          "stylizing (a first run still downloads the weights)")
    mem.add_argument("--checkpoint-every", type=_number(int, 1), metavar="N",
                     help="every N iterations, save the run next to the output (-o out.png: out.checkpoint.npz; "
                          "the optimiser restarts there, so a resumed run is the same run); deleted when the run "
                          "finishes, kept after Ctrl-C or a crash for --resume (default: no checkpoints)")
    mem.add_argument("--resume", metavar="CHECKPOINT",
                     help="continue the run saved in CHECKPOINT (after a crash or kill); takes no other options "
                          "but --quiet")
    run.add_argument("--version", action="version", version=f"nst_numpy {__version__}")
    return p
