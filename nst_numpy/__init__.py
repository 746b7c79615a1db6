"""nst_numpy: neural style transfer (Gatys, Ecker & Bethge) in pure NumPy, with hand-written backprop."""
from .vgg import VGG19, Preprocessing, LAYER_NAMES, CONV_NAMES

__all__ = ["VGG19", "Preprocessing", "LAYER_NAMES", "CONV_NAMES"]
__version__ = "0.1.0"
