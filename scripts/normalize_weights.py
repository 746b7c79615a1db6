#!/usr/bin/env python
"""Write Gatys et al.'s normalised VGG19: each filter scaled so its mean activation on your images is 1.

    python scripts/normalize_weights.py --images DIR -o weights/vgg19_normalized.h5 [--weights PATH]

The network computes the same features up to a positive scale per channel, but the layers'
activations (and so the style losses) become comparable. Errors print one line and exit 2;
Ctrl-C writes nothing and exits with 130.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # script_guard, also when imported by the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

from nst_numpy.console import OneLineParser  # noqa: E402
from nst_numpy.normalize import load_images, normalize_vgg19  # noqa: E402
from nst_numpy.weights import (WeightsError, get_vgg19, read_weights, default_weights_path,  # noqa: E402
                               save_converted)


# ValueError: an image too small for the network's poolings, or -o naming an input
@script_guard.guarded("interrupted; nothing written", errors=(WeightsError, ValueError))
def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", required=True, type=Path, help="directory of images (any Pillow format)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="normalised weight file to write")
    parser.add_argument("--weights", type=Path, default=None,
                        help=f"VGG19 weights to normalise (default: {default_weights_path()}, downloaded if missing)")
    parser.add_argument("--size", type=int, default=256, help="shrink images to this longest side (default 256)")
    args = parser.parse_args(argv)
    if args.size < 16:
        parser.error("--size must be at least 16 (VGG19 pools the image four times)")
    source = args.weights or default_weights_path()
    script_guard.check_not_an_input(args.output, [source, args.images])
    images = load_images(args.images, args.size)
    net = get_vgg19(args.weights, pooling="avg")
    _, _, info = read_weights(source)
    script_guard.raise_dropped_interrupt()   # a Ctrl-C h5py swallowed while reading the weights
    if info["normalized"]:
        raise WeightsError(f"{source} is already normalised")
    print(f"normalising on {len(images)} image(s)...", file=sys.stderr)
    normed = normalize_vgg19(net, images)
    save_converted(normed, args.output, net.preprocessing, info["source_name"], info["source_sha256"],
                   normalized=True)
    for relu, channels in normed.dead_filters.items():
        print(f"note: {relu} has {len(channels)} filter(s) that never fire on these images; left unscaled",
              file=sys.stderr)
    print(f"wrote {args.output}")
    return 0
