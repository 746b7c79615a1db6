"""Control of the BLAS thread count without extra dependencies.

NumPy 2.x wheels ship their own OpenBLAS (scipy-openblas), and SciPy's wheels another
copy. We find them among the shared libraries loaded into this process and call their
``*openblas_set_num_threads*`` entry points through ctypes. When no OpenBLAS is found
(another BLAS, or an unusual build) every function here is a harmless no-op and
``available()`` says so.

Why it matters: after a call on several threads, OpenBLAS's worker threads spin for a
while (about 0.1 s of CPU) before sleeping, taking a core from whatever runs next. The
engine therefore does its own threading with single-threaded BLAS, and the L-BFGS
driver keeps SciPy's copy on one thread (lbfgs.run_lbfgs).
"""
import contextlib
import ctypes
import functools
import os
import threading

_lock = threading.Lock()
_lib = None        # numpy's (set_fn, get_fn) once found, False if searched and not found


def _maps_path(line):
    """The file of one /proc/self/maps line ("" for an anonymous mapping). The path is everything after
    the fifth field, so it may hold spaces (a venv under "My Projects"); the kernel marks a deleted file
    with " (deleted)"."""
    parts = line.rstrip("\n").split(maxsplit=5)
    return parts[5].removesuffix(" (deleted)") if len(parts) == 6 else ""


def _openblas_paths():
    """Paths of the OpenBLAS libraries loaded into this process, numpy's own copy first."""
    import numpy  # noqa: F401  (make sure numpy's BLAS is loaded before reading the maps)
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = _maps_path(line)
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        return []
    # numpy's own copy first: scipy may load a second OpenBLAS, which numpy's matmul never calls
    paths.sort(key=lambda p: "numpy" not in p)
    return paths


def _entry_points(path):
    """(set, get) ctypes functions of the OpenBLAS at path, or None."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("64_", "_64_", ""):
            try:
                set_fn = getattr(lib, f"{prefix}_set_num_threads{suffix}")
                get_fn = getattr(lib, f"{prefix}_get_num_threads{suffix}")
            except AttributeError:
                continue
            set_fn.argtypes, set_fn.restype = [ctypes.c_int], None
            get_fn.argtypes, get_fn.restype = [], ctypes.c_int
            return set_fn, get_fn
    return None


def _find_all():
    """[(set, get)] for every OpenBLAS loaded now, numpy's first."""
    return [fns for fns in map(_entry_points, _openblas_paths()) if fns]


def _fns():
    global _lib
    if _lib is None:
        found = _find_all()
        _lib = found[0] if found else False
    return _lib


def available_cores():
    """Cores this process may run on: its CPU affinity where the OS has one (Linux), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available():
    """True when the BLAS thread count can be controlled."""
    return bool(_fns())


def get_blas_threads():
    """Current BLAS thread count of numpy's OpenBLAS, or None when unknown."""
    fns = _fns()
    return fns[1]() if fns else None


@contextlib.contextmanager
def blas_threads(n, every_library=False):
    """Temporarily use n BLAS threads (restores the previous count).

    Sets numpy's OpenBLAS, or with every_library=True every OpenBLAS loaded at the time of
    the call (SciPy's too; looked up afresh, since SciPy may have loaded its copy since).
    The count is global to the process and the lock guards each set, not the save/restore pair, so
    only one thread may use this (the main thread: the engine's workers never call it).
    """
    libs = _find_all() if every_library else [f for f in [_fns()] if f]
    with _lock:
        olds = [get() for _, get in libs]
        for set_fn, _ in libs:
            set_fn(int(n))
    try:
        yield
    finally:
        with _lock:
            for (set_fn, _), old in zip(libs, olds):
                set_fn(old)


def one_blas_thread(method):
    """Run method with single-threaded BLAS outside the engine's bands (which set their own).

    The engine's worker threads do the parallel work. A BLAS call left at all cores wakes
    OpenBLAS's own workers, which then spin for a while and take a core from ours (measured:
    0.11 s of CPU burnt in the 0.2 s after one 512x512 product; one objective evaluation at
    256 px: 0.565 s with BLAS left at 2 threads, 0.503 s at 1).
    """
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with blas_threads(1):
            return method(*args, **kwargs)
    return wrapped
