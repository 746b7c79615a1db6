"""scipy's L-BFGS-B over the pixels: the first-step scaling, the box bounds, and per-value step sizes.

    x = run_lbfgs(f, x0, lo, hi, iterations)                  # plain L-BFGS-B
    x = run_lbfgs(f, x0, lo, hi, iterations, step_sizes=lambda g: step_scales(g, (H, W)))

optimize.stylize runs each scale's first Config.restart_with_step_sizes_at() iterations plain, then
restarts L-BFGS-B in step_scales' coordinates (README, "Time to a result").
"""
import numpy as np
from scipy.optimize import fmin_l_bfgs_b

from .fast.threads import blas_threads

SCALE_BLUR = 2.0          # px: step_scales smooths |gradient| over neighbouring pixels first
SCALE_RANGE = (0.1, 10.0)  # step_scales' clip on D; a step in x scales as D^2, so at most 100x faster or slower
SCALE_LEVELS = 4          # step_scales rounds to 2^(k/4): a few distinct values keep the bounds list small


def step_scales(grad, hw):
    """Per-value step sizes D for the change of variables x = D z, from the gradient at the start.

    grad: (n,) gradient at the start point, n = H W 3; hw: (H, W). Returns D: (n,) float64,
    D = (|grad| blurred over SCALE_BLUR px / its median) ** (-1/2), clipped to SCALE_RANGE.

    Why: L-BFGS's first guess of the inverse Hessian is one number times the identity, the same
    step for every pixel. Pixels whose loss moves a lot (edges, texture) then overshoot while flat
    regions crawl. Optimising z instead makes the guess proportional to D^2 ~ 1/|grad|, the
    diagonal scaling Adam and AdaGrad take from the gradient's size (Kingma & Ba 2015). It is a change of variables with
    D > 0: the same minima, and the box lo <= x <= hi is the box lo/D <= z <= hi/D. The exponent,
    blur and start point were measured at 320 px (docs/performance.md).
    """
    from scipy.ndimage import gaussian_filter
    size = gaussian_filter(np.abs(grad).reshape(hw + (3,)), (SCALE_BLUR, SCALE_BLUR, 0), mode="nearest")
    median = float(np.median(size))
    if not median > 0:   # a flat objective (e.g. already at its minimum): nothing to rescale
        return np.ones(grad.size)
    d = np.clip((size.reshape(-1) / median) ** -0.5, *SCALE_RANGE)
    # Rounded to 2^(k/SCALE_LEVELS): scipy turns the bounds into a list of n (lo, hi) tuples, and
    # _bound_pairs shares one tuple per distinct pair. Unrounded, every value would get its own
    # (about 120 bytes per value); rounded, a few hundred pairs exist. The scaling is a rough one anyway.
    return 2.0 ** (np.round(SCALE_LEVELS * np.log2(d)) / SCALE_LEVELS)


def run_lbfgs(f, x0, lo, hi, iterations, on_iteration=None, memory=10, step_sizes=None, info=None):
    """scipy L-BFGS-B with box bounds lo <= x <= hi; x0, lo, hi: (n,) float64 (n = H W 3). Returns x (n,).

    memory: correction pairs kept (maxcor). Each costs two float64 vectors of x's size, so at
    1024 px, 10 pairs are 0.5 GB. stylize passes Config.correction_pairs() (5 in a default run);
    the default 10 here is config.PLAIN_LBFGS_MEMORY, the fixed-length run, which reconstruct.py uses.
    on_iteration(i), if given, is called after each iteration.
    step_sizes(grad) -> D (n,) > 0, if given: optimise z with x = D z instead, D from the gradient
    at x0 (step_scales); the result is still returned as x. None: D = 1, plain L-BFGS-B.
    info: a dict, if given, receives the iterations run (fewer than asked when scipy stops early:
    out of evaluations, or a failed line search) and scipy's message (task).
    """
    count = [0]

    def count_iteration(_zk):
        count[0] += 1
        if on_iteration is not None:
            on_iteration(count[0])

    # One BLAS thread for L-BFGS-B's vector operations (SciPy's own OpenBLAS): on more, its
    # workers spin for ~0.1 s after every step, during our next evaluation (see threads.py).
    with blas_threads(1, every_library=True):
        x0 = np.clip(x0, lo, hi)           # where L-BFGS-B starts: its start projected onto the box
        first = f(x0)                      # (loss, grad (n,)) there
        g0 = first[1]
        d = None if step_sizes is None else step_sizes(g0)   # (n,), or None: plain, z = x
        times_d = (lambda v: v) if d is None else (lambda v: d * v)   # d/dz = D d/dx
        # x = D z, clipped: D (z / D) can round 1 ulp past lo or hi, and the box is a promise.
        to_x = (lambda z: z) if d is None else (lambda z: np.clip(d * z, lo, hi))
        over_d = (lambda v: v) if d is None else (lambda v: v / d)

        def scaled(z):
            nonlocal first
            if first is not None:
                # scipy's first call is at its start z0 = x0 / D projected onto the box lo/D..hi/D,
                # which is x0 again (to rounding in D (x0 / D)): reuse the evaluation above.
                (loss, grad), first = first, None
            else:
                loss, grad = f(to_x(z))
            grad *= factor           # in place: grad is the objective's fresh array, used only here
            return loss_scale * loss, grad

        # With no curvature known yet, L-BFGS-B's first trial step is z0 - grad. The normalised losses
        # (~1) have gradients of ~1e-5 per pixel, a step lost in float32 rounding, after which the line
        # search can give up. So minimise loss_scale * f instead, chosen so that the first step
        # moves the steepest value of z by one RGB level (with step sizes, value i of x then moves
        # D_i levels). Scaling f by a constant > 0 moves no minimum.
        level = float(np.min(hi - lo)) / 255.0  # one RGB level in network units
        g_max = float(np.max(np.abs(times_d(g0))))
        loss_scale = level / g_max if g_max > 0 else 1.0
        factor = times_d(loss_scale)   # the z-gradient of loss_scale * f is loss_scale * D * (x-gradient)
        # ftol = gtol = 0 (factr, pgtol): run the full iteration budget rather than stopping on a flat
        # stretch; maxfun leaves room for line searches (about 1.1 evaluations per iteration in practice).
        # fmin_l_bfgs_b rather than minimize(): minimize turns Bounds into n Python tuples that live for
        # the whole run (0.35 GB at 1024 px); here the n pairs are a few shared tuples (see _bound_pairs).
        z, _, report = fmin_l_bfgs_b(scaled, over_d(x0), bounds=_bound_pairs(over_d(lo), over_d(hi)),
                                     m=int(memory), factr=0.0, pgtol=0.0, maxiter=int(iterations),
                                     maxfun=2 * int(iterations) + 20, callback=count_iteration)
        if info is not None:
            info.update(iterations=count[0], task=str(report["task"]))
    return to_x(z)


def _bound_pairs(lo, hi):
    """scipy's L-BFGS-B bounds, [(lo_i, hi_i)] for every i, as references to one tuple per distinct pair.

    lo, hi: (n,) float64. Pixel bounds take one value per channel (divided by one of step_scales'
    few values), so the list costs 8 bytes per value instead of the ~120 of n separate tuples of floats.
    """
    lo_vals, lo_idx = np.unique(lo, return_inverse=True)
    hi_vals, hi_idx = np.unique(hi, return_inverse=True)
    codes, idx = np.unique(lo_idx * len(hi_vals) + hi_idx, return_inverse=True)   # one code per distinct pair
    pairs = [(float(lo_vals[c // len(hi_vals)]), float(hi_vals[c % len(hi_vals)])) for c in codes]
    return [pairs[i] for i in idx.ravel().tolist()]
