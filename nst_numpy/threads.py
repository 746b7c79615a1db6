"""Control of the BLAS thread count without extra dependencies.

NumPy 2.x wheels ship their own OpenBLAS (scipy-openblas). We find it among the
shared libraries loaded into this process and call its ``*openblas_set_num_threads*``
entry point through ctypes. When no OpenBLAS is found (another BLAS, or an
unusual build) every function here is a harmless no-op and ``available()`` says so.
"""
import contextlib
import ctypes
import os
import threading

_lock = threading.Lock()
_lib = None        # (set_fn, get_fn) once found, False if searched and not found


def _find():
    """(set, get) ctypes functions of the OpenBLAS numpy uses, or None."""
    import numpy  # noqa: F401  (make sure numpy's BLAS is loaded before reading the maps)
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        return None
    # numpy's own copy first: scipy may load a second OpenBLAS, which numpy's matmul never calls
    paths.sort(key=lambda p: "numpy" not in p)
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
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


def _fns():
    global _lib
    if _lib is None:
        _lib = _find() or False
    return _lib


def available():
    """True when the BLAS thread count can be controlled."""
    return bool(_fns())


def get_blas_threads():
    """Current BLAS thread count, or None when unknown."""
    fns = _fns()
    return fns[1]() if fns else None


@contextlib.contextmanager
def blas_threads(n):
    """Temporarily use n BLAS threads (restores the previous count)."""
    fns = _fns()
    if not fns:
        yield
        return
    with _lock:
        old = fns[1]()
        fns[0](int(n))
    try:
        yield
    finally:
        with _lock:
            fns[0](old)
