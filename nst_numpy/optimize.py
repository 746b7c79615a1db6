"""The style-transfer objective and the optimisers that minimise it.

    f = make_objective(net, content, [(style, 1.0)], Config())
    loss, grad = f(x_flat)          # x_flat: float64, the network-space image raveled
    f.parts                         # {"content": ..., "style": ..., "tv": ...} of that call

The image being optimised lives in network space (the output of net.preprocess),
so the optimiser works directly on what the first conv sees; pixel bounds and the
TV term are mapped through net.preprocessing, so they mean the same for every
channel order, scale and std.
"""
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image
from scipy.optimize import fmin_l_bfgs_b

from .image import MIN_SIDE, fit_size, luminance, match_luminance, resize, transfer_colors, with_luminance_of
from .losses import content_loss, gram_matrix, style_loss_from_gram, tv_loss
from .threads import blas_threads
from .vgg import CONV_SPECS, ActivationTimes


def pixel_bounds(net):
    """Per network channel (lo, hi), each (3,): where RGB 0 and 255 land after preprocessing."""
    pre = net.preprocessing
    lo = pre.preprocess(np.zeros((1, 1, 3)), np.float64).reshape(3)
    hi = pre.preprocess(np.full((1, 1, 3), 255.0), np.float64).reshape(3)
    return lo, hi


class Objective:
    """f(x_flat float64) -> (loss float, grad float64 flat), for scipy's L-BFGS-B (jac=True).

    Built by make_objective; the targets are computed once here. After each call,
    self.parts holds the weighted content, style and tv terms of that call.
    """

    def __init__(self, net, content, styles, config, shape=None):
        config.validate()
        self.net = net
        self.config = config
        dt = net.dtype
        if content is not None:
            shape = np.shape(content)
        if shape is None or len(shape) != 3 or shape[2] != 3:
            raise ValueError("make_objective needs a content image (H, W, 3) or, for texture synthesis, shape=(H, W, 3)")
        self.shape = tuple(int(s) for s in shape)
        if not styles:
            raise ValueError("at least one style image is needed")
        blend = np.array([float(w) for _, w in styles])
        if not (np.all(np.isfinite(blend)) and np.all(blend >= 0) and blend.sum() > 0):
            raise ValueError(f"style blend weights must be >= 0 and not all zero, got {blend.tolist()}")
        blend = blend / blend.sum()

        self.content_layers = tuple(config.content_layers) if content is not None else ()
        self.style_layers = tuple(config.style_layers)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        empty = [n for n, (M, _) in _layer_sizes(self.shape, self.layers).items() if M == 0]
        if empty:
            raise ValueError(f"a {self.shape[1]}x{self.shape[0]} image is too small for layer(s) {', '.join(empty)}")

        # Content targets P^l and their weights alpha / n_c / Z_c.
        self.P, self.content_w = {}, {}
        if content is not None:
            acts = net.forward(np.asarray(content, dt), self.content_layers, copy=False)
            for name in self.content_layers:
                P = acts[name].copy()
                z = 0.5 * float(np.sum(P.astype(np.float64) ** 2)) if config.normalize else 1.0
                self.P[name] = P
                self.content_w[name] = config.content_weight / len(self.content_layers) / max(z, 1e-30)

        # Style targets A^l: the blend of the style images' Gram matrices. A Gram matrix
        # sums over positions, so a style image with M_s positions at a layer is rescaled
        # by M / M_s to the output's M positions (the paper assumes equal sizes).
        sizes = _layer_sizes(self.shape, self.style_layers)
        self.A = {name: np.zeros((sizes[name][1],) * 2, np.float64) for name in self.style_layers}
        for (img, _), b in zip(styles, blend):
            if b == 0:
                continue
            acts = net.forward(np.asarray(img, dt), self.style_layers, copy=False)  # read before the next forward
            for name in self.style_layers:
                F = acts[name]
                M_s = F.shape[0] * F.shape[1]
                if M_s == 0:
                    raise ValueError(f"a style image of {np.shape(img)[1]}x{np.shape(img)[0]} px is too small for {name}")
                self.A[name] += b * (sizes[name][0] / M_s) * _gram64(net.padded(name))
        self.style_w = {}
        for name, w in zip(self.style_layers, config.layer_weights()):
            M, N = sizes[name]
            A = self.A[name]
            z = float(np.sum(A * A)) / (4.0 * N ** 2 * M ** 2) if config.normalize else 1.0
            self.A[name] = A.astype(dt)
            self.style_w[name] = config.style_weight * w / max(z, 1e-30)

        # TV on the image in 0..1 RGB units: network value / (pixel_step * 255), per channel.
        self.tv_scale = 1.0 / (net.preprocessing.pixel_step() * 255.0)  # (3,), network channel order
        self.tv_w = config.tv_weight / (self.shape[0] * self.shape[1])
        self.parts = {}

    def __call__(self, x_flat):
        dt = self.net.dtype
        x = np.asarray(x_flat).reshape(self.shape).astype(dt)  # float32 for real runs
        acts = self.net.forward(x, self.layers, copy=False)  # views, read before backward() below
        grads = {}
        parts = {"content": 0.0, "style": 0.0, "tv": 0.0}
        for name in self.content_layers:
            loss, g = content_loss(acts[name], self.P[name])
            w = self.content_w[name]
            parts["content"] += w * loss
            g *= dt.type(w)   # in place: g is the loss's own array
            grads[name] = g
        for name in self.style_layers:
            # gram_matrix of the activation, split over the engine's threads (VGG19.gram).
            G = self.net.gram(name)
            loss, K = style_loss_from_gram(G, self.A[name], acts[name].shape[0] * acts[name].shape[1])
            w = self.style_w[name]
            parts["style"] += w * loss
            K *= dt.type(w)
            # dE/dF = F @ K, formed by backward band by band (vgg.ActivationTimes); a layer may
            # serve both content and style, then the content gradient rides along as plus.
            grads[name] = ActivationTimes(K, plus=grads.get(name))
        dx = self.net.backward(grads)
        scale = self.tv_scale.astype(dt)
        tv, dtv = tv_loss(x * scale)
        parts["tv"] = self.tv_w * tv
        dx += dtv * (scale * dt.type(self.tv_w))  # chain rule through x * scale
        self.parts = parts
        loss = parts["content"] + parts["style"] + parts["tv"]  # Gatys et al. 2016, eq. 7 (+ TV)
        return loss, dx.astype(np.float64).reshape(-1)


def _gram64(F, band_values=1 << 22):
    """gram_matrix(F) accumulated in float64, for the targets: a band of rows at a time, because a
    whole float64 copy of relu1_1 would be large (0.5 GB at 1024 px). F: (H, W, N) -> (N, N)."""
    N = F.shape[-1]
    rows = max(1, band_values // max(1, F.shape[1] * N))
    G = np.zeros((N, N), np.float64)
    for r0 in range(0, F.shape[0], rows):
        G += gram_matrix(F[r0:r0 + rows].astype(np.float64))
    return G


def _layer_sizes(shape, layers):
    """{name: (M, N)}: positions and channels of each layer for an input of shape (H, W, ...).

    Convolutions keep the size (3x3, padding 1); each 2x2 pooling halves it, rounding down.
    """
    channels = {int(n[4]): c_out for n, _, c_out in CONV_SPECS}  # block -> its width (all convs in a block agree)
    sizes = {}
    for name in layers:
        block = int(name[4])
        pools = block if name.startswith("pool") else block - 1  # poolings up to and including this layer
        sizes[name] = ((shape[0] // 2 ** pools) * (shape[1] // 2 ** pools), channels[block])
    return sizes


def make_objective(net, content, styles, config, shape=None):
    """The objective over the network-space image, ready for scipy L-BFGS-B with jac=True.

    net: a VGG19 (its dtype is the compute dtype). content: preprocessed (H, W, 3) or None
    for texture synthesis (then pass shape=(H, W, 3)). styles: [(preprocessed (H_s, W_s, 3),
    blend weight), ...]. config: a Config. Returns an Objective f with
    f(x_flat float64 of H*W*3) -> (loss float, grad float64 (H*W*3,)), and f.parts.

        loss = sum_c a_c * 1/2 sum (F_c - P_c)^2                      eq. 1, weighted
             + sum_l b_l * 1/(4 N_l^2 M_l^2) sum (G_l - A_l)^2         eq. 4, weighted
             + g * TV(x * tv_scale)

    with a_c = f.content_w[c], b_l = f.style_w[l], g = f.tv_w, tv_scale = f.tv_scale
    (per channel) and A_l = f.A[l]: see config.py for how they follow from alpha, beta, gamma.
    """
    return Objective(net, content, styles, config, shape=shape)


# ---------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------

class Interrupted(Exception):
    """Raised by stylize on Ctrl-C; .rgb is the best image so far (H, W, 3), .iteration how far it got."""

    def __init__(self, rgb, iteration):
        super().__init__(f"interrupted at iteration {iteration}")
        self.rgb = rgb
        self.iteration = iteration


class _Tracker:
    """Wraps an objective: remembers the lowest-loss point evaluated (for Ctrl-C and the result)."""

    def __init__(self, f):
        self.f = f
        self.best_loss = np.inf
        self.best_x = None
        self.last = (np.inf, {})

    def __call__(self, x):
        loss, grad = self.f(x)
        if not np.isfinite(loss):
            raise FloatingPointError("the loss became NaN or infinite")
        self.last = (loss, dict(self.f.parts))
        if loss < self.best_loss:
            if self.best_x is None or self.best_x.shape != np.shape(x):
                self.best_x = np.empty(np.shape(x), np.float64)
            np.copyto(self.best_x, x)   # reuse one array: stylize keeps no other reference to it
            self.best_loss = loss
        return loss, grad


def run_lbfgs(f, x0, lo, hi, iterations, on_iteration=None, memory=10):
    """scipy L-BFGS-B with box bounds lo <= x <= hi (flat float64 arrays); returns the final x.

    memory: correction pairs kept (maxcor). Each costs two float64 vectors of x's size, so at
    1024 px, 10 pairs are 0.5 GB; 20 pairs changed the loss after 200 iterations by 0.4%
    (256 px, random weights), not worth another 0.5 GB.
    on_iteration(i), if given, is called after each iteration.
    """
    count = [0]

    def step(_xk):
        count[0] += 1
        if on_iteration is not None:
            on_iteration(count[0])

    def scaled(x):
        loss, grad = f(x)
        grad *= scale   # in place: grad is the objective's fresh array
        return scale * loss, grad

    # One BLAS thread for L-BFGS-B's vector operations (SciPy's own OpenBLAS): on more, its
    # workers spin for ~0.1 s after every step, during our next evaluation (see threads.py).
    with blas_threads(1, every_library=True):
        # With no curvature known yet, L-BFGS-B's first trial step is x0 - grad. The normalised losses
        # (~1) have gradients of ~1e-5 per pixel, a step lost in float32 rounding, after which the line
        # search can give up. So minimise scale * f instead, with scale chosen so that the first step
        # moves the steepest pixel by one RGB level. Scaling f by a constant > 0 moves no minimum.
        level = float(np.min(hi - lo)) / 255.0  # one RGB level in network units
        g_max = float(np.max(np.abs(f(x0)[1])))
        scale = level / g_max if g_max > 0 else 1.0
        # ftol = gtol = 0 (factr, pgtol): run the full iteration budget rather than stopping on a flat
        # stretch; maxfun leaves room for line searches (about 1.1 evaluations per iteration in practice).
        # fmin_l_bfgs_b rather than minimize(): minimize turns Bounds into n Python tuples that live for
        # the whole run (0.35 GB at 1024 px); here the n pairs are a few shared tuples (see _bound_pairs).
        x, _, _ = fmin_l_bfgs_b(scaled, x0, bounds=_bound_pairs(lo, hi), m=int(memory), factr=0.0, pgtol=0.0,
                                maxiter=int(iterations), maxfun=2 * int(iterations) + 20, callback=step)
    return x


def _bound_pairs(lo, hi):
    """scipy's L-BFGS-B bounds, [(lo_i, hi_i)] for every i, as references to one tuple per distinct pair.

    lo, hi: (n,) float64. Pixel bounds take one value per channel, so the list costs 8 bytes per
    value instead of the ~120 of n separate tuples of floats.
    """
    lo_vals, lo_idx = np.unique(lo, return_inverse=True)
    hi_vals, hi_idx = np.unique(hi, return_inverse=True)
    codes, idx = np.unique(lo_idx * len(hi_vals) + hi_idx, return_inverse=True)   # one code per distinct pair
    pairs = [(float(lo_vals[c // len(hi_vals)]), float(hi_vals[c % len(hi_vals)])) for c in codes]
    return [pairs[i] for i in idx.ravel().tolist()]


def run_adam(f, x0, lo, hi, iterations, lr, on_iteration, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma & Ba 2015) with projection onto lo <= x <= hi. lr: per-element step sizes (flat)."""
    x = x0.copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for t in range(1, iterations + 1):
        _, g = f(x)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        x = np.clip(x - lr * m_hat / (np.sqrt(v_hat) + eps), lo, hi)
        on_iteration(t)
    f(x)  # score the final point too, so the tracker can return it


# ---------------------------------------------------------------------------
# The whole run: colour handling, coarse-to-fine scales, optimiser, bounds
# ---------------------------------------------------------------------------

@dataclass
class State:
    """What a stylize callback sees after each iteration."""
    scale: int            # 1-based index of the current scale
    n_scales: int         # number of scales in this run
    size: tuple           # (H, W) at the current scale
    iteration: int        # iteration within the current scale, 1-based
    iterations: int       # iterations per scale
    step: int             # iterations done so far over all scales
    loss: float           # total loss of the last evaluation
    parts: dict           # its content / style / tv terms
    work_done: float      # iterations weighted by pixels, for rates and ETAs
    work_total: float
    image: Callable       # image() -> the current RGB result (H, W, 3), colours as in the final output


def scale_sizes(shape, size, scales):
    """Longest-side-`size` (H, W) of each scale, coarse to fine, halving; scales too small to run are dropped."""
    out = []
    for k in range(scales - 1, -1, -1):
        hw = fit_size(shape, max(1, round(size / 2 ** k)))
        if min(hw) >= MIN_SIDE:
            out.append(hw)
    if not out:
        raise ValueError(f"--size {size} gives a {fit_size(shape, size)[1]}x{fit_size(shape, size)[0]} output; "
                         f"the network needs at least {MIN_SIDE} px per side")
    return out


def stylize(net, content_rgb, style_rgbs, config, callback=None, init_rgb=None, shape=None):
    """Style transfer (or texture synthesis when content_rgb is None); returns RGB float32 (H, W, 3) in 0..255.

    content_rgb: (H, W, 3) RGB 0..255, any size (resized so its longest side is config.size).
    style_rgbs: list of RGB images, blended with config.style_blend. init_rgb: the starting image
    when config.init is a path (already loaded). shape: (H, W) of a texture when content_rgb is None
    (default: the first style image's aspect). callback(State) after every iteration.
    Ctrl-C raises Interrupted carrying the best image so far.
    """
    config.validate()
    rng = np.random.default_rng(config.seed)
    blend = config.style_blend or (1.0,) * len(style_rgbs)
    if len(blend) != len(style_rgbs):
        raise ValueError(f"{len(style_rgbs)} style images but {len(blend)} style weights")
    if content_rgb is None:
        if config.init == "content":
            raise ValueError("texture synthesis (no content image) needs --init noise or an image")
        base_shape = shape or style_rgbs[0].shape[:2]
    else:
        base_shape = content_rgb.shape[:2]
    sizes = scale_sizes(base_shape, config.size, config.scales)

    luminance_only = config.preserve_colors == "luminance" and content_rgb is not None
    final_content = None if content_rgb is None else resize(content_rgb, sizes[-1])
    if config.preserve_colors == "histogram" and content_rgb is not None:
        style_rgbs = [transfer_colors(s, final_content) for s in style_rgbs]
    elif luminance_only:
        style_rgbs = [match_luminance(s, final_content) for s in style_rgbs]
        content_rgb = luminance(content_rgb)
        if init_rgb is not None:
            init_rgb = luminance(init_rgb)

    def finish(x, hw):
        """Network-space x of the current scale -> output RGB (colours restored in luminance mode)."""
        rgb = np.clip(net.deprocess(np.asarray(x, net.dtype).reshape(hw + (3,))), 0, 255).astype(np.float32)
        if luminance_only:
            rgb = with_luminance_of(rgb, resize(final_content, hw))
        return rgb

    lo3, hi3 = pixel_bounds(net)
    work = [h * w * config.iterations for h, w in sizes]
    step = 0
    x, x_hw, f = None, None, None   # the last finished scale's result; this scale's tracker
    try:
        for k, hw in enumerate(sizes):
            f = None  # until this scale's objective exists, Ctrl-C falls back to the previous result
            content_k = None if content_rgb is None else net.preprocess(resize(content_rgb, hw))
            styles_k = []
            for s, b in zip(style_rgbs, blend):
                shw = fit_size(s.shape, config.style_scale * max(hw))
                if min(shw) < MIN_SIDE:
                    raise ValueError(f"a style image would be {shw[1]}x{shw[0]} px at this scale, too small for the "
                                     f"network (at least {MIN_SIDE} px per side); raise --style-scale or --size")
                styles_k.append((net.preprocess(resize(s, shw)), b))
            f = _Tracker(make_objective(net, content_k, styles_k, config, shape=hw + (3,)))
            lo = np.broadcast_to(lo3, hw + (3,)).reshape(-1)
            hi = np.broadcast_to(hi3, hw + (3,)).reshape(-1)
            if x is not None:      # coarse-to-fine: upsample the previous scale's result (Gatys et al. 2017)
                prev = np.clip(net.deprocess(x.reshape(sizes[k - 1] + (3,)).astype(net.dtype)), 0, 255)
                x0 = net.preprocess(np.clip(resize(prev, hw, Image.BICUBIC), 0, 255))
            elif config.init == "content":
                x0 = content_k
            elif config.init == "noise":
                x0 = net.preprocess(rng.uniform(0.0, 255.0, hw + (3,)))
            else:
                if init_rgb is None:
                    raise ValueError(f"init {config.init!r}: no image given")
                x0 = net.preprocess(resize(init_rgb, hw))
            x0 = np.clip(np.asarray(x0, np.float64).reshape(-1), lo, hi)
            done_before = sum(work[:k])

            def on_iteration(i, hw=hw, f=f, done_before=done_before):
                nonlocal step
                step += 1
                if callback is not None:
                    loss, parts = f.last
                    callback(State(k + 1, len(sizes), hw, i, config.iterations, step, loss, parts,
                                   done_before + i * hw[0] * hw[1], float(sum(work)),
                                   lambda: finish(f.best_x, hw)))

            if config.optimizer == "lbfgs":
                run_lbfgs(f, x0, lo, hi, config.iterations, on_iteration, config.lbfgs_memory)
            else:
                lr = np.broadcast_to(config.learning_rate * net.preprocessing.pixel_step(), hw + (3,)).reshape(-1)
                run_adam(f, x0, lo, hi, config.iterations, lr, on_iteration)
            x, x_hw = f.best_x, hw
    except KeyboardInterrupt:
        # Ctrl-C: hand back the best point of this scale, else the previous scale's result,
        # at the output size; with nothing computed yet there is nothing to save.
        if f is not None and f.best_x is not None:
            x, x_hw = f.best_x, hw
        if x is None:
            raise
        rgb = finish(x, x_hw)
        if x_hw != sizes[-1]:
            rgb = np.clip(resize(rgb, sizes[-1], Image.BICUBIC), 0, 255)
        raise Interrupted(rgb, step) from None
    return finish(x, sizes[-1])


class Progress:
    """A stylize callback printing iteration, loss by part, it/s and ETA.

    On a terminal the line is refreshed in place (carriage return); otherwise
    (a log file, a pipe) plain lines are printed every `every` iterations and at
    the end of each scale.
    """

    def __init__(self, stream, every=None, clock=time.perf_counter):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every or (1 if self.tty else 10)
        self.clock = clock
        self.t_start = clock()
        self.scale_start = (1, self.t_start)  # (scale, time it began)
        self.width = 0
        self.last_time = self.t_start

    def __call__(self, st):
        now = self.clock()
        if st.scale != self.scale_start[0]:
            self.scale_start = (st.scale, self.last_time)
        self.last_time = now
        if st.iteration % self.every and st.iteration != st.iterations:
            return
        its = st.iteration / max(now - self.scale_start[1], 1e-9)
        rate = st.work_done / max(now - self.t_start, 1e-9)  # pixel-iterations per second over the run
        eta = (st.work_total - st.work_done) / max(rate, 1e-9)
        p = st.parts
        line = (f"scale {st.scale}/{st.n_scales} {st.size[1]}x{st.size[0]}  it {st.iteration}/{st.iterations}  "
                f"loss {st.loss:.4g} (content {p.get('content', 0):.3g}, style {p.get('style', 0):.3g}, "
                f"tv {p.get('tv', 0):.3g})  {its:.2f} it/s  ETA {_clock_time(eta)}")
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
            if st.iteration == st.iterations and st.scale == st.n_scales:
                self.stream.write("\n")
                self.width = 0
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        """End an in-place line (e.g. after Ctrl-C) so the next message starts on its own line."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def _clock_time(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
