"""`python -m nst_numpy ...`: the same command as `nst-numpy` and scripts/stylize.py (console.py)."""
import sys

from .console import main

sys.exit(main())
