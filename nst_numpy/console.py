"""The `nst-numpy` command and scripts/stylize.py start here.

Loading numpy and scipy takes a moment; Ctrl-C then must not print a traceback. Nothing has started,
so there is nothing to save: print one line and exit 130, as a Ctrl-C later in the run does.
This module and the package's __init__ import nothing heavy, so the handler is in place first.
"""
import sys

EXIT_INTERRUPTED = 130   # the same status cli.py returns for Ctrl-C during a run


def main(argv=None):
    """Import the command line and run it; returns its exit status."""
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    return cli_main(argv)
