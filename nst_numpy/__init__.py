"""nst_numpy: neural style transfer (Gatys, Ecker & Bethge) in pure NumPy, with hand-written backprop.

VGG19 is the reference network (vgg.py, built from layers.py); FastVGG19 the engine (fast/).
"""
from .fast import FastVGG19
from .vgg import VGG19
from .vgg_spec import CONV_NAMES, LAYER_NAMES, Preprocessing

__all__ = ["VGG19", "FastVGG19", "Preprocessing", "LAYER_NAMES", "CONV_NAMES"]
__version__ = "0.1.0"
