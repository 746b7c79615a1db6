"""What the script tests share: a script imported as a module, a weight file of random weights, and one
BLAS thread.

The scripts in scripts/ are not a package; tests import each by its path, so its main() runs in-process.
"""
import importlib.util
from pathlib import Path

import pytest

from nst_numpy import VGG19
from nst_numpy.fast.threads import blas_threads
from nst_numpy.weights import save_converted

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Autouse in each test module that binds it by name: these tests use tiny images, where extra BLAS
    threads only add overhead, and on a loaded machine their spinning made the slowest test ten times slower."""
    with blas_threads(1):
        yield


def load_script(name):
    """scripts/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_random_weights(path, seed=0):
    """A converted weight file (our .h5 layout) holding VGG19.random(seed): for the modes that read a file.
    Returns (path as str, the network)."""
    net = VGG19.random(seed=seed)
    save_converted(net, path, net.preprocessing, "random weights for tests", "0" * 64)
    return str(path), net
