"""The `nst-numpy` command and scripts/stylize.py start here.

Loading numpy and scipy takes a moment; Ctrl-C (or SIGTERM) then must not print a traceback or end
the process by the signal. Nothing has started, so there is nothing to save: print one line and exit
130, as a Ctrl-C later in the run does. This module and the package's __init__ import nothing heavy,
so the handlers are in place first.
"""
import argparse
import contextlib
import signal
import sys
import threading

EXIT_INTERRUPTED = 130   # the same status cli.py returns for Ctrl-C during a run
# interrupts_raise's nesting; whether a signal came; whether Python dropped the KeyboardInterrupt it raised
# (and whether the run is done and only writing its picture: hold_interrupts)
_interrupts = {"depth": 0, "seen": False, "lost": False, "held": False}
# SIGHUP: a closing terminal (absent on Windows)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _on_signal(signum, frame):
    if _interrupts["seen"] or _interrupts["held"]:   # a second Ctrl-C while the first is being handled
        return                                          # (the best image saved), or the picture is done
    _interrupts["seen"] = True
    raise KeyboardInterrupt


def _on_unraisable(unraisable, previous):
    """sys.unraisablehook within interrupts_raise. A KeyboardInterrupt raised where Python cannot pass
    it on (a weakref callback or __del__, as h5py runs while the weights load) is only printed, as a
    traceback, and the run goes on while _on_signal ignores every later signal: a run no Ctrl-C could
    stop. Keep it instead (raise_lost_interrupt raises it where it can be handled), and let the next
    signal raise again."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt) and _interrupts["seen"]:
        _interrupts["seen"], _interrupts["lost"] = False, True
        return
    previous(unraisable)


def raise_lost_interrupt():
    """Raise the KeyboardInterrupt of a signal Python dropped (_on_unraisable), once; the CLI calls
    this after loading and after every iteration."""
    if _interrupts["lost"]:
        _interrupts["seen"], _interrupts["lost"] = True, False
        raise KeyboardInterrupt


def hold_interrupts():
    """Ignore signals for the rest of the interrupts_raise block: the run is done and its picture is
    being written, which a Ctrl-C now would only cut short. Not `seen`: no signal came, and an error
    from here on is an error, not what Python made of a Ctrl-C (interrupted())."""
    _interrupts["held"], _interrupts["lost"] = True, False


def interrupted():
    """Whether a signal came in the current interrupts_raise block. Python can turn the KeyboardInterrupt
    into another exception: raised inside a class's creation (an import of numpy's, 0.1 s into a run),
    it came out as RuntimeError("Error calling __set_name__ ..."), a traceback instead of one line."""
    return _interrupts["seen"]


@contextlib.contextmanager
def interrupts_raise(restore=True):
    """Within the block, the first SIGINT, SIGTERM or SIGHUP (kill, a job scheduler, a closing terminal) raises
    KeyboardInterrupt, and later ones are ignored, so that a double Ctrl-C cannot cut short the save of
    the best image (it once left a temporary file and no picture, or a traceback and exit 143).
    Main thread only (elsewhere Python cannot set handlers: then it changes nothing). A signal
    ignored when the block starts stays ignored. restore=False, for the process's entry point, which
    ends right after: the signals are then ignored, so that one during the interpreter's shutdown
    cannot change the exit status (Python puts its default handlers back as it shuts down, and a
    second kill 20-50 ms after the first ended the process with 143 after the picture was written).
    SIG_IGN is the one setting that shutdown keeps."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outermost = _interrupts["depth"] == 0
    if outermost:
        _interrupts["seen"] = _interrupts["lost"] = _interrupts["held"] = False
        hook = sys.unraisablehook
        sys.unraisablehook = lambda u: _on_unraisable(u, hook)
    _interrupts["depth"] += 1
    # A signal ignored from the start stays ignored: a script's background job ignores SIGINT, so that
    # Ctrl-C in the terminal does not reach it (Python itself leaves SIGINT alone then); so does nohup SIGHUP.
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        _interrupts["depth"] -= 1
        if outermost and restore:
            sys.unraisablehook = hook
        for s, handler in previous.items():
            if not restore:
                signal.signal(s, signal.SIG_IGN)
            elif handler is not None:   # None: a handler set outside Python, which cannot be put back
                signal.signal(s, handler)


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
    with interrupts_raise(restore=False):
        try:
            from .cli import main as cli_main
        except BaseException as e:   # KeyboardInterrupt, or what an import made of it (below)
            if not (isinstance(e, KeyboardInterrupt) or interrupted()):
                raise
            sys.stderr.write("interrupted\n")
            return EXIT_INTERRUPTED
        return cli_main(argv)
