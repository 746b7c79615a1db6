"""nst_numpy: neural style transfer (Gatys, Ecker & Bethge) in pure NumPy, with hand-written backprop.

VGG19 is the reference network (vgg.py, built from layers.py); FastVGG19 the engine (fast/).

The names below are loaded on first use (PEP 562), not when the package is imported: the installed
`nst-numpy` command imports this package before any of our code runs, so importing numpy here would
put the slow, interruptible part outside console.main's Ctrl-C handler.
"""
import importlib

__version__ = "0.1.0"

_LAZY = {"VGG19": ".vgg", "FastVGG19": ".fast", "Preprocessing": ".vgg_spec",
         "LAYER_NAMES": ".vgg_spec", "CONV_NAMES": ".vgg_spec"}   # name -> module that defines it
__all__ = list(_LAZY)


def __getattr__(name):
    """`nst_numpy.VGG19` and `from nst_numpy import VGG19`: import the defining module now."""
    if name not in _LAZY:
        raise AttributeError(f"module 'nst_numpy' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


def __dir__():
    return sorted(list(globals()) + __all__)
