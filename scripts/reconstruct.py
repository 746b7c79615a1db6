"""Figure 1 of Gatys et al.: reconstruct an image from single layers of VGG19 (content) and from
the Gram matrices of growing sets of layers (style), and save all of it as one labelled grid.

    python scripts/reconstruct.py                              # built-in samples, default weights
    python scripts/reconstruct.py --content photo.jpg --style painting.jpg --size 192 --iterations 200
    python scripts/reconstruct.py --weights random             # no weights needed: shows the pipeline only

Each of the 10 cells starts from white noise and runs L-BFGS on one objective (see
nst_numpy/reconstruct.py and docs/guide.md, section 10). Bad input: a one-line error, exit status 2.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # script_guard, also when imported by the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

import numpy as np  # noqa: E402

from nst_numpy.console import OneLineParser  # noqa: E402
from nst_numpy.image import MIN_SIDE, check_output_path, fit_size, load_image, resize, save_image  # noqa: E402
from nst_numpy.reconstruct import figure1, load_network  # noqa: E402
from nst_numpy.samples import landscape, swirls  # noqa: E402
from nst_numpy.weights import WeightsError  # noqa: E402

# A figure of 10 cells of --size px each; the time grows with size^2 (hours at 512 px), and a huge
# --size used to end in numpy's out-of-memory traceback before the first cell.
MAX_SIZE = 1024


def parse_args(argv):
    p = OneLineParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--content", help="content image (default: the built-in landscape sample)")
    p.add_argument("--style", help="style image (default: the built-in swirls sample)")
    # Defaults: 30 s wall time (40 s of CPU) for all 10 cells with --weights random on a 2-core
    # machine; the time grows with size^2 * iterations.
    p.add_argument("--size", type=int, default=96, help="longest side of each cell, in pixels (default 96)")
    p.add_argument("--iterations", type=int, default=60, help="L-BFGS iterations per cell (default 60)")
    p.add_argument("--weights", help="VGG19 weight file, or 'random' for a random network "
                                     "(default: the converted file in weights/)")
    p.add_argument("--pooling", choices=("avg", "max"), default="avg", help="pooling (default avg, as Gatys et al.)")
    p.add_argument("--engine", choices=("fast", "reference"), default="fast",
                   help="fast (default) or reference: the readable network of nst_numpy/vgg.py, the same "
                        "numbers many times slower")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise (and of --weights random)")
    p.add_argument("--output", "-o", default="figure1.png", help="output image (default figure1.png)")
    return p.parse_args(argv)


def input_image(path, sample, size):
    """RGB float32 (H, W, 3) in 0..255 with longest side `size`: the file at path, else the drawn sample."""
    if path is None:
        return sample(*fit_size((384, 512) if sample is landscape else (384, 384), size))
    rgb = load_image(path, max_side=size)
    return resize(rgb, fit_size(rgb.shape, size))


@script_guard.guarded("interrupted; nothing written", errors=(ValueError, WeightsError))   # ImageError is a ValueError
def main(argv=None):
    """Returns the exit status: 0 on success, 2 on bad input (message on stderr), 130 on Ctrl-C."""
    args = parse_args(argv)
    if args.seed < 0:
        raise ValueError(f"--seed must be at least 0, got {args.seed}")
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    if args.size < MIN_SIDE:
        raise ValueError(f"--size must be at least {MIN_SIDE} (the network needs {MIN_SIDE} px per side)")
    if args.size > MAX_SIZE:
        raise ValueError(f"--size is the side of each of the 10 cells; at most {MAX_SIZE}, got {args.size}")
    check_output_path(args.output)
    script_guard.check_not_an_input(args.output, [args.content, args.style,
                                                  None if args.weights == "random" else args.weights])
    content = input_image(args.content, landscape, args.size)
    style = input_image(args.style, swirls, args.size)
    if min(content.shape[:2]) < MIN_SIDE or min(style.shape[:2]) < MIN_SIDE:
        raise ValueError(f"at --size {args.size} an image's short side is under {MIN_SIDE} px; raise --size")
    net, title = load_network(args.weights, args.pooling, args.seed, args.engine)
    start = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr)

    image = figure1(net, content, style, args.iterations, args.seed, title=title, progress=progress)
    save_image(args.output, np.asarray(image, np.float32),
               text={"nst_numpy": "scripts/reconstruct.py", "title": title,
                     "arguments": " ".join(sys.argv[1:] if argv is None else argv)})
    print(f"wrote {args.output} ({image.size[0]}x{image.size[1]} px)")
    return 0

