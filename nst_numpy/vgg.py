"""VGG19's convolutional part (Simonyan & Zisserman 2014), with a hand-written backward pass.

Layer names follow Gatys et al.: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...
conv5_4, relu5_4, pool5. The classifier layers are never needed for style transfer.

    net = VGG19.from_arrays({"conv1_1": (kernel, bias), ...}, pooling="avg")
    acts = net.forward(x, ["relu1_1", "relu4_2"])     # {name: (H_l, W_l, C_l)}
    dx = net.backward({"relu1_1": g1, "relu4_2": g2})  # (H, W, 3)
"""
from dataclasses import dataclass

import numpy as np

from . import layers as L

# (name, C_in, C_out) of the 16 conv layers, in order.
CONV_SPECS = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), ("conv5_4", 512, 512),
]
CONV_NAMES = [name for name, _, _ in CONV_SPECS]


def _layer_sequence():
    """All layer names in network order: conv, relu, ..., pool after each block."""
    names = []
    for i, (name, _, _) in enumerate(CONV_SPECS):
        block = name[4:].split("_")[0]
        names += [name, "relu" + name[4:]]
        last_in_block = i + 1 == len(CONV_SPECS) or CONV_SPECS[i + 1][0][4] != block
        if last_in_block:
            names.append("pool" + block)
    return names


LAYER_NAMES = _layer_sequence()  # 37 names: 16 conv + 16 relu + 5 pool


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image in 0..255 becomes network input; it travels with the weights.

    preprocess(rgb) = (reorder(rgb * scale) - mean) / std
    """
    channel_order: str = "BGR"                    # order of the channels the first conv expects: "RGB" or "BGR"
    scale: float = 1.0                            # multiplies 0..255 pixels first (1/255 for torchvision's 0..1)
    mean: tuple = (103.939, 116.779, 123.68)      # per-channel mean, in channel_order, after scaling
    std: tuple = (1.0, 1.0, 1.0)                  # per-channel divisor, in channel_order, after scaling

    def __post_init__(self):
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', not {self.channel_order!r}")
        if not (self.scale > 0 and len(self.mean) == 3 and len(self.std) == 3 and min(self.std) > 0):
            raise ValueError(f"invalid preprocessing {self}")

    def _order(self, x):
        return x[..., ::-1] if self.channel_order == "BGR" else x  # RGB <-> BGR is its own inverse

    def preprocess(self, rgb, dtype=np.float32):
        """rgb: (H, W, 3) in 0..255 -> network input (H, W, 3) of the given dtype."""
        dt = np.dtype(dtype)
        x = self._order(np.asarray(rgb, dt) * dt.type(self.scale))
        return (x - np.asarray(self.mean, dt)) / np.asarray(self.std, dt)

    def deprocess(self, x):
        """Network input (H, W, 3) -> RGB (H, W, 3) in 0..255 (not clipped), same dtype."""
        dtype = x.dtype
        y = x * np.asarray(self.std, dtype) + np.asarray(self.mean, dtype)
        return self._order(y) / dtype.type(self.scale)

    def pixel_step(self):
        """d(input)/d(rgb) per network channel: scale / std. (3,), in channel_order."""
        return self.scale / np.asarray(self.std, np.float64)


# The mean pixel of the Caffe/Oxford VGG19 that the Keras and MatConvNet files hold.
CAFFE = Preprocessing("BGR", 1.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))
MATCONVNET = Preprocessing("RGB", 1.0, (123.68, 116.779, 103.939), (1.0, 1.0, 1.0))
TORCHVISION = Preprocessing("RGB", 1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


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
        self.params = {}
        for name, c_in, c_out in CONV_SPECS:
            if name not in params:
                raise ValueError(f"missing weights for layer {name}")
            kernel, bias = (np.asarray(a) for a in params[name])
            if kernel.shape != (3, 3, c_in, c_out) or bias.reshape(-1).shape != (c_out,):
                raise ValueError(f"{name}: expected kernel (3, 3, {c_in}, {c_out}) and bias ({c_out},), "
                                 f"got {kernel.shape} and {bias.shape}")
            self.params[name] = (np.ascontiguousarray(kernel, self.dtype),
                                 np.ascontiguousarray(bias.reshape(-1), self.dtype))
        self._caches = None  # [(layer name, cache)] of the last forward call, in order
        self.threads = None  # worker threads for the convolutions; None = all cores (see set_threads)

    def set_threads(self, n):
        """Use n threads (n >= 1) for the convolutions, or None for all cores."""
        if n is not None and int(n) < 1:
            raise ValueError(f"threads must be at least 1, got {n}")
        self.threads = None if n is None else int(n)

    @classmethod
    def from_arrays(cls, params, pooling="avg", preprocessing=CAFFE, dtype=np.float32):
        """Build from {"conv1_1": (kernel HWIO, bias), ...}. Every weight loader goes through here."""
        return cls(params, pooling=pooling, preprocessing=preprocessing, dtype=dtype)

    @classmethod
    def random(cls, seed=0, pooling="avg", preprocessing=CAFFE, dtype=np.float32):
        """He-initialised weights (std sqrt(2 / fan_in)), small random biases. For tests and learners."""
        rng = np.random.default_rng(seed)
        params = {}
        for name, c_in, c_out in CONV_SPECS:
            kernel = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))
            params[name] = (kernel, 0.01 * rng.standard_normal(c_out))
        return cls(params, pooling=pooling, preprocessing=preprocessing, dtype=dtype)

    # -- preprocessing ------------------------------------------------------
    def preprocess(self, rgb):
        """RGB float image in 0..255, (H, W, 3) -> network input (H, W, 3) in self.dtype."""
        return self.preprocessing.preprocess(rgb, self.dtype.type)

    def deprocess(self, x):
        """Network input (H, W, 3) -> RGB (H, W, 3) in 0..255 (not clipped)."""
        return self.preprocessing.deprocess(np.asarray(x, self.dtype))

    # -- forward / backward -------------------------------------------------
    def forward(self, x, layers):
        """x: (H, W, 3), already preprocessed; layers: names from LAYER_NAMES.

        Returns {name: activation (H_l, W_l, C_l)} for the requested names and keeps
        the caches that backward() needs. Stops after the deepest requested layer.
        """
        layers = list(layers)
        unknown = [n for n in layers if n not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; valid names are {LAYER_NAMES}")
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"expected an image of shape (H, W, 3), got {x.shape}")
        last = max(LAYER_NAMES.index(n) for n in layers) if layers else -1
        wanted = set(layers)
        out, caches = {}, []
        for name in LAYER_NAMES[:last + 1]:
            if name.startswith("conv"):
                x, cache = L.conv_forward(x, *self.params[name])
            elif name.startswith("relu"):
                x, cache = L.relu_forward(x)
            elif self.pooling == "avg":
                x, cache = L.avgpool_forward(x)
            else:
                x, cache = L.maxpool_forward(x)
            caches.append((name, cache))
            if name in wanted:
                out[name] = x
        self._caches = caches
        return out

    def backward(self, grads):
        """grads: {name: dL/d(activation of name)} for layers of the last forward call.

        Returns dL/dx, (H, W, 3). A gradient injected at a layer is added (+=) to
        the gradient flowing back from the layers above it, because that
        activation feeds both the loss and the rest of the network.
        """
        if self._caches is None:
            raise RuntimeError("backward() called before forward()")
        done = [name for name, _ in self._caches]
        missing = [n for n in grads if n not in done]
        if missing:
            raise ValueError(f"no activation for {missing} in the last forward pass (it ran {done[0]}..{done[-1]})")
        if not grads:
            raise ValueError("backward() needs at least one gradient")
        deepest = max(done.index(n) for n in grads)
        dx = None
        for name, cache in reversed(self._caches[:deepest + 1]):
            if name in grads:
                g = np.asarray(grads[name], dtype=self.dtype)
                dx = g.copy() if dx is None else dx + g  # sum: this activation feeds several terms
            if name.startswith("conv"):
                dx = L.conv_backward(dx, cache)
            elif name.startswith("relu"):
                dx = L.relu_backward(dx, cache)
            elif self.pooling == "avg":
                dx = L.avgpool_backward(dx, cache)
            else:
                dx = L.maxpool_backward(dx, cache)
        return dx
