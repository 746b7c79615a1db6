"""What both VGG19 networks share: the layer table, the input preprocessing, and the checks
of a forward/backward request.

vgg.VGG19 (the reference, built from layers.py) and fast.FastVGG19 (the engine) import
everything here, so a layer name or a preprocessing preset is defined exactly once.

Layer names follow Gatys et al.: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...
conv5_4, relu5_4, pool5. The classifier layers are never needed for style transfer.
"""
from dataclasses import dataclass

import numpy as np

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
# name[4] is the block digit: every prefix (conv, relu, pool) has four letters.
BLOCK_WIDTH = {int(name[4]): c_out for name, _, c_out in CONV_SPECS}   # block -> C_out (a block's convs agree)


def activation_shape(name, hw):
    """(H_l, W_l, C_l) of layer name's output for an input of hw = (H, W).

    3x3 convolutions with padding 1 keep the size; each 2x2 pooling halves it, rounding down.
    """
    block = int(name[4])
    pools = block if name.startswith("pool") else block - 1   # poolings up to and including this layer
    return hw[0] // 2 ** pools, hw[1] // 2 ** pools, BLOCK_WIDTH[block]


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
        # finite too: a NaN mean or an infinite std from a file turns every input pixel into NaN
        if not (self.scale > 0 and len(self.mean) == 3 and len(self.std) == 3 and min(self.std) > 0
                and np.all(np.isfinite([self.scale, *self.mean, *self.std]))):
            raise ValueError(f"invalid preprocessing {self}")

    def _order(self, x):
        """x: (..., 3) -> (..., 3), channels reversed for a BGR network (a view)."""
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


def checked_params(params, dtype):
    """{"conv1_1": (kernel (3, 3, C_in, C_out), bias (C_out,)), ...} -> the same, contiguous, in dtype.

    Raises ValueError naming the first layer that is missing or has the wrong shape.
    """
    out = {}
    for name, c_in, c_out in CONV_SPECS:
        if name not in params:
            raise ValueError(f"missing weights for layer {name}")
        kernel, bias = (np.asarray(a) for a in params[name])
        if kernel.shape != (3, 3, c_in, c_out) or bias.reshape(-1).shape != (c_out,):
            raise ValueError(f"{name}: expected kernel (3, 3, {c_in}, {c_out}) and bias ({c_out},), "
                             f"got {kernel.shape} and {bias.shape}")
        out[name] = (np.ascontiguousarray(kernel, dtype), np.ascontiguousarray(bias.reshape(-1), dtype))
    return out


def random_params(seed):
    """He-initialised kernels (std sqrt(2 / fan_in)) and small random biases, float64. For tests and learners."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, c_in, c_out in CONV_SPECS:
        kernel = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))
        params[name] = (kernel, 0.01 * rng.standard_normal(c_out))
    return params


def check_forward(x_shape, layers):
    """Validate a forward(x, layers) request; returns the names LAYER_NAMES[:deepest + 1] to run.

    Raises ValueError for an unknown name, an input that is not (H, W, 3), or an image too small
    for the poolings on the way to the deepest requested layer.
    """
    unknown = [n for n in layers if n not in LAYER_NAMES]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; valid names are {LAYER_NAMES}")
    if len(x_shape) != 3 or x_shape[2] != 3:
        raise ValueError(f"expected an image of shape (H, W, 3), got {tuple(x_shape)}")
    last = max(LAYER_NAMES.index(n) for n in layers) if layers else -1
    pools = sum(n.startswith("pool") for n in LAYER_NAMES[:last + 1])
    if min(x_shape[:2]) < 2 ** pools or min(x_shape[:2]) == 0:
        raise ValueError(f"a {x_shape[1]}x{x_shape[0]} image is too small for layer {LAYER_NAMES[last]} "
                         f"({pools} poolings need at least {2 ** pools} pixels per side)")
    return LAYER_NAMES[:last + 1]


def check_backward(ran, grads, hw):
    """Validate a backward(grads) request against the layer names the last forward ran (None: none)
    and its input size hw = (H, W): each gradient must have its activation's shape (no broadcasting).
    An ActivationTimes gradient checks its own arrays (its check_shape)."""
    if ran is None:
        raise RuntimeError("backward() called before forward()")
    missing = [n for n in grads if n not in ran]
    if missing:
        span = f"{ran[0]}..{ran[-1]}" if ran else "no layer"
        raise ValueError(f"no activation for {missing} in the last forward pass (it ran {span})")
    if not grads:
        raise ValueError("backward() needs at least one gradient")
    for name, g in grads.items():
        want = activation_shape(name, hw)
        if hasattr(g, "check_shape"):
            g.check_shape(name, want)
        elif np.shape(g) != want:
            raise ValueError(f"the gradient for {name} has shape {np.shape(g)}; its activation has shape {want}")
