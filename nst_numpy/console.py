"""The `nst-numpy` command and scripts/stylize.py start here.

Loading numpy and scipy takes a moment; Ctrl-C then must not print a traceback. Nothing has started,
so there is nothing to save: print one line and exit 130, as a Ctrl-C later in the run does.
This module and the package's __init__ import nothing heavy, so the handler is in place first.
"""
import argparse
import sys

EXIT_INTERRUPTED = 130   # the same status cli.py returns for Ctrl-C during a run


def one_line(error):
    """An exception (or message) as one line for `error: ...`: h5py, zipfile and argparse messages
    may span lines; an exception with no message is named by its type."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


class OneLineParser(argparse.ArgumentParser):
    """argparse for the scripts: a bad argument is one line, `error: ...`, and exit status 2
    (argparse's own status), without the usage block above it; --help still shows the usage."""

    def error(self, message):
        sys.stderr.write(f"error: {one_line(message)}\n")
        sys.exit(2)


def main(argv=None):
    """Import the command line and run it; returns its exit status."""
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    return cli_main(argv)
