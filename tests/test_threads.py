"""fast/threads.py: the cores this process may use, and the OpenBLAS thread counts it sets and restores
(numpy's copy first, then any other, e.g. SciPy's)."""
import os

import pytest

from nst_numpy.fast import threads


def test_blas_thread_control():
    if not threads.available():
        pytest.skip("no OpenBLAS found in this process; blas_threads is a no-op")
    before = threads.get_blas_threads()
    with threads.blas_threads(2):   # an outer count other than 1, whatever OMP_NUM_THREADS says
        with threads.blas_threads(1):
            assert threads.get_blas_threads() == 1
        assert threads.get_blas_threads() == 2
    assert threads.get_blas_threads() == before
    every = threads._find_all()   # numpy's first, then any other copy (SciPy's)
    befores = [get() for _, get in every]
    with threads.blas_threads(1, every_library=True):
        assert [get() for _, get in every] == [1] * len(every)
    assert [get() for _, get in every] == befores


def test_available_cores_follows_the_affinity(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity here")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert threads.available_cores() == 1


def test_numpys_openblas_is_the_one_controlled():
    paths = threads._openblas_paths()
    if not any("numpy" in p for p in paths):
        pytest.skip("numpy's OpenBLAS not found")
    assert "numpy" in paths[0]


def test_one_blas_thread_decorator_sets_one_thread():
    if not threads.available():
        pytest.skip("no OpenBLAS")
    probe = threads.one_blas_thread(threads.get_blas_threads)
    with threads.blas_threads(2):
        assert probe() == 1


def test_every_library_sets_every_openblas_whatever_omp_says():
    """every_library=True reaches SciPy's OpenBLAS too, also when OMP_NUM_THREADS=1 made every count 1 already:
    an outer count of 2 shows that the inner one really sets each library."""
    import scipy.linalg  # noqa: F401 (loads SciPy's own OpenBLAS, the second copy, as L-BFGS-B does)
    libs = threads._find_all()
    if len(libs) < 2:
        pytest.skip("one OpenBLAS only")
    with threads.blas_threads(2, every_library=True):
        assert [get() for _, get in libs] == [2] * len(libs)
        with threads.blas_threads(1, every_library=True):
            assert [get() for _, get in libs] == [1] * len(libs)


def test_maps_lines_keep_paths_with_spaces():
    """A venv under a folder with a space: the old split()[-1] gave "Projects/...so", a relative tail
    that failed to load, and every thread count then went uncontrolled (the tests above only skip)."""
    lib = "/home/a/My Projects/venv/lib/libscipy_openblas64_-abc.so"
    assert threads._maps_path(f"7f00-7f10 r-xp 00000000 08:01 1234    {lib}\n") == lib
    assert threads._maps_path(f"7f00-7f10 r-xp 00000000 08:01 1234 {lib} (deleted)\n") == lib
    assert threads._maps_path("7ffd-7ffe rw-p 00000000 00:00 0 \n") == ""   # anonymous: no file
