"""VGG19's convolutional part (Simonyan & Zisserman 2014): the reference network.

Built only from the forward/backward pairs of layers.py, so that the whole chain of
backpropagation reads on one screen:

    net = VGG19.random(seed=0)                         # or weights.load_vgg19(path, engine="reference")
    acts = net.forward(x, ["relu1_1", "relu4_2"])      # {name: (H_l, W_l, C_l)}
    dx = net.backward({"relu1_1": g1, "relu4_2": g2})  # (H, W, 3)

It is slow (im2col, one thread, every activation kept) and that is the point: it is the
code docs/guide.md teaches. fast.FastVGG19 is the same network with the same API, made
fast (Winograd, threads, planned buffers); tests/test_engine_vs_reference.py proves the
two agree, and the gradient checks (gradcheck.py) run on this one.
"""
import numpy as np

from . import layers as L
from .vgg_spec import CAFFE, check_backward, check_forward, checked_params, random_params


class VGG19:
    """The 16 conv layers of VGG19 with ReLUs and 2x2 pooling.

    params: {"conv1_1": (kernel (3, 3, C_in, C_out), bias (C_out,)), ...} for all 16 convs.
    pooling: "avg" (Gatys et al.) or "max" (how the ImageNet weights were trained).
    preprocessing: a Preprocessing; net.preprocess / net.deprocess apply it.
    dtype: float32 for real runs, float64 for gradient checks.
    """

    def __init__(self, params, pooling="avg", preprocessing=CAFFE, dtype=np.float32):
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', not {pooling!r}")
        self.dtype = np.dtype(dtype)
        self.pooling = pooling
        self.preprocessing = preprocessing
        self.params = checked_params(params, self.dtype)
        self._caches = None  # [(layer name, cache)] of the last forward call, in network order
        self._input_hw = None  # (H, W) of the last forward's input: backward checks gradient shapes by it

    @classmethod
    def from_arrays(cls, params, pooling="avg", preprocessing=CAFFE, dtype=np.float32):
        """Build from {"conv1_1": (kernel HWIO, bias), ...}. Every weight loader goes through here."""
        return cls(params, pooling=pooling, preprocessing=preprocessing, dtype=dtype)

    @classmethod
    def random(cls, seed=0, pooling="avg", preprocessing=CAFFE, dtype=np.float32):
        """He-initialised weights (std sqrt(2 / fan_in)), small random biases. For tests and learners."""
        return cls(random_params(seed), pooling=pooling, preprocessing=preprocessing, dtype=dtype)

    def release_buffers(self):
        """Drop the last forward's caches (its activations); the next forward makes them again."""
        self._caches = None

    def preprocess(self, rgb):
        """RGB float image in 0..255, (H, W, 3) -> network input (H, W, 3) in self.dtype."""
        return self.preprocessing.preprocess(rgb, self.dtype.type)

    def deprocess(self, x):
        """Network input (H, W, 3) -> RGB (H, W, 3) in 0..255 (not clipped)."""
        return self.preprocessing.deprocess(np.asarray(x, self.dtype))

    # -- forward / backward: the whole of backpropagation ------------------------------

    def forward(self, x, layers, copy=True):
        """x: (H, W, 3), already preprocessed; layers: names from vgg_spec.LAYER_NAMES.

        Runs the layers in order up to the deepest requested one, keeping each layer's
        cache for backward(). Returns {name: activation (H_l, W_l, C_l)} for the requested
        names: copies (copy=True), or read-only views of the network's own arrays.
        """
        layers = list(layers)
        x = np.asarray(x, dtype=self.dtype)
        names = check_forward(x.shape, layers)
        self._input_hw = x.shape[:2]
        self._caches = []
        out = {}
        for name in names:
            if name.startswith("conv"):
                x, cache = L.conv_forward(x, *self.params[name])   # (H, W, C_in) -> (H, W, C_out)
            elif name.startswith("relu"):
                x, cache = L.relu_forward(x)
            elif self.pooling == "avg":
                x, cache = L.avgpool_forward(x)                     # (H, W, C) -> (H//2, W//2, C)
            else:
                x, cache = L.maxpool_forward(x)
            self._caches.append((name, cache))
            if name in layers:
                out[name] = x.copy() if copy else _read_only(x)
        return out

    def backward(self, grads):
        """grads: {name: dL/d(activation of name), (H_l, W_l, C_l)} for layers of the last forward.

        Walks the caches in reverse, calling each layer's backward. Returns dL/dx, (H, W, 3).
        """
        check_backward(None if self._caches is None else [n for n, _ in self._caches], grads, self._input_hw)
        d = None   # dL/d(output of the current layer); None above the deepest tap
        for name, cache in reversed(self._caches):
            if name in grads:
                g = np.asarray(grads[name], self.dtype)
                # This activation feeds both a loss term and the layers above it, so its
                # gradient is the sum of the two (the multivariate chain rule).
                d = g if d is None else d + g
            if d is None:
                continue   # above the deepest tap: nothing flows back yet
            if name.startswith("conv"):
                d = L.conv_backward(d, cache)
            elif name.startswith("relu"):
                d = L.relu_backward(d, cache)
            elif self.pooling == "avg":
                d = L.avgpool_backward(d, cache)
            else:
                d = L.maxpool_backward(d, cache)
        return d


def _read_only(a):
    """A read-only view of a: the caller may look at the cached activation but not change it."""
    view = a.view()
    view.flags.writeable = False
    return view
