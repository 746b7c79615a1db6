"""Test-session setup, run by pytest before any test module imports numpy.

One BLAS thread unless the caller set OMP_NUM_THREADS: the tests' arrays are tiny, and there a second
OpenBLAS thread only costs its start-up and hand-offs (the suite took 300 s with two on the 2-core CI
machine, 250 s with one). No result depends on it: the tests of thread counts set them explicitly
(fast/threads.py::blas_threads, FastVGG19.set_threads).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
