"""Checking hand-written gradients against centered finite differences.

The idea: for a scalar function f and a small step h,

    df/dx_i  ~=  (f(x + h e_i) - f(x - h e_i)) / (2 h)      (error O(h^2))

To check a layer y = layer(x) we need a scalar, so we contract the output
with a *random* upstream gradient g: f(x) = sum(layer(x) * g). Its gradient is
exactly what ``layer_backward(g, cache)`` must return. (A gradient of all ones
would hide bugs that permute or mix output positions, hence random.)

Checks run in float64: in float32 the rounding error of f, divided by 2h,
swamps the O(h^2) truncation error.
"""
from collections import namedtuple

import numpy as np

from .losses import content_loss, gram_matrix, style_layer_loss, tv_loss
from .fast.threads import blas_threads


def rel_error(a, b):
    """max|a - b| / max(1e-8, max(|a| + |b|)): the worst error relative to the gradient's scale.

    Dividing by the largest magnitude (not element by element) keeps tiny
    entries, where both values are ~0, from dominating the measure.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Centered differences of a scalar function f at x (float64).

    f: callable taking an array shaped like x, returning a float.
    indices: optional iterable of flat indices to probe (for large inputs);
    default: all of them. Returns the gradient at those indices, shape (len(indices),),
    or the full gradient shaped like x when indices is None. x is restored afterwards.
    """
    if x.dtype != np.float64:
        raise TypeError("finite differences need float64 inputs")
    idx = range(x.size) if indices is None else indices
    grad = []
    for i in idx:
        # x[j] by its index tuple, not a reshape(-1): that is a copy, not a view, when x is
        # not C-contiguous (a transpose, a strided slice), and would never perturb x.
        j = np.unravel_index(i, x.shape)
        old = x[j]
        x[j] = old + h
        f_plus = f(x)
        x[j] = old - h
        f_minus = f(x)
        x[j] = old
        grad.append((f_plus - f_minus) / (2 * h))
    grad = np.array(grad)
    return grad.reshape(x.shape) if indices is None else grad


def check_layer(forward, backward, x, rng, h=1e-5):
    """Relative error between a layer's backward and finite differences of its forward.

    forward(x) -> (out, cache); backward(dout, cache) -> dx. x: float64 array.
    """
    out, cache = forward(x)
    dout = rng.standard_normal(out.shape)
    analytic = backward(dout, cache)
    numeric = numerical_gradient(lambda z: np.sum(forward(z)[0] * dout), x.copy(), h)
    return rel_error(analytic, numeric)


def check_conv_params(x, w, b, rng, h=1e-5, backward_params=None):
    """Relative errors (dw, db) of backward_params (default layers.conv_backward_params) against
    finite differences. x: (H, W, C_in); w: (3, 3, C_in, C_out); b: (C_out,)."""
    from .layers import conv_backward_params, conv_forward

    out, cache = conv_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dw, db = (backward_params or conv_backward_params)(dout, cache)
    num_dw = numerical_gradient(lambda w_: np.sum(conv_forward(x, w_, b)[0] * dout), w.copy(), h)
    num_db = numerical_gradient(lambda b_: np.sum(conv_forward(x, w, b_)[0] * dout), b.copy(), h)
    return rel_error(dw, num_dw), rel_error(db, num_db)


def check_network(net, x, taps, rng, n_samples=None, h=1e-4):
    """Relative error of net.backward for a loss summing random projections of several taps.

    net: a float64 network (the gradient checks run on the reference VGG19); x: (H, W, 3) float64; taps: layer names.
    f(x) = sum_l sum(act_l(x) * g_l) with random g_l, so the gradients of all taps
    must be accumulated correctly. n_samples: probe that many random input values
    (pixel-channel entries; default: all).

    Each g_l is scaled so that its own share of dx peaks at 1: with g_l all of one size, relu1_1's
    share was over 3000 times relu5_1's, and a bug that doubled relu5_1's gradient moved dx by only 1e-4.
    h = 1e-4: the checks feed pixel-sized inputs (~50), where f's rounding, divided by 2h, sets the
    error (1e-7 at h = 1e-5, 1e-8 at 1e-4); the ReLU network is piecewise linear, so a larger h costs
    nothing unless a probe straddles a kink.
    """
    acts = net.forward(x, taps)
    ups = {name: rng.standard_normal(a.shape) for name, a in acts.items()}
    for name in taps:
        net.forward(x, taps)   # backward uses the caches of the latest forward
        ups[name] /= max(1e-12, float(np.max(np.abs(net.backward({name: ups[name]})))))
    net.forward(x, taps)
    analytic = net.backward(ups)

    def f(z):
        out = net.forward(z, taps)
        return sum(float(np.sum(out[n] * ups[n])) for n in taps)

    if n_samples is None:
        return rel_error(analytic, numerical_gradient(f, x.copy(), h))
    idx = rng.choice(x.size, size=min(n_samples, x.size), replace=False)
    return rel_error(analytic.reshape(-1)[idx], numerical_gradient(f, x.copy(), h, idx))


# ---------------------------------------------------------------------------
# The learner's table: every check in one place (used by scripts/gradcheck.py and tests)
# ---------------------------------------------------------------------------

class CheckResult(namedtuple("CheckResult", "name error bound expect_fail")):
    """One row of the gradient-check table.

    error: rel_error of the analytic gradient against finite differences.
    A normal check passes when error < bound. A negative control
    (expect_fail=True) feeds a deliberately wrong gradient and passes when the
    check catches it, i.e. when error > bound.
    """

    @property
    def passed(self):
        return self.error > self.bound if self.expect_fail else self.error < self.bound


LAYER_BOUND = 1e-8     # one layer, float64, h=1e-5: truncation ~1e-10, rounding ~1e-11
NETWORK_BOUND = 1e-6   # 20+ layers deep: rounding grows with depth, still far below any real bug
CONTROL_BOUND = 1e-2   # a wrong gradient is off by O(1); anything above this is "caught"


def check_scalar(f, x, h=1e-5):
    """Relative error of a scalar function's own gradient, e.g. a loss.

    f(x) -> (value, grad) with grad shaped like x; x: float64, probed at every entry.
    """
    return rel_error(f(x)[1], numerical_gradient(lambda z: float(f(z)[0]), x.copy(), h))


JOIN = "d = g if d is None else d + g"   # the line of vgg.VGG19.backward where a tap's gradient joins


def with_overwritten_taps(net):
    """Negative control: a copy of the reference net whose backward runs `d = g` instead of its
    `d = g if d is None else d + g`, so each tap's gradient overwrites what flows from above.

    How: the source of vgg.VGG19.backward with that one line replaced is compiled in vgg's own
    namespace and bound to the copy. Everything else is the real backward, so the control
    breaks exactly the sum it is meant to test; if that line ever changes, this raises
    instead of silently testing something else.
    """
    import copy
    import inspect
    import textwrap
    import types

    from . import vgg
    source = textwrap.dedent(inspect.getsource(vgg.VGG19.backward))
    if source.count(JOIN) != 1:
        raise AssertionError(f"vgg.VGG19.backward no longer has the line {JOIN!r} exactly once")
    namespace = {}
    exec(compile(source.replace(JOIN, "d = g"), vgg.__file__, "exec"), vars(vgg), namespace)
    broken = copy.copy(net)
    broken.backward = types.MethodType(namespace["backward"], broken)
    return broken


def _layer_checks(rng):
    """Rows for conv (dx, dw, db), ReLU and both poolings, at even and odd sizes."""
    from . import layers as L

    rows = []
    for shape in [(6, 5, 3), (7, 9, 2)]:
        x = rng.standard_normal(shape)
        w = rng.standard_normal((3, 3, shape[2], 4))
        b = rng.standard_normal(4)
        size = "x".join(map(str, shape))
        err = check_layer(lambda z: L.conv_forward(z, w, b), L.conv_backward, x, rng)
        rows.append(CheckResult(f"conv dx ({size})", err, LAYER_BOUND, False))
        err_w, err_b = check_conv_params(x, w, b, rng)
        rows.append(CheckResult(f"conv dw ({size})", err_w, LAYER_BOUND, False))
        rows.append(CheckResult(f"conv db ({size})", err_b, LAYER_BOUND, False))
        rows.append(CheckResult(f"relu dx ({size})", check_layer(L.relu_forward, L.relu_backward, x, rng),
                                LAYER_BOUND, False))
        for kind, fwd, bwd in [("avg", L.avgpool_forward, L.avgpool_backward),
                               ("max", L.maxpool_forward, L.maxpool_backward)]:
            rows.append(CheckResult(f"{kind} pool dx ({size})", check_layer(fwd, bwd, x, rng), LAYER_BOUND, False))
    return rows


def _layer_controls(rng):
    """Negative controls for the layers: classic backward bugs the check must catch."""
    from . import layers as L

    x = rng.standard_normal((6, 5, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)

    def conv_backward_unflipped(dout, cache):  # transposed kernel, but not flipped in space
        return L.conv_forward(dout, cache[1].transpose(0, 1, 3, 2), np.zeros(3))[0]

    def params_flipped_dw_double_db(dout, cache):   # dw correlated the wrong way round; db counted twice
        dw, db = L.conv_backward_params(dout, cache)
        return dw[::-1, ::-1], 2 * db

    err_dw, err_db = check_conv_params(x[:5], w[:, :, :, :3], b[:3], rng, backward_params=params_flipped_dw_double_db)
    return [
        CheckResult("control: conv dw, flipped in space", err_dw, CONTROL_BOUND, True),
        CheckResult("control: conv db, summed twice", err_db, CONTROL_BOUND, True),
        CheckResult("control: conv dx, kernel not flipped",
                    check_layer(lambda z: L.conv_forward(z, w, b), conv_backward_unflipped, x, rng),
                    CONTROL_BOUND, True),
        CheckResult("control: relu dx, gradient passes everywhere",
                    check_layer(L.relu_forward, lambda d, c: d, x, rng), CONTROL_BOUND, True),
        CheckResult("control: avg pool dx, missing the 1/4",
                    check_layer(L.avgpool_forward, lambda d, c: 4 * L.avgpool_backward(d, c), x, rng),
                    CONTROL_BOUND, True),
        CheckResult("control: max pool dx, gradient to all 4 inputs",
                    check_layer(L.maxpool_forward, lambda d, c: 4 * L.avgpool_backward(d, c[0]), x, rng),
                    CONTROL_BOUND, True),
    ]


def _loss_checks(rng):
    """Rows for each loss's own gradient (no network), plus the classic Gram-gradient bug."""
    F = rng.standard_normal((4, 5, 6))  # (H, W, C): M = 20 positions, N = 6 channels
    P = rng.standard_normal((4, 5, 6))
    A = gram_matrix(rng.standard_normal((4, 5, 6)))  # (6, 6), a reachable target
    x = rng.standard_normal((5, 7, 3))
    return [
        CheckResult("content loss dF (eq. 2)", check_scalar(lambda z: content_loss(z, P), F.copy()),
                    LAYER_BOUND, False),
        CheckResult("style loss dF, Gram (eq. 6)", check_scalar(lambda z: style_layer_loss(z, A), F.copy()),
                    LAYER_BOUND, False),
        CheckResult("total variation dx", check_scalar(tv_loss, x), LAYER_BOUND, False),
        # G = F^T F uses F twice; differentiating only one factor gives half the gradient.
        CheckResult("control: style dF, one Gram factor only",
                    check_scalar(lambda z: (style_layer_loss(z, A)[0], style_layer_loss(z, A)[1] / 2), F.copy()),
                    CONTROL_BOUND, True),
    ]


def _network_checks(nets, rng, n_samples):
    """The whole reference VGG19 from several taps at once, for each pooling, plus its control.

    nets: {"avg": VGG19, "max": VGG19}, float64.
    """
    taps = ["relu1_1", "conv2_1", "relu3_1", "pool3", "relu4_2", "relu5_1"]
    x = rng.standard_normal((16, 16, 3)) * 50  # 16 px: the smallest size that reaches relu5_1 (4 poolings)
    rows = [CheckResult(f"VGG19 dx, {pooling} pool, {len(taps)} taps",
                        check_network(net, x, taps, rng, n_samples), NETWORK_BOUND, False)
            for pooling, net in nets.items()]
    rows.append(CheckResult("control: VGG19 dx, tap gradient overwritten (= not +=)",
                            check_network(with_overwritten_taps(nets["avg"]), x, taps, rng, n_samples),
                            CONTROL_BOUND, True))
    return rows


def _objective_checks(net, rng, n_samples):
    """The whole objective (content + style + TV through VGG19), float64, at sampled pixels."""
    from .config import Config
    from .objective import make_objective

    content, style, x = (net.preprocess(rng.uniform(0, 255, (16, 16, 3))) for _ in range(3))
    f = make_objective(net, content, [(style, 1.0)], Config())   # TV is about half of the gradient
    x = x.reshape(-1)
    idx = rng.choice(x.size, size=min(n_samples, x.size), replace=False)
    # Pixel values are ~100 in network units. h = 1e-4 keeps truncation and rounding near 1e-8, and
    # rarely straddles a ReLU's kink: with h = 1e-3, probing all 768 values (--samples 2304 or more,
    # as this row probes a third of --samples) put one across a kink, 4.8e-2 off at that value and
    # 6.8e-4 overall, though the gradient is right (5e-9 at h = 1e-4).
    numeric = numerical_gradient(lambda z: f(z)[0], x.copy(), 1e-4, idx)
    err = rel_error(f(x)[1][idx], numeric)
    f.tv_w = 0.0  # the same objective, but its gradient forgets the TV term
    bad = rel_error(f(x)[1][idx], numeric)
    return [CheckResult("objective dx (content+style+TV, eq. 7)", err, NETWORK_BOUND, False),
            CheckResult("control: objective dx without the TV term", bad, CONTROL_BOUND, True)]


def run_all_checks(seed=0, n_samples=12):
    """Run every gradient check at small sizes; returns a list of CheckResult, in table order.

    n_samples: input values (pixel-channel entries) probed by finite differences in the whole-network checks
    (each probe costs two forward passes).
    """
    from .vgg import VGG19

    rng = np.random.default_rng(seed)
    params = VGG19.random(seed=1, dtype=np.float64).params  # random weights: no files needed
    nets = {pooling: VGG19.from_arrays(params, pooling=pooling, dtype=np.float64) for pooling in ("avg", "max")}
    # The matrices here are tiny: extra BLAS threads only add overhead, and on a busy
    # machine their spinning made the run many times slower.
    with blas_threads(1):
        rows = (_layer_checks(rng) + _loss_checks(rng) + _network_checks(nets, rng, n_samples)
                + _objective_checks(nets["avg"], rng, max(2, n_samples // 3)) + _layer_controls(rng))
    return sorted(rows, key=lambda r: r.expect_fail)  # negative controls last (the sort is stable)
