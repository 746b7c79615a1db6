"""FastVGG19: the reference vgg.VGG19 with the same API, made fast. See fast/__init__.py for
which reference step each trick replaces and which test proves they agree.

    net = FastVGG19.random(seed=0)                    # or weights.load_vgg19(path) (engine="fast")
    acts = net.forward(x, ["relu1_1", "relu4_2"])     # {name: (H_l, W_l, C_l)}
    dx = net.backward({"relu1_1": g1, "relu4_2": ActivationTimes(K)})  # (H, W, 3)
"""
import dataclasses
import time

import numpy as np

from ..losses import gram_matrix
from ..vgg import VGG19
from ..vgg_spec import CAFFE, check_backward, check_forward
from . import threads as T
from . import winograd
from .activation_times import ActivationTimes, add_in_bands
from .buffers import BufferArena
from .pooling_bands import pool_forward, pool_relu_backward, relu_mask


class FastVGG19(VGG19):
    """vgg.VGG19 (same constructor, params, preprocessing and forward/backward contract), fast.

    Extras: gram(name), padded(name), ActivationTimes gradients, set_threads(n),
    release_buffers(), free_memory(), and timings (set it to {} to collect seconds per layer).
    """

    def __init__(self, params, pooling="avg", preprocessing=CAFFE, dtype=np.float32):
        super().__init__(params, pooling=pooling, preprocessing=preprocessing, dtype=dtype)
        self._layers = None  # the layers of the last forward call, to redo it (see backward)
        self._spent = False  # True once a backward has overwritten the last forward's activations
        self._arena = BufferArena()  # activations, masks and gradients (see the notes below)
        self._held = {}      # arena key of a buffer -> that buffer, kept from forward for backward
        self._taps = {}      # requested layer -> (activation view, its padded buffer) of the last forward
        self._input = None   # the padded input image of the last forward (kept: backward may redo it)
        self.threads = None  # worker threads for the convolutions; None = all cores (see set_threads)
        self._conv = None    # the WinogradConv engine, made on first use with self.threads
        self._wino = {}      # (conv name, backward?, points) -> U, see _kernel (params are fixed from here on)
        self._bufs_for = None  # the input (H, W) the arena's blocks were made for
        self.timings = None  # set to {} to collect seconds per (layer, "forward"/"backward"); benchmark.py does

    def set_threads(self, n):
        """Use n threads (n >= 1) for the convolutions, or None for all cores."""
        if n is not None and int(n) < 1:
            raise ValueError(f"threads must be at least 1, got {n}")
        self.threads = None if n is None else int(n)
        if self._conv is not None:
            self._conv.close()
            self._conv = None

    # How it runs. Each conv runs as a Winograd F(4x4, 3x3) convolution (winograd.py) on a
    # zero-padded buffer, and writes its output straight into the padded buffer the next
    # conv reads, with the ReLU fused in when the pre-ReLU output is not requested.
    # Nothing past the deepest requested layer runs, and no weight gradient is ever formed.
    # float64 runs the very same code.
    #
    # Memory. A ReLU's backward needs only where its output was > 0, so a ReLU output that
    # was not requested is kept as a bool mask (made inside the conv's bands) and its float
    # buffer goes back to the arena (buffers.py) as soon as the next layer has read it.
    # Requested outputs are kept whole until the backward pass has used them (the objective
    # reads them first); the backward pass then writes each gradient over the activation it
    # replaces. All buffers come from one BufferArena, so an evaluation reuses the previous
    # one's memory.

    def _engine(self):
        if self._conv is None:
            n = self.threads or T.available_cores()
            self._conv = winograd.WinogradConv(threads=n)
        return self._conv

    def _kernel(self, name, backward):
        """The Winograd kernel U (36, ., .) of conv `name`, forward or backward-to-input (flipped),
        transformed once per network (0.4 GB for both directions up to conv5_1) and set of interpolation
        points (only winograd.interpolation_points changes them)."""
        key = (name, backward, winograd.current_points())
        if key not in self._wino:
            w = self.params[name][0]
            self._wino[key] = winograd.transform_kernel(winograd.flip_kernel(w) if backward else w, self.dtype)
        return self._wino[key]

    def release_buffers(self):
        """Drop every buffer and the worker threads with their band scratch, which depend on the image
        size; keep the transformed kernels, which do not (all are made again when needed)."""
        if self._conv is not None:
            self._conv.close()
            self._conv = None
        self._arena.clear()
        self._held, self._taps, self._caches = {}, {}, None
        self._input, self._bufs_for = None, None

    def free_memory(self):
        """release_buffers(), and drop the transformed kernels too."""
        self.release_buffers()
        self._wino.clear()

    # -- buffers held from forward to backward (or for the caller), by the arena's key of each
    def _hold(self, arr):
        self._held[self._arena.owner(arr)] = arr
        return arr

    def _is_held(self, arr):
        return self._arena.owner(arr) in self._held

    def _give(self, arr):
        """Hand a buffer back to the arena; the input image's buffer is kept (backward may redo forward)."""
        if np.may_share_memory(arr, self._input):   # bounds only: it is a separate allocation
            return
        self._held.pop(self._arena.owner(arr), None)
        self._arena.give(arr)

    def _give_all(self):
        for arr in list(self._held.values()):
            self._give(arr)
        self._taps = {}

    @staticmethod
    def _padded_shape(H, W, C):
        """Winograd input buffer: whole 4x4 tiles plus the 1-pixel zero border."""
        return (winograd.TILE * -(-H // winograd.TILE) + 2, winograd.TILE * -(-W // winograd.TILE) + 2, C)

    def _take_padded(self, H, W, C):
        """A buffer of _padded_shape(H, W, C) from the arena, with everything outside [1:1+H, 1:1+W] zero
        (the arena's memory holds whatever its last user left)."""
        buf = self._arena.take(self._padded_shape(H, W, C), self.dtype)
        buf[0] = 0
        buf[1 + H:] = 0
        buf[:, 0] = 0
        buf[:, 1 + W:] = 0
        return buf

    def _run_conv(self, name, backward, xp, out, bias=None, relu=False, add=None, mask_from=None, mask_out=None):
        """Conv layer `name` (backward: its backward to the input) of padded xp into out, fast path."""
        w = self.params[name][0]
        if min(w.shape[2:]) <= 3:   # conv1_1: direct, see WinogradConv.conv_direct
            assert add is None and mask_from is None
            return self._engine().conv_direct(xp, winograd.flip_kernel(w) if backward else w, out, bias, relu,
                                              mask_out)
        return self._engine().conv(xp, self._kernel(name, backward), out, bias, relu, add, mask_from, mask_out)

    def _conv_into(self, xp, H, W, name, out, **kw):
        """Convolve padded xp (image H x W) into padded buffer out (from _take_padded); returns out's image view."""
        bh, bw = out.shape[0] - 2, out.shape[1] - 2   # pixels inside the border: H, W rounded up to whole tiles
        self._run_conv(name, kw.pop("backward", False), xp, out[1:1 + bh, 1:1 + bw], **kw)
        out[1 + H:] = 0      # whole tiles overhang the image: restore the zeros the next conv needs
        out[:, 1 + W:] = 0
        return out[1:1 + H, 1:1 + W]

    def _time(self, name, direction, t0):
        """Add the seconds since t0 to timings[(name, direction)] when timings is a dict (profiling)."""
        if self.timings is not None:
            key = (name, direction)
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    def _pool_forward(self, x):
        """2x2 pooling of x (H, W, C) into a zero-padded buffer for the next conv (pooling_bands).

        Returns (pooled view (H//2, W//2, C), cache (x.shape, argmax or None), padded buffer);
        max pooling's argmax, (H//2, W//2, C) uint8, is held for the backward pass.
        """
        H, W, C = x.shape
        xp = self._take_padded(H // 2, W // 2, C)
        inner = xp[1:1 + H // 2, 1:1 + W // 2]
        idx = self._hold(self._arena.take(inner.shape, np.uint8)) if self.pooling == "max" else None
        pool_forward(self._engine(), x, inner, idx)
        return inner, (x.shape, idx), xp

    def _injected_rows(self, g, name, r0, r1):
        """Rows r0..r1 of the gradient injected at layer name: g itself, or for an ActivationTimes
        F @ K (+ plus), computed from that layer's activation F (read before it is overwritten)."""
        if not isinstance(g, ActivationTimes):
            return g[r0:r1]
        return g.rows(self._taps[name][0], r0, r1)

    def _relu_target(self, relu_cache):
        """(padded buffer, mask source) for the gradient at a ReLU's input: the ReLU's own buffer
        when it was kept (a requested layer; its values give the mask and are read band by band
        before being overwritten), else a fresh buffer and the bool mask made in forward."""
        out, mask, buf = relu_cache
        if buf is not None:
            return buf, out
        H, W, C = mask.shape
        return self._take_padded(H, W, C), mask

    def _give_mask(self, relu_cache):
        """Hand back a ReLU's bool mask once its backward has run (None: it kept its activation)."""
        if relu_cache[1] is not None:
            self._give(relu_cache[1])

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

    @T.one_blas_thread
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

    # -- forward ---------------------------------------------------------------------

    @T.one_blas_thread
    def forward(self, x, layers, copy=True):
        """x: (H, W, 3), already preprocessed; layers: names from LAYER_NAMES.

        Returns {name: activation (H_l, W_l, C_l)} for the requested names and keeps
        what backward() needs. Stops after the deepest requested layer. copy=True
        gives fresh copies, safe to keep; copy=False gives read-only views of the
        network's buffers, valid only until the next forward() or backward() (the
        objective reads them before that).
        """
        layers = list(layers)
        x = np.asarray(x, dtype=self.dtype)
        seq = check_forward(x.shape, layers)
        self._input_hw = x.shape[:2]
        self._give_all()   # what the last forward kept
        self._caches = None
        self._arena.begin()
        xp = self._load_input(x)
        H, W = x.shape[:2]
        cur = xp[1:1 + H, 1:1 + W]   # current activation (H, W, C), a view of the padded buffer xp
        wanted, out, caches = set(layers), {}, []
        i = 0
        while i < len(seq):
            name = seq[i]
            t0, timed = time.perf_counter(), name   # a fused conv+ReLU is timed under the conv's name
            prev = xp                                # given back below once read, unless requested
            if name.startswith("conv"):
                fuse = i + 1 < len(seq) and name not in wanted   # the conv's own output is not needed
                relu_name = seq[i + 1] if fuse else None
                cur, xp = self._conv_forward(prev, H, W, name, relu_name, keep_relu=relu_name in wanted,
                                             caches=caches)
                if fuse:
                    name, i = relu_name, i + 1
            elif name.startswith("relu"):
                cur, xp = self._relu_forward(prev, H, W, name, keep=name in wanted, caches=caches)
            else:
                cur, cache, xp = self._pool_forward(cur)
                caches.append((name, cache))
                H, W = cur.shape[:2]
            if name in wanted:
                self._hold(xp)
                self._taps[name] = (cur, xp)
                out[name] = cur.copy() if copy else cur.view()   # buffers are reused by the next call
                out[name].flags.writeable = copy   # a view must not be written: backward reads the buffer
            if not self._is_held(prev):
                self._give(prev)   # read by this layer and not requested: no longer needed
            self._time(timed, "forward", t0)
            i += 1
        # Nothing to give back here: the loop ends at the deepest requested layer, whose buffer is held.
        self._caches = caches
        self._layers, self._spent = layers, False
        return out

    def _load_input(self, x):
        """Copy x (H, W, 3) into the padded input buffer (kept between calls of one size) and return it."""
        H, W = x.shape[:2]
        if self._bufs_for != (H, W):
            # The arena's plan fits one image size; a run at another size should not keep it
            # (the kernels do not depend on the size and stay).
            self._arena.clear()
            self._input = np.zeros(self._padded_shape(H, W, 3), self.dtype)
            self._bufs_for = (H, W)
        self._input[1:1 + H, 1:1 + W] = x
        return self._input

    def _conv_forward(self, prev, H, W, name, relu_name, keep_relu, caches):
        """layers.conv_forward of padded prev into a new padded buffer, followed, when relu_name names
        the ReLU above, by layers.relu_forward in the same bands. A ReLU output that is not
        kept (keep_relu False) leaves only its bool mask. Appends the caches; returns (view, buffer)."""
        c_out = self.params[name][0].shape[3]
        mask = None
        if relu_name is not None and not keep_relu:   # the ReLU's output is dropped: keep its mask
            mask = self._hold(self._arena.take((H, W, c_out), bool))
        xp = self._take_padded(H, W, c_out)
        cur = self._conv_into(prev, H, W, name, xp, bias=self.params[name][1], relu=relu_name is not None,
                              mask_out=mask)
        caches.append((name, (H, W)))
        if relu_name is not None:     # the ReLU ran inside the conv's bands
            caches.append((relu_name, (cur, None, xp) if mask is None else (None, mask, None)))
        return cur, xp

    def _relu_forward(self, prev, H, W, name, keep, caches):
        """layers.relu_forward of padded prev, unfused (its conv's output was requested).
        The ReLU's cache is (output view, None, its buffer) when kept, else (None, bool mask, None)."""
        xp = self._arena.take(prev.shape, self.dtype)
        np.maximum(prev, 0, out=xp)   # the padded border stays 0
        cur = xp[1:1 + H, 1:1 + W]
        if keep:
            caches.append((name, (cur, None, xp)))
        else:
            mask = self._hold(self._arena.take(cur.shape, bool))
            np.greater(cur, 0, out=mask)
            caches.append((name, (None, mask, None)))
        return cur, xp

    # -- backward --------------------------------------------------------------------

    @T.one_blas_thread
    def backward(self, grads):
        """grads: {name: dL/d(activation of name)} for layers of the last forward call.

        Each value is an array (H_l, W_l, C_l), or an ActivationTimes(K) meaning the
        activation of that layer times K (a style loss's gradient, see losses.py).
        Returns dL/dx, (H, W, 3). A gradient injected at a layer is added to the
        gradient flowing back from the layers above it, as in vgg.VGG19.backward.
        """
        check_backward(None if self._caches is None else [n for n, _ in self._caches], grads, self._input_hw)
        unkept = [n for n, g in grads.items() if isinstance(g, ActivationTimes) and n not in self._layers]
        if unkept:
            raise ValueError(f"an ActivationTimes gradient needs its layer requested in forward(): {unkept}")
        if self._spent:
            # The backward pass writes gradients over the activations it no longer needs and
            # hands the buffers back, so a second backward of the same forward first redoes
            # that forward (the objective never does this; the input is still in its buffer).
            H, W = self._bufs_for
            self.forward(self._input[1:1 + H, 1:1 + W].copy(), self._layers, copy=False)
        self._spent = True
        grads = {n: self._unaliased(g) for n, g in grads.items()}
        names = [n for n, _ in self._caches]
        steps = self._caches[:max(names.index(n) for n in grads) + 1]
        dx = None      # gradient w.r.t. the output of the current layer, (H_l, W_l, C_l)
        gpad = None    # the padded buffer dx lives in (None: dx is in an unpadded arena array)
        skip = None    # a ReLU whose backward already ran inside the layer above it
        for k in range(len(steps) - 1, -1, -1):
            name, cache = steps[k]
            if name == skip:
                continue
            if name in grads:
                dx, gpad = self._inject(grads[name], name, dx, gpad)   # steps end at the deepest one: dx is set
            t0 = time.perf_counter()
            if name.startswith("conv"):
                dx, gpad, skip = self._conv_backward(name, cache, steps[k - 1] if k > 0 else None, gpad, grads)
            elif name.startswith("relu"):
                dx, gpad = self._relu_backward(cache, dx, gpad)
            else:
                dx, gpad, skip = self._pool_backward(cache, steps[k - 1], dx, grads)
            self._time(name, "backward", t0)
        result = dx.copy()   # buffers are reused by the next call
        self._give(dx)
        self._give_all()
        return result

    def _unaliased(self, g):
        """A gradient backward may read after writing over the network's buffers: an array g (or an
        ActivationTimes' plus) that shares memory with them, such as a view from forward(copy=False),
        is copied first; the backward pass would otherwise read its own partial results.
        (ActivationTimes' F is read band by band before that band is written, so it is safe.)"""
        if isinstance(g, ActivationTimes):
            if g.plus is not None and self._arena.may_share_memory(g.plus):
                g = dataclasses.replace(g, plus=g.plus.copy())
            return g
        g = np.asarray(g, dtype=self.dtype)
        return g.copy() if self._arena.may_share_memory(g) else g

    def _inject(self, g, name, dx, gpad):
        """dx + the gradient g injected at layer name (vgg.VGG19.backward's `d + g`); at the deepest
        tap, where nothing flows back yet, g starts the pass in a new padded buffer. Returns (dx, gpad)."""
        fresh = dx is None
        if fresh:
            H, W, C = self._taps[name][0].shape if name in self._taps else g.shape
            gpad = self._take_padded(H, W, C)
            dx = gpad[1:1 + H, 1:1 + W]
        add_in_bands(dx, lambda r0, r1: self._injected_rows(g, name, r0, r1), accumulate=not fresh)
        return dx, gpad

    def _conv_backward(self, name, cache, below, gpad, grads):
        """layers.conv_backward of dx (in its padded buffer gpad); when the layer below is a ReLU, also its
        injected gradient and layers.relu_backward, in the same bands. Returns (dx, gpad, the ReLU done or None)."""
        H, W = cache
        # dx always arrives padded: _inject, _relu_backward and _pool_backward all write into a
        # padded buffer, and a conv's backward hands on an unpadded one only below conv1_1 (nothing
        # left) or into a pool's backward (which takes any dx).
        assert gpad is not None, name
        if below is not None and below[0].startswith("relu"):
            # dx = conv(dout, flipped kernel), then + the gradient injected at that ReLU and
            # times its mask, written into the ReLU's buffer (see _relu_target), which the
            # next conv's backward reads.
            relu_name, relu_cache = below
            target, mask_src = self._relu_target(relu_cache)
            g = grads.get(relu_name)
            add = None if g is None else (lambda r0, r1: self._injected_rows(g, relu_name, r0, r1))
            H, W = mask_src.shape[:2]
            new = self._conv_into(gpad, H, W, name, target, backward=True, add=add, mask_from=mask_src)
            self._give(gpad)
            self._give_mask(relu_cache)
            return new, target, relu_name
        bh, bw = gpad.shape[0] - 2, gpad.shape[1] - 2   # as in _conv_into: whole tiles
        res = self._arena.take((bh, bw, self.params[name][0].shape[2]), self.dtype)
        self._run_conv(name, True, gpad, res)
        self._give(gpad)
        return res[:H, :W], None, None

    def _relu_backward(self, cache, dx, gpad):
        """layers.relu_backward, reached only at the deepest gradient (a conv's or a pool's backward
        does the ReLU below it in its own bands):
        dL/dconv = dL/drelu where the unit was active, written into the padded buffer that the
        conv's backward reads next. Returns (dx, gpad)."""
        target, mask_src = self._relu_target(cache)
        H, W = mask_src.shape[:2]
        inner = target[1:1 + H, 1:1 + W]
        np.multiply(dx, relu_mask(mask_src), out=inner)
        if gpad is not target:
            self._give(dx)
        self._give_mask(cache)
        return inner, target

    def _pool_backward(self, cache, below, dx, grads):
        """In VGG19 a pool always follows a ReLU: its backward, plus any gradient injected at that
        ReLU, times the ReLU's mask, goes straight into the padded buffer of the conv below.
        Returns (dx, gpad, the ReLU done)."""
        relu_name, relu_cache = below
        assert relu_name.startswith("relu"), relu_name
        (H, W, _), idx = cache
        target, mask_src = self._relu_target(relu_cache)
        new = target[1:1 + H, 1:1 + W]
        g = grads.get(relu_name)
        add = None if g is None else (lambda r0, r1: self._injected_rows(g, relu_name, r0, r1))
        pool_relu_backward(self._engine(), dx, idx, new, mask_src, add)
        self._give(dx)
        self._give_mask(relu_cache)
        if cache[1] is not None:
            self._give(cache[1])   # max pooling's argmax
        return new, target, relu_name
