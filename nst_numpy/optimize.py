"""The optimisers that minimise the objective (objective.py), and the whole stylize run.

    out = stylize(net, content_rgb, [style_rgb], Config(), callback=Progress(sys.stderr))

run_lbfgs (lbfgs.py: scipy's L-BFGS-B, plain or in per-pixel step sizes) and run_adam move the
network-space image (the output of net.preprocess) inside the box where every pixel stays in
0..255. stylize adds the colour modes, the coarse-to-fine scales, the restart with step sizes,
progress callbacks and Ctrl-C.
"""
import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .image import (MIN_SIDE, fit_size, luminance, match_luminance, resize, transfer_colors, upsample,
                    with_luminance_of)
from .lbfgs import run_lbfgs, step_scales
from .margin import Geometry
from .objective import make_objective, pixel_bounds


# ---------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------

class Interrupted(Exception):
    """Raised by stylize on Ctrl-C; .rgb is the best image so far (H, W, 3), .iteration how far it got."""

    def __init__(self, rgb, iteration):
        super().__init__(f"interrupted at iteration {iteration}")
        self.rgb = rgb
        self.iteration = iteration


class Converged(Exception):
    """Raised from an iteration callback to end the current scale early (the message says why)."""


class StoppingRule:
    """--min-improvement: a scale ends once its best loss fell by less than `min_improvement`
    (a fraction) per iteration, on average over the last `window` iterations.

    Why a window: one L-BFGS iteration can stall (a short line-search step) and the next
    recover, so a single iteration's change says little; 10 iterations average that out.
    The loss is compared relative to itself, so the rule means the same at every scale and
    for every weighting of the loss. 0 disables it.
    """

    def __init__(self, min_improvement, window=10):
        self.min_improvement = float(min_improvement)
        self.window = int(window)
        self.history = []   # best loss after each iteration

    def __call__(self, best_loss):
        """Record the best loss after an iteration; returns the reason to stop, or None."""
        self.history.append(best_loss)
        if self.min_improvement <= 0 or len(self.history) <= self.window:
            return None
        before = self.history[-1 - self.window]
        rate = (before - best_loss) / (self.window * max(abs(best_loss), 1e-30))   # per iteration
        if rate >= self.min_improvement:
            return None
        if rate <= 0:   # Adam's loss can rise: its best point stays behind, and nothing converged
            return f"no improvement: the best loss has not fallen in the last {self.window} iterations"
        return (f"converged: over the last {self.window} iterations the loss fell {100 * rate:.3g}% of its current "
                f"value per iteration (below --min-improvement {100 * self.min_improvement:.3g}%)")


class _Tracker:
    """Wraps an objective: remembers the lowest-loss point evaluated (for Ctrl-C and the result)."""

    def __init__(self, f):
        self.f = f
        self.best_loss = np.inf
        self.best_x = None
        self.last = (np.inf, {})

    def __call__(self, x):
        """x: (n,) float64 -> f(x) = (loss, grad (n,)); remembers the best point seen."""
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


def run_adam(f, x0, lo, hi, iterations, lr, on_iteration, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (Kingma & Ba 2015) with projection onto lo <= x <= hi.

    x0: flat float64 image (H*W*3,); lo, hi, lr: per channel, (3,) (bounds and step sizes).
    x0 is not modified and nothing is returned: f must be a _Tracker, whose best_x is the result.
    The working arrays x, m, v are updated in place, one temporary at a time: at 8K an image-sized
    float64 array is 0.8 GB.
    """
    x = x0.copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    _, g = f(x)                          # fresh array: ours to overwrite
    for t in range(1, iterations + 1):
        m *= beta1
        m += (1 - beta1) * g             # m = b1 m + (1 - b1) g
        g *= g
        v *= beta2
        v += (1 - beta2) * g             # v = b2 v + (1 - b2) g^2
        step = g                         # reuse g's memory: step = lr m_hat / (sqrt(v_hat) + eps)
        np.divide(v, 1 - beta2 ** t, out=step)
        np.sqrt(step, out=step)
        step += eps
        np.divide(m, step, out=step)
        step.reshape(-1, 3)[...] *= lr / (1 - beta1 ** t)
        x -= step
        np.clip(x.reshape(-1, 3), lo, hi, out=x.reshape(-1, 3))
        _, g = f(x)   # score the new point before reporting iteration t: its loss is the one shown
        on_iteration(t)


# ---------------------------------------------------------------------------
# The whole run: colour handling, coarse-to-fine scales, optimiser, bounds
# ---------------------------------------------------------------------------

@dataclass
class State:
    """What a stylize callback sees after each iteration (and once more when a scale ends early)."""
    scale: int            # 1-based index of the current scale
    n_scales: int         # number of scales in this run
    size: tuple           # (H, W) at the current scale
    iteration: int        # iteration within the current scale, 1-based (0 if L-BFGS-B could take no step)
    iterations: int       # the most iterations this scale may run (Config.iterations or coarse_iterations)
    step: int             # iterations done so far over all scales
    loss: float           # total loss of the last evaluation
    parts: dict           # its content / style / tv terms
    work_done: float      # iterations weighted by pixels, for rates and ETAs
    work_total: float     # the same for the whole schedule: shrinks when a scale ends early
    image: Callable       # image() -> the current RGB result (H, W, 3), colours as in the final output
    stopped: str = ""     # set on the extra call made when this scale ends early: why it ended
    may_stop_early: bool = False   # --min-improvement is on, so work_total is an upper bound


def iteration_budgets(config, n_scales):
    """Most iterations per scale, coarse to fine: coarse_iterations each, then iterations at the output size."""
    return [config.coarse_iterations] * (n_scales - 1) + [config.iterations]


AUTO_COARSEST = 512   # automatic scales: halve the output size while the coarsest scale stays >= this


def auto_scales(size):
    """Config.scales None: 1 scale below 1024 px, then one more per doubling (the coarsest is 512..1023 px).

    Why not coarse to fine everywhere: with the default loss it does not pay below 1024 px. At 320
    and 512 px a coarse start ends in a basin whose full-size loss is higher (mostly the content
    term) and saves no full-size iterations, so one scale reaches every loss sooner (README, "Time
    to a result"). Above that the coarse scales stay, for what Gatys et al. 2017 use them for: the
    deepest layer's receptive field (84 px for relu4_2) covers less and less of a large picture,
    and a coarse scale lays out the large structures. At 1024 px (one pair, plain L-BFGS-B) it cost
    0.40x the time of a 300-iteration run against 0.31x for one scale, for the same loss: kept for
    larger pictures.
    """
    n = 1
    while size / 2 ** n >= AUTO_COARSEST:
        n += 1
    return n


def scale_sizes(shape, size, scales):
    """Longest-side-`size` (H, W) of each scale, coarse to fine, halving; scales too small to run are dropped.

    scales: how many, or None for auto_scales(size).
    """
    scales = auto_scales(size) if scales is None else scales
    out = []
    # Halving more than bit_length times reaches 0 px: those scales would all be dropped, so a huge
    # --scales costs no more than a loop over the sides that exist.
    for k in range(min(scales, int(size).bit_length() + 1) - 1, -1, -1):
        hw = fit_size(shape, max(1, round(size / 2 ** k)))
        if min(hw) >= MIN_SIDE:
            out.append(hw)
    if not out:
        raise ValueError(f"--size {size} gives a {fit_size(shape, size)[1]}x{fit_size(shape, size)[0]} output; "
                         f"the network needs at least {MIN_SIDE} px per side")
    return out


def stylize(net, content_rgb, style_rgbs, config, callback=None, init_rgb=None, shape=None, plans=None,
            checkpoint=None):
    """Style transfer (or texture synthesis when content_rgb is None); returns RGB float32 (H, W, 3) in 0..255.

    net: a VGG19 or FastVGG19. content_rgb: (H, W, 3) RGB 0..255, any size (resized so its
    longest side is config.size). style_rgbs: list of RGB images, blended with
    config.style_blend. init_rgb: the starting image when config.init is a path (already
    loaded). shape: (H, W) of a texture when content_rgb is None (default: the first style
    image's aspect). callback(State) after every iteration; if it has a method tile(done, total),
    that is called after each tile of a tiled evaluation. plans: memory_plan.ScalePlan per scale
    (tiles and L-BFGS memory; None: config.tile_size, else automatic, see _auto_plans).
    checkpoint: a checkpoint.Checkpointer, to save resume points and to resume from one.
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
    geometry = Geometry(base_shape, config)   # with --margin, a canvas wider than the picture (margin.py)
    sizes = geometry.sizes
    colours = _Colours(config.preserve_colors, content_rgb, geometry.out_hw)   # the picture's colours, no margin
    content_rgb, init_rgb = geometry.widen(content_rgb), geometry.widen(init_rgb)
    content_rgb, style_rgbs, init_rgb = colours.inputs(content_rgb, style_rgbs, init_rgb)

    def finish(x, hw):
        """Network-space x of the current scale (a canvas of hw) -> output RGB: the margin cropped off,
        then the colours restored in luminance mode."""
        return colours.restore(geometry.crop(np.clip(net.deprocess(np.asarray(x, net.dtype).reshape(hw + (3,))),
                                                     0, 255).astype(np.float32)))

    lo3, hi3 = pixel_bounds(net)
    budgets = iteration_budgets(config, len(sizes))
    work = [h * w * n for (h, w), n in zip(sizes, budgets)]   # the schedule's work, in pixel-iterations
    step = 0
    x, x_hw, f = None, None, None   # the last finished scale's result; this scale's tracker
    plans = plans or _auto_plans(net, geometry, [s for s, w in zip(style_rgbs, blend) if w > 0], config)
    point = _resume_point(checkpoint, sizes)   # {} for a fresh run
    if point:
        step, work = point["step"], point["work"]
        if point["iteration"] == 0:   # saved between scales: x is the previous scale's result
            x, x_hw = checkpoint.resume[1]["x"], sizes[point["scale"] - 1]
    try:
        for k, hw in enumerate(sizes):
            if k < point.get("scale", 0):
                continue
            f = None  # until this scale's objective exists, Ctrl-C falls back to the previous result
            content_k = None if content_rgb is None else net.preprocess(resize(content_rgb, hw))
            styles_k = _styles_at(net, style_rgbs, blend, geometry.style_side(k))
            tile = plans[k].tile if plans else config.tile_size
            f = _Tracker(make_objective(net, content_k, styles_k, config, shape=hw + (3,), tile_size=tile))
            if hasattr(f.f, "on_tile") and hasattr(callback, "tile"):
                f.f.on_tile = callback.tile
            # Flat bounds for L-BFGS-B (16 bytes per value); Adam takes them per channel.
            lo, hi = (np.broadcast_to(b, hw + (3,)).reshape(-1) if config.optimizer == "lbfgs" else b
                      for b in (lo3, hi3))
            if x is not None:      # coarse-to-fine: upsample the previous scale's result (Gatys et al. 2017)
                prev = np.clip(net.deprocess(x.reshape(sizes[k - 1] + (3,)).astype(net.dtype)), 0, 255)
                x0 = net.preprocess(upsample(prev, hw))
            else:
                x0 = _first_point(net, config.init, content_k, init_rgb, hw, rng)
            x0 = np.clip(np.asarray(x0, np.float64).reshape(-1, 3), lo3, hi3).reshape(-1)
            rule = StoppingRule(config.min_improvement)
            done = 0   # iterations of this scale so far
            if point.get("scale") == k and point["iteration"] > 0:   # resume inside this scale
                x0, done, rule.history = checkpoint.resume[1]["x"], point["iteration"], list(point["rule"])
                f.best_x, f.best_loss = x0.copy(), point["best_loss"]

            def on_iteration(i, k=k, hw=hw, f=f, rule=rule, ended=None):
                """After iteration i of this scale: report it, and end the scale if the stopping rule
                says so. ended: the optimiser itself stopped after iteration i (reported, not counted again)."""
                nonlocal step
                if ended is None:
                    step += 1
                reason = ended or rule(f.best_loss)
                if reason is not None:
                    work[k] = hw[0] * hw[1] * i   # the rest of this scale's budget will not run
                if callback is not None:
                    loss, parts = f.last
                    state = State(k + 1, len(sizes), hw, i, budgets[k], step, loss, parts,
                                  sum(work[:k]) + i * hw[0] * hw[1], float(sum(work)),
                                  lambda: finish(f.best_x, hw), may_stop_early=rule.min_improvement > 0)
                    if ended is None:
                        callback(state)
                    if reason is not None:   # the loss of the picture the scale hands on, not of the last point
                        callback(dataclasses.replace(state, stopped=reason, loss=f.best_loss))
                if reason is not None:
                    raise Converged(reason)

            m = plans[k].lbfgs_memory if plans else config.correction_pairs()
            every = checkpoint.every if checkpoint is not None else budgets[k]

            def save(k, done, x, rule, best_loss):
                checkpoint.save(dict(scale=k, iteration=done, step=step, work=[float(v) for v in work],
                                     rule=[float(v) for v in rule.history], best_loss=float(best_loss),
                                     sizes=[list(s) for s in sizes]), x)

            # iteration of L-BFGS-B's restart with step sizes (Adam has none)
            after = (config.restart_with_step_sizes_at() if config.optimizer == "lbfgs" else 0) or budgets[k]

            try:
                # With checkpoints, the optimiser restarts from the best point every `every`
                # iterations, interrupted or not, so that a resumed run is the same run (checkpoint.py).
                # L-BFGS-B also restarts once at `after`, from then on with per-value step sizes
                # taken afresh at every restart from the gradient there (lbfgs.step_scales).
                while done < budgets[k]:
                    n = min(every, budgets[k] - done, after - done if done < after else budgets[k])
                    seg = (lambda i, done=done: on_iteration(done + i))
                    if config.optimizer == "lbfgs":
                        step_sizes = (lambda g, hw=hw: step_scales(g, hw)) if done >= after else None
                        info = {}
                        run_lbfgs(f, x0, lo, hi, n, seg, m, step_sizes=step_sizes, info=info)
                        # scipy may end a segment early: out of evaluations, or no step it finds lowers
                        # the loss. Then it restarts from the best point with a fresh memory, which often
                        # goes on; a fresh start that cannot take one step ends the scale (and the loop).
                        n = info["iterations"]
                        if n == 0:
                            on_iteration(done, ended=f"L-BFGS-B found no step that lowers the loss ({info['task']})")
                    else:
                        run_adam(f, x0, lo3, hi3, n, config.learning_rate * net.preprocessing.pixel_step(), seg)
                    done += n
                    x0 = f.best_x.copy()
                    if checkpoint is not None and done < budgets[k]:
                        save(k, done, f.best_x, rule, f.best_loss)
            except Converged:
                pass   # f.best_x is this scale's result, as after a full budget
            x, x_hw = f.best_x, hw
            if checkpoint is not None and k + 1 < len(sizes):
                save(k + 1, 0, x, StoppingRule(0), np.inf)
        return finish(x, sizes[-1])   # in the try: a Ctrl-C while the result is made still hands it back
    except KeyboardInterrupt:
        # Ctrl-C: hand back the best point of this scale, else the previous scale's result,
        # at the output size; with nothing computed yet there is nothing to save.
        if f is not None and f.best_x is not None:
            x, x_hw = f.best_x, hw
        if x is None:
            raise
        rgb = finish(x, x_hw)
        raise Interrupted(rgb if x_hw == sizes[-1] else upsample(rgb, geometry.out_hw), step) from None


def _auto_plans(net, geometry, style_rgbs, config):
    """Config.tile_size None means automatic: memory_plan.needs_plan says whether this run is large
    enough to plan against the default memory cap (untiled if that fits, else tiles).
    geometry: margin.Geometry (the canvas sizes); style_rgbs: the style images that run (a style
    weighted 0 never does)."""
    from .memory_plan import needs_plan, plan_run
    style_hws = geometry.style_hws([s.shape for s in style_rgbs])
    if not needs_plan(geometry.sizes, config, style_hws[-1]):
        return None
    return plan_run(net, geometry.sizes, style_hws, config)


def _resume_point(checkpoint, sizes):
    """The saved counters to resume from ({} for a fresh run), checked against this run's scales."""
    if checkpoint is None or checkpoint.resume is None:
        return {}
    from .checkpoint import CheckpointError
    point = checkpoint.resume[0].get("point", {})
    if [tuple(s) for s in point.get("sizes", [])] != [tuple(s) for s in sizes]:
        raise CheckpointError("the checkpoint was made for other image sizes (was --size or an input changed?)")
    if point:   # scale k is 0-based; iteration 0 means "between scales", x then being scale k - 1's result
        k, between = point["scale"], point["iteration"] == 0
        if not (between <= k < len(sizes) and len(point["work"]) == len(sizes)):
            raise CheckpointError(f"damaged checkpoint (scale {k} of {len(sizes)})")
        h, w = sizes[k - 1] if between else sizes[k]
        if checkpoint.resume[1]["x"].size != h * w * 3:
            raise CheckpointError(f"damaged checkpoint (its image is not {w}x{h})")
    return point


class _Colours:
    """--preserve-colors: recolour the inputs before the run, and restore the content's colours after.

    "histogram": each style image takes the content's colour statistics (image.transfer_colors).
    "luminance": the transfer runs on luminance only (Gatys et al. 2016b); the output gets the
    content's colours back at the end.
    """

    def __init__(self, mode, content_rgb, out_hw):
        self.mode = mode if content_rgb is not None else "none"
        self.content = None if content_rgb is None else resize(content_rgb, out_hw)   # at the output size

    def inputs(self, content_rgb, style_rgbs, init_rgb):
        """(content, styles, init) as the optimisation should see them."""
        if self.mode == "histogram":
            return content_rgb, [transfer_colors(s, self.content) for s in style_rgbs], init_rgb
        if self.mode == "luminance":
            return (luminance(content_rgb), [match_luminance(s, self.content) for s in style_rgbs],
                    None if init_rgb is None else luminance(init_rgb))
        return content_rgb, style_rgbs, init_rgb

    def restore(self, rgb):
        """An RGB result (H, W, 3) at any scale -> with the content's colours in luminance mode."""
        if self.mode != "luminance":
            return rgb
        return with_luminance_of(rgb, resize(self.content, rgb.shape[:2]))


def _styles_at(net, style_rgbs, blend, side):
    """[(preprocessed style image with longest side `side`, blend weight)] for one scale; a style
    weighted 0 is left out (make_objective would not run it anyway), whatever its size."""
    return [(net.preprocess(resize(s, _style_hw(s.shape, side))), b) for s, b in zip(style_rgbs, blend) if b > 0]


def _style_hw(shape, side):
    """(H, W) of a style image of `shape` with longest side `side`; ValueError if the network cannot take it."""
    shw = fit_size(shape, side)
    if min(shw) < MIN_SIDE:
        raise ValueError(f"a style image would be {shw[1]}x{shw[0]} px at this scale, too small for the "
                         f"network (at least {MIN_SIDE} px per side); raise --style-scale or --size")
    return shw


def check_style_sizes(style_shapes, sizes, style_scale):
    """ValueError before a run (or a --dry-run) if a style image would be too small at some scale."""
    for hw in sizes:
        for shape in style_shapes:
            _style_hw(shape, style_scale * max(hw))


def _first_point(net, init, content_k, init_rgb, hw, rng):
    """The starting image of the first scale, network space (hw + (3,)): Config.init's choice."""
    if init == "content":
        return content_k
    if init == "noise":
        return net.preprocess(rng.uniform(0.0, 255.0, hw + (3,)))
    if init_rgb is None:
        raise ValueError(f"init {init!r}: no image given")
    return net.preprocess(resize(init_rgb, hw))
