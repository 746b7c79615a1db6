#!/usr/bin/env python
"""Neural style transfer from the command line: `python scripts/stylize.py --help`.

With no arguments it stylizes built-in sample images and writes output.png.
The same program is installed as the `nst-numpy` command.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone without installing

try:
    from nst_numpy.cli import main  # noqa: E402
except KeyboardInterrupt:   # Ctrl-C while numpy and scipy load: nothing started, nothing to save
    sys.stderr.write("interrupted\n")
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
