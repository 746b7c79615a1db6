"""The plan of a run before it starts: sizes per scale, tiles, peak memory, seconds per iteration.

    plans = plan_run(net, scale_hws, style_hws_per_scale, config, cap)   # one ScalePlan per scale
    print(describe(plans, iteration_budgets(config, len(plans)), cap))   # what --dry-run prints

Peak memory is modelled as the sum of
- what the process holds before the run (interpreter, weights), measured now, plus the
  engine's transformed kernels if it has not made them yet;
- one window's network memory: measured, not guessed, by running forward and backward on
  two small windows under tracemalloc (numpy reports its arrays to it) and fitting
  bytes = a * pixels + b; buffers scale with pixels, so the line extrapolates;
- image-sized arrays, per value of the image (n = 3 H W): the optimiser's state (scipy's
  L-BFGS-B keeps (2m + 5) n float64 in its work array alone), the objective's copies and
  the content targets; counted from the code below and in optimize.py, objective.py.
Before the optimiser starts, each style image goes through the network (whole, or in windows of
the run's tile when it is tiled), so the peak is the larger of that phase (the process, the style
images, the content targets, one forward pass on the largest style window, measured like a window's
but with no backward pass) and the optimisation's sum above. The forward fit is probed at 384 and
512 px (WindowCost.FORWARD_PROBE_SIDES; the numbers are there).

Tiling (tiling.py) trades time for memory: the plan takes the whole image in one window
when that fits the cap, else the largest tile of at least EFFICIENT_TILE px that fits, else a
lower L-BFGS memory m (down to MIN_LBFGS_MEMORY) with such tiles, and only then smaller tiles
(plan_scale). If even that does not fit, it says so and what would (Adam, or a larger cap).
"""
import math
import os
import re
import time
import tracemalloc
from dataclasses import dataclass, replace

import numpy as np

from .tiling import ALIGN, halo_for, plan_tiles

MIN_LBFGS_MEMORY = 3
TILE_SIDES = (2048, 1536, 1024, 768, 640, 512, 384, 256, 192, 128)   # tried largest first
EFFICIENT_TILE = 512  # see plan_scale
HEADROOM = 1.1          # on the modelled sum: allocator slack and BLAS/thread buffers
SAFE_SHARE = 0.8      # the default cap: this share of the memory available when the run starts

# Bytes per image value (n = 3 H W) besides the optimiser, counted from the code:
# objective call: x float32 4, dx float32 4 and its float64 copy 8 (objective.py; TV is banded);
# stylize: x0 8, best x 8 (optimize.py); images: content RGB at the output size, its
# preprocessed copy, the colour mode's copy and a resize temporary, 4 x 4.
OBJECTIVE_BYTES = 4 + 4 + 8 + 8 + 8 + 16
# scipy's fmin_l_bfgs_b besides its work array: x, g and its upcast copy, the function
# wrapper's copies of x and g, bounds l and u, nbd int32, iwa 3 int32, our bounds list 8,
# stylize's flat bounds lo and hi 16, and lbfgs.run_lbfgs's step sizes D and x = D z 16.
LBFGS_EXTRA_BYTES = 8 * 3 + 8 * 2 + 16 + 4 + 12 + 8 + 16 + 16
ADAM_BYTES = 8 * 5    # x, m, v, the gradient (reused for the step), one temporary (optimize.run_adam)


def parse_size(text):
    """'8G', '512M', '2.5g', '1000000' -> bytes (powers of 1024). ValueError on anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"memory size {text!r} not understood; use e.g. 8G, 512M")
    value = float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ")
    if not math.isfinite(value):
        raise ValueError(f"memory size {text!r} is too large")
    if value < 1:
        raise ValueError(f"memory size {text!r} must be positive")
    return int(value)


def _proc_kb(path, key):
    """The value of `key:` (in kB) in a /proc file such as /proc/meminfo, in bytes; None if absent."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_memory():
    """Bytes the kernel could give this process now without swapping (MemAvailable), else physical
    memory; in a container with a memory limit (cgroup), at most what the limit leaves."""
    avail = _proc_kb("/proc/meminfo", "MemAvailable")
    if avail is None:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            avail = 8 << 30
    room = cgroup_room()
    return avail if room is None else min(avail, room)


# cgroup v2, then v1: (limit file, usage file, stat file, its reclaimable-cache key). A container
# sees the host's MemAvailable, but the kernel kills it at its own limit.
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
                 "inactive_file"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                 "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"))


def cgroup_room(files=CGROUP_FILES):
    """Bytes this process's memory cgroup still allows, or None without a limit: its limit less its
    usage, where usage leaves out inactive file cache, which the kernel reclaims before it kills
    (as docker's and the kubelet's figures do)."""
    for limit_file, usage_file, stat_file, cache_key in files:
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:   # v1 says "no limit" with a huge number
            return None
        return max(int(limit) - usage + _stat_value(stat_file, cache_key), 0)
    return None


def _stat_value(path, key):
    """The number after `key` in a cgroup memory.stat file, or 0."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def default_cap():
    """The --max-memory default: SAFE_SHARE of the memory available, plus what this process already holds."""
    return int(SAFE_SHARE * available_memory()) + current_rss()


def current_rss():
    """This process's resident memory now, in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss():
    """This process's peak resident memory in bytes (VmHWM; unlike getrusage's ru_maxrss, not
    inherited from the parent across fork and exec), or 0 where /proc is missing."""
    return _proc_kb("/proc/self/status", "VmHWM") or 0


def gib(n):
    return f"{n / 2 ** 30:.2f} GiB"


def over(need, cap):
    """'N GiB, over the memory cap C GiB', in MiB when GiB would print the two as equal or the cap as
    0.00 GiB, and the cap in KiB below 1 MiB (--max-memory 1K)."""
    a, b = gib(need), gib(cap)
    if a == b or b == gib(0):
        a, b = f"{need / 2 ** 20:.0f} MiB", f"{cap / 2 ** 20:.0f} MiB" if cap >= 2 ** 20 else f"{cap / 2 ** 10:.0f} KiB"
    return f"{a}, over the memory cap {b}"


class WindowCost:
    """Network memory and time of one tile's work (tiling.tile_gradient), by measurement.

    bytes(h, w) = a h w + b from traced peaks at two probe sides; the probes also make the
    engine's kernels, so those are in the process's RSS from then on. forward_bytes(h, w), the
    same fit for a forward pass alone (the style images' Gram matrices), is measured alike.
    """

    PROBE_SIDES = (96, 160)
    # A forward pass alone is probed larger, once each, as a style image's pass runs (a fresh arena):
    # at 96 and 160 px its fixed buffers dominate, and the line through them gave 1.7 KB/px, where a
    # fresh process grew by 0.75 KB/px for a 1600x1000 pass and 0.71 for 3840x2400; the line through
    # 384 and 512 px gives 0.72 and 0.67 there, which the plan's 10% headroom covers.
    FORWARD_PROBE_SIDES = (384, 512)

    def __init__(self, net, content_layers, style_layers):
        self.net = net
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        rng = np.random.default_rng(0)
        probes = [net.preprocess(rng.uniform(0, 255, (side, side, 3))) for side in (32,) + self.PROBE_SIDES]
        self._peak(probes[0], True)   # a warm-up that makes the kernels
        self.a, self.b = self._fit([self._peak(x, True) for x in probes[1:]])
        forward = [net.preprocess(rng.uniform(0, 255, (side, side, 3))) for side in self.FORWARD_PROBE_SIDES]
        self.a_forward, self.b_forward = self._fit([self._peak(x, False, runs=1) for x in forward],
                                                   self.FORWARD_PROBE_SIDES)
        # The 512 px probe's arena (~200 MB with VGG19) would otherwise be in the RSS plan_run reads as
        # the process before the run, and the run makes its own.
        net.release_buffers()

    def _peak(self, x, backward, runs=2):
        """Traced peak bytes of _work on window x, run `runs` times after the buffers are released (twice:
        the first plans the engine's arena, the second uses it, as an evaluation does)."""
        # The last probe's buffers go first. Under a caller's tracing session they are traced,
        # and freeing them during this probe would hide as many bytes of its peak (measured:
        # a = 5 bytes/px instead of 1331). Under our own session they are untraced either way.
        self.net.release_buffers()
        ours = not tracemalloc.is_tracing()   # a caller's own tracing session is left running
        if ours:
            tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in range(runs):
                self._work(x, backward)
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            if ours:
                tracemalloc.stop()

    def _fit(self, peaks, sides=PROBE_SIDES):
        """(a, b) of the line a * pixels + b through the peaks at two probe sides, both >= 0."""
        (p1, p2), (s1, s2) = peaks, sides
        a = max(0.0, (p2 - p1) / (s2 * s2 - s1 * s1))
        return a, max(0.0, p1 - a * s1 * s1)

    def _work(self, x, backward):
        """Pass 1 (backward False) or pass 2 of tiling.py on the window x, with zero targets."""
        from .objective import _layer_sizes
        from .tiling import Tile, stride_of, tile_grams, tile_gradient
        h, w = x.shape[:2]
        tile = Tile((0, h, 0, w), (0, h, 0, w))
        if not backward:
            return tile_grams(self.net, x, tile, self.style_layers, self.layers)
        sizes = _layer_sizes(x.shape, self.layers)
        content = {n: (np.zeros((h // stride_of(n), w // stride_of(n), sizes[n][1]), self.net.dtype), 1.0)
                   for n in self.content_layers}
        K = {n: np.zeros((sizes[n][1],) * 2, self.net.dtype) for n in self.style_layers}
        return tile_gradient(self.net, x, tile, self.layers, K, content)

    def bytes(self, h, w):
        """Peak bytes of one window's work, h x w px."""
        return self.a * h * w + self.b

    def forward_bytes(self, h, w):
        """Peak bytes of a forward pass and Gram matrices alone on an h x w image (a style image's targets).
        The line through the large probes has an intercept of ~90 MB that a small image does not reach;
        and a forward pass never needs more than a window's forward and backward (bytes)."""
        return min(self.a_forward * h * w + self.b_forward, self.bytes(h, w))

    def seconds(self, h, w, tiled):
        """Seconds of one evaluation's network work on an h x w window (tiled: both passes), timed
        on a window of at most 512 x 512 px and scaled by pixels (the work is linear in them)."""
        hh, ww = min(h, 512), min(w, 512)
        x = self.net.preprocess(np.random.default_rng(1).uniform(0, 255, (hh, ww, 3)))
        best = math.inf
        for _ in range(2):   # the first plans the arena
            t0 = time.perf_counter()
            if tiled:
                self._work(x, backward=False)
            self._work(x, backward=True)
            best = min(best, time.perf_counter() - t0)
        return best * (h * w) / (hh * ww)


@dataclass
class ScalePlan:
    """How one scale of a run will go."""
    hw: tuple               # (H, W) of this scale
    tile: int               # side of a tile's core in px, or 0 for one window (untiled)
    tiles: int              # windows per pass (1 untiled)
    window: tuple           # (h, w) of each window
    optimizer: str          # "lbfgs" or "adam"
    lbfgs_memory: int       # m (L-BFGS only)
    parts: dict             # {what: bytes} of the peak estimate, while optimising
    style_parts: dict = None  # {what: bytes} while the style images' targets are computed (before)
    seconds_per_iteration: float = None   # when timed
    setup_seconds: float = 0.0            # the optimiser's start, once per scale (when timed)

    @property
    def peak(self):
        return int(HEADROOM * sum(self.peak_parts.values()))

    @property
    def peak_parts(self):
        """The parts of the larger phase: optimising, or (a big style image) computing the style targets."""
        if self.style_parts and sum(self.style_parts.values()) > sum(self.parts.values()):
            return self.style_parts
        return self.parts


def optimizer_bytes(n, optimizer, m):
    """Bytes of the optimiser's state and copies for n image values."""
    if optimizer == "adam":
        return ADAM_BYTES * n
    return (8 * (2 * m + 5) + LBFGS_EXTRA_BYTES) * n + 8 * (11 * m * m + 8 * m)


def estimate(cost, hw, style_hws, config, tile, m, base):
    """ScalePlan for an (H, W) scale with tile core `tile` (0: untiled) and L-BFGS memory m."""
    from .objective import _layer_sizes
    from .tiling import stride_of
    H, W = hw
    n = 3 * H * W
    window, count = _windows(hw, tile, cost.layers)
    targets = sum(_layer_sizes(hw, [c])[c][1] * (H // stride_of(c)) * (W // stride_of(c)) * 4
                  for c in cost.content_layers)
    styles = sum(3 * 4 * 3 * h * w for h, w in style_hws)   # RGB, resized and preprocessed copies, float32
    parts = {"process before the run": base, "network on one window": cost.bytes(*window),
             "optimiser": optimizer_bytes(n, config.optimizer, m), "image-sized arrays": OBJECTIVE_BYTES * n,
             "content targets": targets, "style images": styles}
    if tile:
        parts["image-sized arrays"] -= 4 * n    # tiled_objective sums dx in float64: no float32 copy
    # Before the optimiser starts, the style images go through the network one at a time, after the
    # content targets are made (Objective.__init__): whole, or tiled like the content (TiledObjective._grams).
    style_parts, big = None, _style_pass(cost, style_hws, tile)
    if big:
        (h, w), (sh, sw) = big
        what = "the" if (h, w) == (sh, sw) else f"a {w}x{h} window of the"
        style_parts = {"process before the run": base, "style images": styles, "content targets": targets,
                       f"network on {what} {sw}x{sh} style image": cost.forward_bytes(h, w)}
    return ScalePlan(tuple(hw), tile, count, tuple(window), config.optimizer, m, parts, style_parts)


def _windows(hw, tile, layers):
    """((h, w) of each window, how many) for an image of hw with tile cores of `tile` px (0: one, whole)."""
    if not tile:
        return tuple(hw), 1
    tiles = plan_tiles(hw, tile, layers)
    a0, a1, b0, b1 = tiles[0].window   # every window of a plan has one shape
    return (a1 - a0, b1 - b0), len(tiles)


def _style_pass(cost, style_hws, tile):
    """(window, image) (H, W) of the style image with the largest window (TiledObjective tiles it by its
    style layers), or None for none."""
    passes = [(_windows(s, tile, cost.style_layers)[0], tuple(s)) for s in style_hws]
    return max(passes, key=lambda p: p[0][0] * p[0][1], default=None)


def plan_scale(cost, hw, style_hws, config, cap, base):
    """The ScalePlan that fits `cap` bytes: untiled if it fits, else the largest tile that does, lowering
    L-BFGS's m before tiles go under EFFICIENT_TILE px. Raises MemoryError (one line) if nothing fits."""
    halo = halo_for(cost.layers)
    if config.tile_size:
        sides = [config.tile_size]
    else:   # a style image larger than the output is tiled too: a tile may be worth it for it alone
        sides = [0] + [t for t in TILE_SIDES if t < max(max(s) for s in [hw] + list(style_hws))]
    most = config.correction_pairs()
    # The m values to try, from the asked one down to MIN_LBFGS_MEMORY (Adam has none; an asked m
    # below MIN_LBFGS_MEMORY is tried as it is).
    ms = [most] if config.optimizer == "adam" or most <= MIN_LBFGS_MEMORY else range(most, MIN_LBFGS_MEMORY - 1, -1)
    # Windows of cores under EFFICIENT_TILE px spend most of their time on the halo, so a smaller
    # L-BFGS memory is tried with large tiles before small tiles are tried at all.
    order = ([(m, t) for m in ms for t in sides if t == 0 or t >= EFFICIENT_TILE] +
             [(m, t) for m in ms for t in sides if 0 < t < EFFICIENT_TILE])
    for m, t in order:
        p = estimate(cost, hw, style_hws, config, t, m, base)
        if p.peak <= cap:
            return p
    m_least = ms[-1] if config.optimizer == "lbfgs" else 0
    t = config.tile_size or sides[-1]
    smallest = estimate(cost, hw, style_hws, config, t, m_least, base)
    # Blame the style images only if the run would fit without them (their copies and their pass): else
    # a smaller --style-scale cannot make it fit.
    if int(HEADROOM * (sum(smallest.parts.values()) - smallest.parts["style images"])) <= cap:
        sh, sw = _style_pass(cost, style_hws, t)[1]
        how = f"its Gram matrices in tiles of {t} px" if t else "style images are not tiled"
        raise MemoryError(f"the {sw}x{sh} style image needs about {over(smallest.peak, cap)} ({how}); "
                          f"lower --style-scale")
    if config.tile_size:
        fix = ("use a smaller --tile-size or none (automatic)" if config.tile_size > ALIGN
               else "raise --max-memory or lower --size")
        raise MemoryError(f"at {hw[1]}x{hw[0]} with --tile-size {config.tile_size} the run needs about "
                          f"{over(smallest.peak, cap)}; {fix}")
    adam = estimate(cost, hw, style_hws, replace(config, optimizer="adam"), sides[-1], 0, base)
    hint = (f"; --optimizer adam needs about {gib(adam.peak)}" if config.optimizer == "lbfgs" else "")
    with_m = f"L-BFGS with --lbfgs-memory {ms[-1]}, " if config.optimizer == "lbfgs" else ""
    tiles = f"tiles of {sides[-1]} px, halo {halo} px" if sides[-1] else "untiled: too small for tiles"
    raise MemoryError(f"a {hw[1]}x{hw[0]} run needs at least {over(smallest.peak, cap)} ({with_m}{tiles}){hint}")


AUTO_PLAN_PIXELS = 1024 * 1024   # untiled runs up to this output size fit in a few GB (measured: 2.9 GB at 1024²)


def needs_plan(sizes, config, style_hws=()):
    """Whether a run with tile_size None must be planned: its output or a style image (style_hws: their
    (H, W) at the output size) is over AUTO_PLAN_PIXELS, or this machine has under 8 GB available.
    Smaller runs go untiled and skip the plan's probes."""
    if config.tile_size is not None:
        return False
    H, W = sizes[-1]
    pixels = max([H * W] + [h * w for h, w in style_hws])
    return pixels > AUTO_PLAN_PIXELS or available_memory() < 8 << 30


def plan_run(net, scale_hws, style_hws_per_scale, config, cap=None, timed=False):
    """[ScalePlan] for each scale (coarse to fine). cap: bytes (None: default_cap()).
    timed: also measure seconds per iteration (a short timing on this machine)."""
    cost = WindowCost(net, config.content_layers, config.style_layers)
    base = current_rss()
    cap = default_cap() if cap is None else cap
    plans = [plan_scale(cost, hw, shws, config, cap, base) for hw, shws in zip(scale_hws, style_hws_per_scale)]
    if timed:
        per_value = _optimizer_seconds_per_value(config.optimizer)
        uses_lbfgs = config.optimizer == "lbfgs"
        for k, p in enumerate(plans):
            net_s = cost.seconds(*p.window, tiled=p.tiles > 1) * p.tiles
            p.seconds_per_iteration = EVALUATIONS_PER_ITERATION * net_s + per_value * 3 * p.hw[0] * p.hw[1]
            # Every start of L-BFGS-B sets up its bounds (LBFGS_SETUP_SECONDS_PER_VALUE) and evaluates
            # once more; it starts again at Config.restart_with_step_sizes_at() if the scale's budget goes past it.
            budget = config.iterations if k == len(plans) - 1 else config.coarse_iterations
            starts = 2 if uses_lbfgs and 0 < config.restart_with_step_sizes_at() < budget else 1
            p.setup_seconds = starts * (net_s + (LBFGS_SETUP_SECONDS_PER_VALUE * 3 * p.hw[0] * p.hw[1]
                                                 if uses_lbfgs else 0.0))
    return plans


EVALUATIONS_PER_ITERATION = 1.04   # scipy L-BFGS-B's line search, measured (lbfgs.run_lbfgs)
# scipy's fmin_l_bfgs_b turns the bounds into arrays with Python loops over every value before its
# first step: 2.1-2.3 us per value with scipy 1.17 on the test machine (n = 3 million, 3 runs; about 0.5 s
# at 320x240 and 5.2 s at 1024x768), paid at every start of L-BFGS-B.
LBFGS_SETUP_SECONDS_PER_VALUE = 2.2e-6


def _optimizer_seconds_per_value(optimizer):
    """The optimiser's own time per image value and iteration (besides evaluations): L-BFGS-B's
    update and the copies around it, about 0.2 us per value on this project's 2-core test machine
    with scipy 1.17 (44 ms per iteration at 320x240, 122 ms at 512x384: wall time per iteration
    less the evaluations'); Adam's few vector operations, about 0.02 us."""
    return 0.2e-6 if optimizer == "lbfgs" else 0.02e-6


def describe(plans, budgets, cap, given=True):
    """The --dry-run text: one line per scale, then the peak and the time. given: the cap came
    from --max-memory (else it is default_cap())."""
    source = "--max-memory" if given else f"default: {SAFE_SHARE:.0%} of the memory available; --max-memory sets it"
    lines = [f"memory cap {gib(cap)} ({source})"]
    total = 0.0
    for k, (p, its) in enumerate(zip(plans, budgets)):
        how = (f"{p.tiles} tiles of {p.window[1]}x{p.window[0]} px (cores of at most {p.tile} px)" if p.tiles > 1
               else f"one window, style images in tiles of {p.tile} px" if p.tile else "untiled")
        opt = f"L-BFGS m={p.lbfgs_memory}" if p.optimizer == "lbfgs" else "Adam"
        sec = "" if p.seconds_per_iteration is None else f", ~{p.seconds_per_iteration:.1f} s/iteration"
        lines.append(f"scale {k + 1}/{len(plans)}: {p.hw[1]}x{p.hw[0]}, {how}, {opt}, peak ~{gib(p.peak)}"
                     f"{sec}, up to {its} iterations")
        if p.seconds_per_iteration is not None:
            total += p.seconds_per_iteration * its + p.setup_seconds
    top = max(plans, key=lambda p: p.peak)
    lines.append("peak estimate " + gib(top.peak) + " at " + f"{top.hw[1]}x{top.hw[0]}: " +
                 ", ".join(f"{k} {gib(v)}" for k, v in top.peak_parts.items()) +
                 f", +{round(100 * (HEADROOM - 1))}% headroom")
    if total:
        # An estimate from a short probe, not a bound: two measured runs took 0.54x (tiled) and 1.13x of it.
        lines.append(f"estimated time ~{total / 60:.1f} min if every scale runs its full budget "
                     "(less when --min-improvement ends a scale first)")
    return "\n".join(lines)
