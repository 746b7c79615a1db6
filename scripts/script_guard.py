"""What the scripts in scripts/ share to end cleanly: Ctrl-C (or SIGTERM, SIGHUP) is one line and exit
130, bad input one line `error: ...` and exit 2, never a traceback (stylize.py has console.main).

A script starts with

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # this module
    import script_guard
    if __name__ == "__main__":
        sys.exit(script_guard.run_file(__file__))

then imports what it needs (numpy, ...) and decorates its main with @script_guard.guarded(...). Run as a
program, the file stops at that line: run_file puts the signal handlers in place and only then loads
the file again, as a module, and calls its main. Loading numpy takes a moment, and a Ctrl-C in it
printed a traceback. This module imports nothing heavy, so it can come first.
"""
import functools
import importlib.util
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # nst_numpy, from a clone

from nst_numpy.console import (EXIT_INTERRUPTED, interrupted, interrupts_raise, one_line,  # noqa: E402
                               raise_lost_interrupt)

EXIT_USAGE = 2
__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "call", "check_not_an_input", "guarded", "raise_dropped_interrupt",
           "run_file", "smallest_size"]


def _was_interrupted(error):
    """Whether error is a Ctrl-C: KeyboardInterrupt, stylize's Interrupted, or what Python made of one
    (a KeyboardInterrupt raised inside an import can come out as a RuntimeError: console.interrupted)."""
    optimize = sys.modules.get("nst_numpy.optimize")   # not loaded: nothing raised its Interrupted
    return (isinstance(error, KeyboardInterrupt) or interrupted()
            or (optimize is not None and isinstance(error, optimize.Interrupted)))


def call(work, *args, message="interrupted", errors=()):
    """work(*args) with Ctrl-C raising KeyboardInterrupt; its status (None counts as 0). A Ctrl-C prints
    `message` and gives 130; an exception of the types in `errors` (bad input) `error: ...` and 2; any
    other exception is a bug and keeps its traceback."""
    with interrupts_raise():
        try:
            status = work(*args) or 0
            raise_lost_interrupt()   # a Ctrl-C h5py dropped and nothing raised since: it still counts
            return status
        except (KeyboardInterrupt, Exception) as e:   # not SystemExit: argparse's own exit 2
            if _was_interrupted(e):
                print(message, file=sys.stderr)
                return EXIT_INTERRUPTED
            if isinstance(e, errors):
                print(f"error: {one_line(e)}", file=sys.stderr)
                return EXIT_USAGE
            raise


def guarded(message="interrupted", errors=()):
    """Decorator for a script's main(argv=None): runs it through call() (also when a test calls it)."""
    def wrap(main):
        @functools.wraps(main)
        def guarded_main(argv=None):
            return call(main, argv, message=message, errors=errors)
        return guarded_main
    return wrap


def run_file(path):
    """The script at path as a program: its imports and main() under the Ctrl-C handlers, which stay
    ignoring signals after it (restore=False: the process ends; see console.interrupts_raise)."""
    name = os.path.splitext(os.path.basename(path))[0]

    def load():
        spec = importlib.util.spec_from_file_location(name, path)
        module = sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    with interrupts_raise(restore=False):
        return call(lambda: load().main())   # main's own guard handles what happens in it; this one the imports


def raise_dropped_interrupt():
    """KeyboardInterrupt for a Ctrl-C that nothing raised: one Python dropped (h5py's weakref callbacks
    while weights load, console.raise_lost_interrupt), or one a library's bare `except:` caught. Call it
    after loading, before writing: the run would otherwise go on, with every later Ctrl-C ignored."""
    raise_lost_interrupt()
    if interrupted():
        raise KeyboardInterrupt


def check_not_an_input(output, inputs, flag="-o"):
    """ValueError if output is one of inputs (None entries skipped), by real path (symbolic links
    resolved): the script would write over what it reads (as stylize's _check_side_files refuses)."""
    for q in inputs:
        if q is not None and os.path.realpath(q) == os.path.realpath(output):
            raise ValueError(f"{flag} {output} is also an input ({q}), which the output would overwrite; "
                             f"choose another output")


def smallest_size(content_shapes, style_shapes, **config):
    """The least --size (longest side) from which up stylize can run Config(**config)'s schedule on every
    content with every style of these (H, W) shapes; its own checks (optimize.scale_sizes,
    check_style_sizes) decide. Not monotone below it: a small size drops the scales under 16 px and
    runs, a larger one keeps a coarsest scale where a style is too small (with 3 scales the gallery's
    pairs failed between 64 and 109 px)."""
    from nst_numpy.config import Config
    from nst_numpy.image import MIN_SIDE
    from nst_numpy.optimize import check_style_sizes, scale_sizes
    c = Config(**config)

    def runs(size):
        try:
            for shape in content_shapes:
                check_style_sizes(style_shapes, scale_sizes(shape, size, c.scales), c.style_scale)
        except ValueError:
            return False
        return True
    # From here up every scale keeps all shapes at least MIN_SIDE px per side (auto scales: their
    # coarsest is at least 512 px); the margin covers the rounding of each halving.
    halvings = (c.scales or 1) - 1
    aspect = max(max(shape) / min(shape) for shape in list(content_shapes) + list(style_shapes))
    size = math.ceil(MIN_SIDE * aspect * 2 ** halvings / min(1.0, c.style_scale)) + 2 ** (halvings + 1)
    while size > 1 and runs(size - 1):
        size -= 1
    return size
