#!/usr/bin/env python
"""Convert VGG19 weights (Keras .h5, MatConvNet .mat, torchvision .pth) to nst_numpy's HDF5 format.

    python scripts/convert_weights.py SOURCE [-o weights/vgg19.h5]
    python scripts/convert_weights.py --download [-o weights/vgg19.h5]

--download fetches the Keras notop file from its canonical URL, checks its pinned MD5, converts
it and deletes the download. Errors print one line and exit with status 2.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from nst_numpy.console import OneLineParser  # noqa: E402
from nst_numpy.weights import WeightsError, convert, default_weights_path, fetch_and_convert  # noqa: E402


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="a Keras .h5, MatConvNet .mat or torchvision .pth file")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help=f"converted file to write (default: {default_weights_path()})")
    parser.add_argument("--download", action="store_true", help="download the Keras weights first")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if (args.source is None) == (not args.download):
        parser.error("give either SOURCE or --download")
    out = args.output or default_weights_path()
    try:
        if args.download:
            info = fetch_and_convert(out, progress=not args.quiet)
        else:
            info = convert(args.source, out)
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(f"wrote {out} ({info['format']} weights from {info['source_name']}, sha256 {info['source_sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
