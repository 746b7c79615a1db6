#!/usr/bin/env python
"""Neural style transfer from the command line: `python scripts/stylize.py --help`.

With no arguments it stylizes built-in sample images and writes output.png.
The same program is installed as the `nst-numpy` command; both start in nst_numpy/console.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone without installing

from nst_numpy.console import main  # noqa: E402  (light: numpy loads inside main, under its Ctrl-C handler)

if __name__ == "__main__":
    sys.exit(main())
