"""Make the README's example images from the built-in samples (nst_numpy/samples.py).

    python scripts/make_readme_images.py                     # random weights (what this repo ships)
    python scripts/make_readme_images.py --weights PATH      # the real images, once you have VGG19 weights

Writes into docs/images/: stylized_<tag>.png (content | style | result) and figure1_<tag>.png
(the paper's Figure 1, see scripts/reconstruct.py), where <tag> is "random" or "vgg19". Each image
carries its own title saying which network made it. Bad input: a one-line error, exit status 2.
"""
import argparse
import os
import sys
import time

# Run from a clone without installing: put the repository root on the path.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from nst_numpy.config import Config  # noqa: E402
from nst_numpy.image import check_output_path, fit_size, save_image  # noqa: E402
from nst_numpy.optimize import stylize  # noqa: E402
from nst_numpy.reconstruct import figure1, grid, load_network, to_uint8  # noqa: E402
from nst_numpy.samples import landscape, swirls  # noqa: E402
from nst_numpy.weights import WeightsError  # noqa: E402

STYLIZE_NOTE = "random weights: shows the pipeline, not the real style transfer"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="random", help="VGG19 weight file, or 'random' (default)")
    p.add_argument("--size", type=int, default=160, help="longest side of the stylized result (default 160)")
    p.add_argument("--figure-size", type=int, default=96, help="longest side of each Figure 1 cell (default 96)")
    p.add_argument("--iterations", type=int, default=60, help="L-BFGS iterations per image (default 60)")
    p.add_argument("--outdir", default=os.path.join(ROOT, "docs", "images"), help="output folder (default docs/images)")
    args = p.parse_args(argv)
    tag = "random" if args.weights == "random" else "vgg19"
    try:
        if min(args.size, args.figure_size) < 22 or args.iterations < 1:
            raise ValueError("--size and --figure-size must be at least 22, --iterations at least 1")
        outputs = [os.path.join(args.outdir, f"{name}_{tag}.png") for name in ("stylized", "figure1")]
        for path in outputs:
            check_output_path(path)  # fail now, not after minutes of optimisation
        net, title = load_network(args.weights, "avg", seed=0)
        start = time.perf_counter()
        content = landscape(*fit_size((384, 512), args.size))
        style = swirls(*fit_size((384, 384), args.size))
        result = stylize(net, content, [style], Config(size=args.size, iterations=args.iterations, scales=1,
                                                       min_improvement=0.0))   # one scale: --iterations is the whole run
        note = STYLIZE_NOTE if tag == "random" else title
        panel = grid([[to_uint8(content), to_uint8(style), to_uint8(result)]], [["content", "style", "result"]], note)
        save_image(outputs[0], np.asarray(panel, np.float32), text={"title": note})
        print(f"[{time.perf_counter() - start:6.1f} s] wrote stylized_{tag}.png", file=sys.stderr)
        small = landscape(*fit_size((384, 512), args.figure_size)), swirls(*fit_size((384, 384), args.figure_size))
        fig = figure1(net, *small, args.iterations, seed=0, title=title)
        save_image(outputs[1], np.asarray(fig, np.float32), text={"title": title})
        print(f"[{time.perf_counter() - start:6.1f} s] wrote figure1_{tag}.png", file=sys.stderr)
    except (ValueError, WeightsError) as e:  # ImageError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
