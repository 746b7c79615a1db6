#!/usr/bin/env python
"""Convert VGG19 weights (Keras .h5, MatConvNet .mat, torchvision .pth) to nst_numpy's HDF5 format.

    python scripts/convert_weights.py SOURCE [-o weights/vgg19.h5]
    python scripts/convert_weights.py --download [-o weights/vgg19.h5]

--download fetches the Keras notop file from its canonical URL, checks its pinned MD5, converts
it and deletes the download. Errors print one line and exit with status 2; Ctrl-C writes nothing
and exits with 130.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # script_guard, also when imported by the tests
import script_guard  # noqa: E402

if __name__ == "__main__":   # the imports below run under the Ctrl-C handlers (script_guard)
    sys.exit(script_guard.run_file(__file__))

from nst_numpy.console import OneLineParser  # noqa: E402
from nst_numpy.fileio import atomic_path  # noqa: E402
from nst_numpy.weights import WeightsError, convert, default_weights_path, fetch_and_convert  # noqa: E402


@script_guard.guarded("interrupted; nothing was written", errors=(ValueError, WeightsError))
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
    script_guard.check_not_an_input(out, [args.source])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Converted into a temporary file, renamed into place only after the check below: h5py's reading
        # can swallow a Ctrl-C (raise_dropped_interrupt), which must then leave nothing written.
        with atomic_path(out) as tmp:
            info = fetch_and_convert(tmp, progress=not args.quiet) if args.download else convert(args.source, tmp)
            script_guard.raise_dropped_interrupt()
    except OSError as e:   # read errors are WeightsErrors: this is the output's folder
        raise WeightsError(f"cannot write {out}: {e}") from None
    print(f"wrote {out} ({info['format']} weights from {info['source_name']}, sha256 {info['source_sha256'][:12]}...)")
    return 0
