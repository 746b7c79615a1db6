"""L-BFGS-B in per-pixel step sizes (lbfgs.step_scales) and where stylize restarts with them."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from nst_numpy import FastVGG19, lbfgs
from nst_numpy.config import Config
from nst_numpy.gradcheck import rel_error
from nst_numpy.lbfgs import SCALE_RANGE, run_lbfgs, step_scales
from nst_numpy.samples import landscape, swirls

HW = (24, 32)


def _field(seed, spread):
    """(H, W, 3) positive field varying smoothly over `spread` orders of magnitude."""
    z = gaussian_filter(np.random.default_rng(seed).standard_normal(HW + (3,)), (3, 3, 0))
    return 10.0 ** (spread * (z - z.min()) / (z.max() - z.min()))


def test_step_scales_follow_the_blurred_gradient_size():
    """D = (blurred |g| / median) ** -1/2 within its rounding (2^(1/8)), clipped, with few values."""
    g = _field(0, 2.0) * np.random.default_rng(1).choice([-1.0, 1.0], HW + (3,))
    d = step_scales(g.reshape(-1), HW)
    size = gaussian_filter(np.abs(g), (lbfgs.SCALE_BLUR, lbfgs.SCALE_BLUR, 0), mode="nearest").reshape(-1)
    exact = np.clip((size / np.median(size)) ** -0.5, *SCALE_RANGE)
    ratio = d / exact
    assert np.all(ratio <= 2 ** (1 / 8) + 1e-12) and np.all(ratio >= 2 ** (-1 / 8) - 1e-12)
    assert d[np.argmax(size)] < 1 < d[np.argmin(size)]        # big gradients: small steps, and back
    assert len(np.unique(d)) <= 27 and d.min() >= 2 ** -3.5 and d.max() <= 2 ** 3.5
    assert np.array_equal(step_scales(np.zeros(HW[0] * HW[1] * 3), HW), np.ones(HW[0] * HW[1] * 3))
    wide = step_scales(_field(7, 8.0).reshape(-1), HW)   # D would span ~10^4 unclipped: both ends clip
    rounded = [2 ** (np.round(lbfgs.SCALE_LEVELS * np.log2(v)) / lbfgs.SCALE_LEVELS) for v in SCALE_RANGE]
    assert (wide.min(), wide.max()) == pytest.approx(rounded, rel=1e-12)


def _quadratic(c, target):
    """f(x) = 1/2 sum c (x - target)^2, x: (n,); returns f with the run_lbfgs interface."""
    def f(x):
        r = x - target
        return float(0.5 * np.sum(c * r * r)), c * r
    return f


def test_step_sizes_precondition_a_badly_scaled_problem(monkeypatch):
    """A quadratic whose curvature varies 1000x across the picture (as loss sensitivity varies between
    textured and flat regions): from a start where |g| follows the curvature, D^2 = 1/|g| undoes the
    scaling, so 6 iterations get 100x lower than plain L-BFGS-B's 6. The bounds still hold. A
    negative control, the gradient passed on without the chain rule's D, loses the gain."""
    c = _field(2, 3.0).reshape(-1)
    target = np.random.default_rng(3).uniform(-0.5, 0.5, c.size)
    x0 = target + 1.0                                            # |g| = c at the start
    lo, hi = np.full(c.size, -10.0), np.full(c.size, target.max() + 1.0)
    f = _quadratic(c, target)
    losses = {}
    for name, sizes in (("plain", None), ("scaled", lambda g: step_scales(g, HW))):
        x = run_lbfgs(f, x0.copy(), lo, hi, 6, step_sizes=sizes)
        assert np.all(x >= lo) and np.all(x <= hi)
        losses[name] = f(x)[0]
    assert losses["scaled"] < losses["plain"] / 100, losses

    d = step_scales(f(x0)[1], HW)                               # the D run_lbfgs computes
    real = lbfgs.fmin_l_bfgs_b

    def wrong(fun, z0, **kw):                                   # scipy gets d loss/dx, not d loss/dz
        def dropped(z):
            loss, grad = fun(z)
            return loss, grad / d
        return real(dropped, z0, **kw)
    monkeypatch.setattr(lbfgs, "fmin_l_bfgs_b", wrong)
    x = run_lbfgs(f, x0.copy(), lo, hi, 6, step_sizes=lambda g: step_scales(g, HW))
    assert f(x)[0] > 10 * losses["scaled"], (f(x)[0], losses)


def test_every_point_stays_in_the_box_with_step_sizes():
    """With step sizes, x = D z for z on the box lo/D..hi/D can round 1 ulp past lo or hi; the network
    and the saved picture are promised the box, so run_lbfgs clips. Half the optimum lies outside
    the box here, so many values end on a bound (unclipped: 3 of 96 returned values, and 16 of 22
    evaluated points, were past it, by up to 1.4e-14)."""
    rng = np.random.default_rng(0)
    n = 4 * 8 * 3
    c = 10 ** rng.uniform(0, 3, n)
    lo, hi = np.full(n, -123.68), np.full(n, 151.061)   # the network's units: not exact in binary
    f, seen = _quadratic(c, rng.uniform(-200, 200, n)), []

    def spy(x):
        seen.append(x.copy())
        return f(x)
    x = run_lbfgs(spy, np.zeros(n), lo, hi, 20, step_sizes=lambda g: step_scales(g, (4, 8)))
    assert np.sum(np.minimum(x - lo, hi - x) < 1e-9) > n // 4   # the bounds bind
    for point in seen + [x]:
        assert np.all(point >= lo) and np.all(point <= hi)


@pytest.mark.parametrize("sizes", [None, lambda g: step_scales(g, HW)])
def test_what_scipy_is_given(monkeypatch, sizes):
    """scipy's L-BFGS-B gets the memory asked for, no tolerance that could end the budget early
    (factr = pgtol = 0), room for line searches, and a loss scaled so that the first step, -gradient
    in z, moves the steepest value of z by one RGB level of the narrowest channel (unequal ranges here)."""
    c = _field(5, 3.0).reshape(-1)
    target = np.random.default_rng(6).uniform(-0.5, 0.5, c.size)
    f = _quadratic(c, target)
    lo, hi = np.tile([-1.0, -2.0, -3.0], c.size // 3), np.tile([1.5, 2.5, 3.5], c.size // 3)
    x0 = np.clip(target + 0.5, lo, hi)
    real, seen = lbfgs.fmin_l_bfgs_b, {}

    def spy(fun, z0, **kw):
        seen.update(kw, start=fun(z0))
        return real(fun, z0, **kw)
    monkeypatch.setattr(lbfgs, "fmin_l_bfgs_b", spy)
    run_lbfgs(f, x0, lo, hi, 4, memory=3, step_sizes=sizes)
    assert (seen["m"], seen["factr"], seen["pgtol"], seen["maxiter"], seen["maxfun"]) == (3, 0.0, 0.0, 4, 28)
    loss_z, grad_z = seen["start"]
    assert np.max(np.abs(grad_z)) == pytest.approx(2.5 / 255, rel=1e-12)     # the narrowest range, 2.5
    d = np.ones(c.size) if sizes is None else sizes(f(x0)[1])
    assert rel_error(grad_z, loss_z / f(x0)[0] * d * f(x0)[1]) < 1e-12         # d(s f)/dz = s D df/dx


@pytest.fixture(scope="module")
def net():
    return FastVGG19.random(seed=0, dtype=np.float32)


@pytest.mark.parametrize("after, expected", [(0, [(9, False)]), (4, [(4, False), (5, True)]),
                                             (20, [(9, False)]), (None, [(9, False)])])
def test_stylize_restarts_with_step_sizes_after_its_iterations(net, monkeypatch, after, expected):
    """Config.precondition_after = 4: the first 4 iterations plain, the rest in step sizes;
    0, more than the budget, or None (automatic) with min_improvement = 0 (the old behaviour):
    one plain run of L-BFGS-B."""
    from nst_numpy import optimize
    calls = []

    def spy(f, x0, lo, hi, n, on_iteration=None, memory=10, step_sizes=None, info=None):
        calls.append((n, step_sizes is not None))
        return run_lbfgs(f, x0, lo, hi, n, on_iteration, memory, step_sizes, info)
    monkeypatch.setattr(optimize, "run_lbfgs", spy)
    cfg = Config(size=32, scales=1, iterations=9, min_improvement=0.0, precondition_after=after,
                 style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_2",))
    seen = []
    optimize.stylize(net, landscape(32, 32), [swirls(32, 32)], cfg, callback=seen.append)
    assert calls == expected and [s.iteration for s in seen] == list(range(1, 10))


def test_automatic_step_sizes_follow_the_stopping_rule():
    """None: 20 iterations with the stopping rule, none without it, so that --scales 1 --iterations 300
    --min-improvement 0 stays the plain L-BFGS-B run it was; a number given is used as it is."""
    assert Config().precondition_after is None and Config().restart_with_step_sizes_at() == 20
    assert Config(min_improvement=0.0).restart_with_step_sizes_at() == 0
    assert Config(min_improvement=0.0, precondition_after=5).restart_with_step_sizes_at() == 5
    assert Config(precondition_after=0).restart_with_step_sizes_at() == 0


def test_automatic_lbfgs_memory_follows_the_stopping_rule():
    """None: 5 correction pairs with the stopping rule, 10 without it (the plain run of earlier versions);
    a number given is used as it is, with or without the rule."""
    assert Config().lbfgs_memory is None and Config().correction_pairs() == 5
    assert Config(min_improvement=0.0).correction_pairs() == 10
    assert Config(min_improvement=0.0, lbfgs_memory=7).correction_pairs() == 7
    assert Config(lbfgs_memory=10).correction_pairs() == 10


@pytest.mark.parametrize("sizes", [None, lambda g: step_scales(g, HW)])
def test_the_start_is_evaluated_once(sizes):
    """run_lbfgs needs the gradient at the start (for its first-step scale and D) and hands that
    evaluation to scipy, whose first call is at the same point: no second evaluation there. A start
    outside the box is projected onto it first, as L-BFGS-B would."""
    c = _field(2, 3.0).reshape(-1)
    target = np.random.default_rng(4).uniform(-0.5, 0.5, c.size)
    f, seen = _quadratic(c, target), []

    def counted(x):
        seen.append(x.copy())
        return f(x)
    lo, hi = np.full(c.size, -1.0), np.full(c.size, 1.0)
    x0 = target + np.where(np.arange(c.size) % 2, 1.0, 5.0)   # half of it above hi
    run_lbfgs(counted, x0, lo, hi, 3, step_sizes=sizes)
    assert np.allclose(seen[0], np.clip(x0, lo, hi), rtol=0, atol=1e-12)
    assert min(np.max(np.abs(a - b)) for a, b in zip(seen, seen[1:])) > 1e-6   # no point evaluated twice in a row
    assert 3 <= len(seen) <= 3 + 4
