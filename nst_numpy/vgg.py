"""VGG19's convolutional part (Simonyan & Zisserman 2014), with a hand-written backward pass.

Layer names follow Gatys et al.: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...
conv5_4, relu5_4, pool5. The classifier layers are never needed for style transfer.

    net = VGG19.from_arrays({"conv1_1": (kernel, bias), ...}, pooling="avg")
    acts = net.forward(x, ["relu1_1", "relu4_2"])     # {name: (H_l, W_l, C_l)}
    dx = net.backward({"relu1_1": g1, "relu4_2": g2})  # (H, W, 3)
"""
import functools
import os
import time
from dataclasses import dataclass

import numpy as np

from . import layers as L
from . import threads as T
from . import winograd
from .buffers import BufferPool
from .losses import gram_matrix

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


def _one_blas_thread(method):
    """Run method with single-threaded BLAS outside the engine's bands (which set their own).

    The engine's worker threads do the parallel work. A BLAS call left at all cores wakes
    OpenBLAS's own workers, which then spin for a while and take a core from ours (measured:
    0.11 s of CPU burnt in the 0.2 s after one 512x512 product; one objective evaluation at
    256 px: 0.565 s with BLAS left at 2 threads, 0.503 s at 1).
    """
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with T.blas_threads(1):
            return method(*args, **kwargs)
    return wrapped


def _mask(src):
    """A ReLU's mask from what backward kept of it: the bool mask itself, or the ReLU's output (> 0)."""
    return src if src.dtype == bool else src > 0


@dataclass(frozen=True)
class ActivationTimes:
    """A gradient to inject at a layer, given as F @ K: that layer's own activation F (H, W, C)
    times K (C, C), plus an optional ordinary gradient (H, W, C).

    A style loss's gradient has this form (losses.style_loss_from_gram, Gatys et al. 2016,
    eq. 6). Handing backward() K instead of the (H, W, C) product lets it form the product
    band by band while the activation is in cache, just before overwriting it: no
    activation-sized array for it ever exists.
    """
    K: np.ndarray
    plus: np.ndarray = None


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
        self._layers = None  # the layers of the last forward call, to redo it (see backward)
        self._spent = False  # True once a backward has overwritten the last forward's activations
        self._pool = BufferPool()  # activations, masks and gradients (see the forward/backward notes)
        self._held = {}      # id(block) -> array kept from forward for backward (or for the caller)
        self._taps = {}      # requested layer -> (activation view, its padded buffer) of the last forward
        self._input = None   # the padded input image of the last forward (kept: backward may redo it)
        self.threads = None  # worker threads for the convolutions; None = all cores (see set_threads)
        self._conv = None    # the WinogradConv engine, made on first use with self.threads
        self._wino = {}      # (conv name, backward?) -> U, see _kernel (params are fixed from here on)
        self._bufs_for = None  # the input (H, W) the pool's blocks were made for
        self.timings = None  # set to {} to collect seconds per (layer, "forward"/"backward"); benchmark.py does

    def set_threads(self, n):
        """Use n threads (n >= 1) for the convolutions, or None for all cores."""
        if n is not None and int(n) < 1:
            raise ValueError(f"threads must be at least 1, got {n}")
        self.threads = None if n is None else int(n)
        if self._conv is not None:
            self._conv.close()
            self._conv = None

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
    #
    # The fast path. Each conv runs as a Winograd F(4x4, 3x3) convolution
    # (winograd.py) on a zero-padded buffer, and writes its output straight into
    # the padded buffer the next conv reads, with the ReLU fused in when the
    # pre-ReLU output is not requested. Nothing past the deepest requested layer
    # runs, and no weight gradient is ever formed. float64 runs the very same code.
    # layers.py holds the readable reference each step is tested against.
    #
    # Memory. A ReLU's backward needs only where its output was > 0, so a ReLU
    # output that was not requested is kept as a bool mask (made inside the conv's
    # bands) and its float buffer goes back to the pool (buffers.py) as soon as the
    # next layer has read it. Requested outputs are kept whole until the backward
    # pass has used them (the objective reads them first); the backward pass then
    # writes each gradient over the activation it replaces. All buffers come from
    # one BufferPool, so an evaluation reuses the previous one's memory.

    def _engine(self):
        if self._conv is None:
            n = self.threads or len(os.sched_getaffinity(0))
            self._conv = winograd.WinogradConv(threads=n)
        return self._conv

    def _kernel(self, name, backward):
        """The Winograd kernel U (36, ., .) of conv `name`, forward or backward-to-input (flipped),
        transformed once per network (0.4 GB for both directions up to conv5_1)."""
        if (name, backward) not in self._wino:
            w = self.params[name][0]
            self._wino[name, backward] = winograd.transform_kernel(winograd.flip_kernel(w) if backward else w,
                                                                   self.dtype)
        return self._wino[name, backward]

    def free_memory(self):
        """Drop every buffer and transformed kernel (they are made again when needed)."""
        self._pool.clear()
        self._held, self._taps, self._caches = {}, {}, None
        self._input, self._bufs_for = None, None
        self._wino.clear()

    # Buffers held from forward to backward (or for the caller), by the pool's key of each.
    def _hold(self, arr):
        self._held[self._pool.owner(arr)] = arr
        return arr

    def _is_held(self, arr):
        return self._pool.owner(arr) in self._held

    def _give(self, arr):
        """Hand a buffer back to the pool; the input image's buffer is kept (backward may redo forward)."""
        if np.may_share_memory(arr, self._input):   # bounds only: it is a separate allocation
            return
        self._held.pop(self._pool.owner(arr), None)
        self._pool.give(arr)

    def _give_all(self):
        for arr in list(self._held.values()):
            self._give(arr)
        self._taps = {}

    @staticmethod
    def _padded_shape(H, W, C):
        """Winograd input buffer: whole 4x4 tiles plus the 1-pixel zero border."""
        return (winograd.TILE * -(-H // winograd.TILE) + 2, winograd.TILE * -(-W // winograd.TILE) + 2, C)

    def _take_padded(self, H, W_, C):
        """A buffer of _padded_shape(H, W_, C) from the pool, with everything outside [1:1+H, 1:1+W_] zero
        (the pool's memory holds whatever its last user left)."""
        buf = self._pool.take(self._padded_shape(H, W_, C), self.dtype)
        buf[0] = 0
        buf[1 + H:] = 0
        buf[:, 0] = 0
        buf[:, 1 + W_:] = 0
        return buf

    def _run_conv(self, name, backward, xp, out, bias=None, relu=False, add=None, mask_from=None, mask_out=None):
        """Conv layer `name` (backward: its backward to the input) of padded xp into out, fast path."""
        w = self.params[name][0]
        if min(w.shape[2:]) <= 3:   # conv1_1: direct, see WinogradConv.conv_direct
            assert add is None and mask_from is None
            return self._engine().conv_direct(xp, winograd.flip_kernel(w) if backward else w, out, bias, relu,
                                              mask_out)
        return self._engine().conv(xp, self._kernel(name, backward), out, bias, relu, add, mask_from, mask_out)

    def _conv_into(self, xp, H, W_, name, out, **kw):
        """Convolve padded xp (image H x W_) into padded buffer out (from _take_padded); returns out's image view."""
        th, tw = out.shape[0] - 2, out.shape[1] - 2
        self._run_conv(name, kw.pop("backward", False), xp, out[1:1 + th, 1:1 + tw], **kw)
        out[1 + H:] = 0      # whole tiles overhang the image: restore the zeros the next conv needs
        out[:, 1 + W_:] = 0
        return out[1:1 + H, 1:1 + W_]

    def _time(self, name, direction, t0):
        """Add the seconds since t0 to timings[(name, direction)] when timings is a dict (profiling)."""
        if self.timings is not None:
            key = (name, direction)
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    _POOL_BAND = 8   # pooled rows per band: keeps the layer functions' temporaries in cache

    def _pool_forward(self, x, name):
        """2x2 pooling (layers.avgpool_forward / maxpool_forward) in row bands on the worker threads,
        written straight into a zero-padded buffer for the next conv.

        x: (H, W, C) -> (pooled view (H//2, W//2, C), cache (x.shape, argmax or None), padded buffer).
        argmax: (H//2, W//2, C) uint8 (positions 0..3), held for the backward pass.
        """
        H, W_, C = x.shape
        Ho, Wo = H // 2, W_ // 2
        xp = self._take_padded(Ho, Wo, C)
        inner = xp[1:1 + Ho, 1:1 + Wo]
        idx = self._hold(self._pool.take((Ho, Wo, C), np.uint8)) if self.pooling == "max" else None

        def band(r0, r1):
            if idx is None:
                inner[r0:r1] = L.avgpool_forward(x[2 * r0:2 * r1])[0]
            else:
                inner[r0:r1], (_, idx[r0:r1]) = L.maxpool_forward(x[2 * r0:2 * r1])

        self._engine().map_rows(band, Ho, self._POOL_BAND)
        return inner, (x.shape, idx), xp

    def _injected_rows(self, g, name, r0, r1):
        """Rows r0..r1 of the gradient injected at layer name: g itself, or for an ActivationTimes
        F @ K (+ plus), computed from that layer's activation F (read before it is overwritten)."""
        if not isinstance(g, ActivationTimes):
            return g[r0:r1]
        part = np.matmul(self._taps[name][0][r0:r1], g.K)   # (rows, W, C) @ (C, C)
        if g.plus is not None:
            part += g.plus[r0:r1]
        return part

    def _relu_target(self, relu):
        """(padded buffer, mask source) for the gradient at a ReLU's input: the ReLU's own buffer
        when it was kept (a requested layer; its values give the mask and are read band by band
        before being overwritten), else a fresh buffer and the bool mask made in forward."""
        out, mask, buf = relu
        if buf is not None:
            return buf, out
        H, W_, C = mask.shape
        return self._take_padded(H, W_, C), mask

    def _give_mask(self, relu):
        """Hand back a ReLU's bool mask once its backward has run (None: it kept its activation)."""
        if relu[1] is not None:
            self._give(relu[1])

    def _pool_relu_backward(self, dout, cache, relu_name, relu, g):
        """Pooling backward (layers.*pool_backward) in row bands, then + g (the gradient injected at
        the ReLU below, or None) and times that ReLU's mask (layers.relu_backward), written into
        the padded buffer of _relu_target.

        dout: (H//2, W//2, C); relu: that ReLU's cache. Returns (dx view (H, W, C), its padded buffer).
        """
        (H, W_, C), idx = cache
        target, mask_src = self._relu_target(relu)
        dst = target[1:1 + H, 1:1 + W_]

        def band(r0, r1):
            rows = slice(2 * r0, 2 * r1)
            if idx is None:
                d = L.avgpool_backward(dout[r0:r1], (2 * (r1 - r0), W_, C))
            else:
                d = L.maxpool_backward(dout[r0:r1], ((2 * (r1 - r0), W_, C), idx[r0:r1]))
            if g is not None:
                d += self._injected_rows(g, relu_name, 2 * r0, 2 * r1)
            m = _mask(mask_src[rows])   # read before dst is written
            np.multiply(d, m, out=dst[rows])

        self._engine().map_rows(band, dout.shape[0], self._POOL_BAND)
        if H % 2:   # an odd last row fed no window: no gradient from the pool
            last = _mask(mask_src[H - 1])
            dst[H - 1] = 0 if g is None else self._injected_rows(g, relu_name, H - 1, H)[0] * last
        return dst, target

    def padded(self, name):
        """The zero-padded buffer holding a requested layer's activation from the last forward().

        Shape (H_l + pad, W_l + pad, C_l), the activation at [1:1 + H_l, 1:1 + W_l] and zeros
        elsewhere: a contiguous array, so a Gram matrix of it needs no copy (zeros add nothing
        to one). Read-only; valid until the next forward() or backward(), like forward's views.
        """
        if name not in self._taps:
            raise ValueError(f"{name} was not requested in the last forward()")
        view = self._taps[name][1].view()
        view.flags.writeable = False
        return view

    @_one_blas_thread
    def gram(self, name):
        """losses.gram_matrix of a requested layer's activation (Gatys et al. 2016, eq. 3), (C_l, C_l).

        Taken of the padded buffer (its zeros add nothing), as one partial Gram per worker
        thread over its share of the rows, summed in a fixed order. Why not one product: with
        few channels the result is small, and OpenBLAS splits only the result between its
        threads, so a second thread barely helps (25 vs 19 ms at 512 px, relu1_1). Differs
        from gram_matrix by float rounding only (the sum's order).
        """
        Fp = self.padded(name)
        C = Fp.shape[2]
        engine = self._engine()
        if engine.threads == 1 or Fp.shape[0] * Fp.shape[1] < 4 * C:   # small: one product
            return gram_matrix(Fp)
        parts = {}

        def band(r0, r1):
            parts[r0] = gram_matrix(Fp[r0:r1])

        engine.map_rows(band, Fp.shape[0], Fp.shape[0])   # one band per thread
        return sum(parts[r] for r in sorted(parts))

    @_one_blas_thread
    def forward(self, x, layers, copy=True):
        """x: (H, W, 3), already preprocessed; layers: names from LAYER_NAMES.

        Returns {name: activation (H_l, W_l, C_l)} for the requested names and keeps
        what backward() needs. Stops after the deepest requested layer. copy=True
        gives fresh copies, safe to keep; copy=False gives read-only views of the
        network's buffers, valid only until the next forward() or backward() (the
        objective reads them before that).
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
        pools = sum(n.startswith("pool") for n in LAYER_NAMES[:last + 1])
        if min(x.shape[:2]) < 2 ** pools or min(x.shape[:2]) == 0:
            raise ValueError(f"a {x.shape[1]}x{x.shape[0]} image is too small for layer {LAYER_NAMES[last]} "
                             f"({pools} poolings need at least {2 ** pools} pixels per side)")
        self._give_all()   # what the last forward kept
        self._caches = None
        self._pool.begin()
        out, caches = {}, []
        H, W_ = x.shape[:2]
        if self._bufs_for != (H, W_):
            # The pool's plan and arena fit one image size; a run at another size should not
            # keep them (the kernels do not depend on the size and stay).
            self._pool.clear()
            self._input = np.zeros(self._padded_shape(H, W_, 3), self.dtype)
            self._bufs_for = (H, W_)
        xp = self._input
        xp[1:1 + H, 1:1 + W_] = x
        cur = xp[1:1 + H, 1:1 + W_]   # current activation (H, W, C), a view of the padded buffer xp
        seq = LAYER_NAMES[:last + 1]
        i = 0
        while i < len(seq):
            name = seq[i]
            t0, timed = time.perf_counter(), name   # a fused conv+ReLU is timed under the conv's name
            prev = xp                                # given back below once read, unless requested
            if name.startswith("conv"):
                fuse = i + 1 < len(seq) and name not in wanted   # conv output itself not needed
                c_out = self.params[name][0].shape[3]
                mask = None
                if fuse and seq[i + 1] not in wanted:   # the ReLU's output is dropped: keep its mask
                    mask = self._hold(self._pool.take((H, W_, c_out), bool))
                xp = self._take_padded(H, W_, c_out)
                cur = self._conv_into(prev, H, W_, name, xp, bias=self.params[name][1], relu=fuse, mask_out=mask)
                caches.append((name, (H, W_)))
                if fuse:         # the ReLU ran inside the conv's bands
                    name = seq[i + 1]
                    caches.append((name, (cur, mask, xp) if mask is None else (None, mask, None)))
                    i += 1
            elif name.startswith("relu"):
                xp = self._pool.take(prev.shape, self.dtype)
                np.maximum(prev, 0, out=xp)   # the padded border stays 0
                cur = xp[1:1 + H, 1:1 + W_]
                if name in wanted:
                    caches.append((name, (cur, None, xp)))
                else:
                    mask = self._hold(self._pool.take(cur.shape, bool))
                    np.greater(cur, 0, out=mask)
                    caches.append((name, (None, mask, None)))
            else:
                cur, cache, xp = self._pool_forward(cur, name)
                caches.append((name, cache))
                H, W_ = cur.shape[:2]
            if name in wanted:
                self._hold(xp)
                self._taps[name] = (cur, xp)
                out[name] = cur.copy() if copy else cur.view()   # buffers are reused by the next call
                out[name].flags.writeable = copy   # a view must not be written: backward reads the buffer
            if not self._is_held(prev):
                self._give(prev)   # read by this layer and not requested: no longer needed
            self._time(timed, "forward", t0)
            i += 1
        if not self._is_held(xp):
            self._give(xp)         # the last layer's output, when only its input was requested
        self._caches = caches
        self._layers, self._spent = layers, False
        return out

    @_one_blas_thread
    def backward(self, grads):
        """grads: {name: dL/d(activation of name)} for layers of the last forward call.

        Each value is an array (H_l, W_l, C_l), or an ActivationTimes(K) meaning the
        activation of that layer times K (a style loss's gradient, see losses.py).
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
        unkept = [n for n, g in grads.items() if isinstance(g, ActivationTimes) and n not in self._layers]
        if unkept:
            raise ValueError(f"an ActivationTimes gradient needs its layer requested in forward(): {unkept}")
        if self._spent:
            # The backward pass writes gradients over the activations it no longer needs and
            # hands the buffers back, so a second backward of the same forward first redoes
            # that forward (the objective never does this; the input is still in its buffer).
            H, W_ = self._bufs_for
            self.forward(self._input[1:1 + H, 1:1 + W_].copy(), self._layers, copy=False)
        self._spent = True
        grads = {n: g if isinstance(g, ActivationTimes) else np.asarray(g, dtype=self.dtype)
                 for n, g in grads.items()}
        deepest = max(done.index(n) for n in grads)
        steps = self._caches[:deepest + 1]
        dx = None      # gradient w.r.t. the output of the current layer, (H_l, W_l, C_l)
        gpad = None    # the padded buffer dx lives in (None: dx is in an unpadded pool array)
        skip = None    # a ReLU whose backward already ran inside the layer above it
        for k in range(len(steps) - 1, -1, -1):
            name, cache = steps[k]
            if name == skip:
                continue
            if name in grads:
                g = grads[name]
                if dx is None:   # the deepest layer: its injected gradient starts the pass
                    H, W_, C = self._taps[name][0].shape if name in self._taps else g.shape
                    gpad = self._take_padded(H, W_, C)
                    dx = gpad[1:1 + H, 1:1 + W_]
                    dx[...] = self._injected_rows(g, name, 0, H)
                else:
                    dx += self._injected_rows(g, name, 0, dx.shape[0])   # sum: it feeds several terms
            if dx is None:
                continue
            t0 = time.perf_counter()
            if name.startswith("conv"):
                H, W_ = cache
                if gpad is None:
                    gpad = self._take_padded(H, W_, dx.shape[2])
                    gpad[1:1 + H, 1:1 + W_] = dx
                    self._give(dx)
                below = steps[k - 1] if k > 0 else (None, None)
                if below[0] is not None and below[0].startswith("relu"):
                    # dx = conv(dout, flipped kernel) (layers.conv_backward), then, in the same
                    # bands, + the gradient injected at that ReLU and times its mask
                    # (layers.relu_backward), written into the ReLU's buffer (see _relu_target),
                    # which the next conv's backward reads.
                    relu_name, relu = below
                    target, mask_src = self._relu_target(relu)
                    g = grads.get(relu_name)
                    add = None if g is None else (lambda r0, r1, g=g, n=relu_name: self._injected_rows(g, n, r0, r1))
                    H, W_ = mask_src.shape[:2]
                    new = self._conv_into(gpad, H, W_, name, target, backward=True, add=add, mask_from=mask_src)
                    self._give(gpad)
                    self._give_mask(relu)
                    dx, gpad, skip = new, target, relu_name
                else:
                    th, tw = gpad.shape[0] - 2, gpad.shape[1] - 2
                    res = self._pool.take((th, tw, self.params[name][0].shape[2]), self.dtype)
                    self._run_conv(name, True, gpad, res)
                    self._give(gpad)
                    dx, gpad = res[:H, :W_], None
            elif name.startswith("relu"):
                # Reached only when the layer above was not a conv (or nothing): dL/dconv =
                # dL/drelu where the unit was active (layers.relu_backward), written into
                # the padded buffer that the conv's backward reads next.
                target, mask_src = self._relu_target(cache)
                H, W_ = mask_src.shape[:2]
                inner = target[1:1 + H, 1:1 + W_]
                np.multiply(dx, _mask(mask_src), out=inner)
                if gpad is not target:
                    self._give(dx)
                self._give_mask(cache)
                dx, gpad = inner, target
            else:
                # In VGG19 a pool always follows a ReLU: its backward, plus any gradient injected at
                # that ReLU, times the ReLU's mask, goes straight into the padded buffer of the conv below.
                relu_name, relu = steps[k - 1]
                assert relu_name.startswith("relu"), relu_name
                new, target = self._pool_relu_backward(dx, cache, relu_name, relu, grads.get(relu_name))
                self._give(dx)
                self._give_mask(relu)
                if cache[1] is not None:
                    self._give(cache[1])   # max pooling's argmax
                dx, gpad, skip = new, target, relu_name
            self._time(name, "backward", t0)
        result = dx.copy()   # buffers are reused by the next call
        self._give(dx)
        self._give_all()
        return result
