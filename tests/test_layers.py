"""Every layer's backward pass against finite differences, plus the fast conv against the naive one."""
import numpy as np
import pytest
from scipy.signal import correlate

from nst_numpy import layers as L
from nst_numpy.gradcheck import check_conv_params, check_layer, check_network, rel_error

BOUND = 1e-8  # float64, h=1e-5: truncation O(h^2) ~1e-10 and rounding ~1e-11 sit well below this


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_fast_conv_matches_naive_loops(rng):
    x = rng.standard_normal((5, 7, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)
    fast, _ = L.conv_forward(x, w, b)
    assert fast.shape == (5, 7, 4)
    assert rel_error(fast, L.conv_forward_naive(x, w, b)) < 1e-14


def test_conv_matches_scipy_correlate(rng):
    # An independent implementation: per (in, out) channel pair 2-D cross-correlation.
    x = rng.standard_normal((9, 6, 4))
    w = rng.standard_normal((3, 3, 4, 5))
    b = rng.standard_normal(5)
    ref = np.stack([sum(correlate(x[:, :, c], w[:, :, c, o], mode="same") for c in range(4)) + b[o]
                    for o in range(5)], axis=-1)
    assert rel_error(L.conv_forward(x, w, b)[0], ref) < 1e-13


def test_conv_float32_stays_float32(rng):
    x = rng.standard_normal((6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    out, cache = L.conv_forward(x, w, np.zeros(2, np.float32))
    assert out.dtype == np.float32
    assert L.conv_backward(np.ones_like(out), cache).dtype == np.float32


def test_conv_dx(rng):
    x = rng.standard_normal((6, 5, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)
    err = check_layer(lambda z: L.conv_forward(z, w, b), L.conv_backward, x, rng)
    assert err < BOUND


def test_conv_dw_db(rng):
    x = rng.standard_normal((5, 6, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    b = rng.standard_normal(3)
    err_w, err_b = check_conv_params(x, w, b, rng)
    assert err_w < BOUND and err_b < BOUND


def test_conv_dw_db_check_catches_wrong_gradients(rng):
    """Negative control: dw correlated the wrong way round (flipped in space) and db counted twice fail."""
    x = rng.standard_normal((5, 6, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    b = rng.standard_normal(3)

    def wrong(dout, cache):
        dw, db = L.conv_backward_params(dout, cache)
        return dw[::-1, ::-1], 2 * db
    err_w, err_b = check_conv_params(x, w, b, rng, backward_params=wrong)
    assert err_w > 1e-2 and err_b > 1e-2


def test_relu_dx(rng):
    x = rng.standard_normal((4, 5, 3))
    assert check_layer(L.relu_forward, L.relu_backward, x, rng) < BOUND


@pytest.mark.parametrize("shape", [(6, 8, 3), (7, 9, 2), (5, 4, 1)])  # even and odd sizes
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_pool_dx(rng, kind, shape):
    fwd, bwd = (L.avgpool_forward, L.avgpool_backward) if kind == "avg" else (L.maxpool_forward, L.maxpool_backward)
    x = rng.standard_normal(shape)
    assert check_layer(fwd, bwd, x, rng) < BOUND


def test_pool_floors_odd_sizes(rng):
    x = rng.standard_normal((7, 5, 2))
    avg, avg_cache = L.avgpool_forward(x)
    mx, _ = L.maxpool_forward(x)
    assert avg.shape == mx.shape == (3, 2, 2)
    # Window (i, j) covers rows 2i..2i+1, cols 2j..2j+1; the last row and column are dropped.
    assert abs(avg[2, 1, 0] - x[4:6, 2:4, 0].mean()) < 1e-12
    assert abs(mx[2, 1, 1] - x[4:6, 2:4, 1].max()) < 1e-12
    dx = L.avgpool_backward(rng.standard_normal(avg.shape), avg_cache)
    assert not dx[6].any() and not dx[:, 4].any()  # the dropped row/column gets no gradient


def test_maxpool_ties_go_to_first_element():
    x = np.ones((2, 2, 1))
    out, cache = L.maxpool_forward(x)
    dx = L.maxpool_backward(np.full(out.shape, 3.0), cache)
    assert dx[0, 0, 0] == 3.0 and np.count_nonzero(dx) == 1  # exactly one receiver, no double counting


def _conv_backward_unflipped(dout, cache):
    """A classic bug: backward convolves with the transposed kernel but forgets to flip it."""
    _, w = cache
    return L.conv_forward(dout, w.transpose(0, 1, 3, 2), np.zeros(w.shape[2], dout.dtype))[0]


def _avgpool_backward_without_quarter(dout, cache):
    """Another classic bug: passes the full gradient to each of the 4 inputs."""
    return 4 * L.avgpool_backward(dout, cache)


def test_negative_controls_fail_the_check(rng):
    x = rng.standard_normal((6, 5, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)
    assert check_layer(lambda z: L.conv_forward(z, w, b), _conv_backward_unflipped, x, rng) > 1e-2
    assert check_layer(L.avgpool_forward, _avgpool_backward_without_quarter, x, rng) > 1e-2
    # A ReLU backward that lets everything through is wrong for negative inputs.
    assert check_layer(L.relu_forward, lambda d, c: d, x, rng) > 1e-2
    # Max pooling's gradient must reach only the window's maximum, not all four inputs.
    assert check_layer(L.maxpool_forward, lambda d, c: 4 * L.avgpool_backward(d, c[0]), x, rng) > 1e-2


def test_rel_error_is_the_guides_formula():
    """max|a - b| / max(|a| + |b|) (docs/guide.md, section 1): scaled by both gradients, so symmetric."""
    a, b = np.array([1.0, -2.0, 0.5]), np.array([3.0, -2.0, 0.0])   # max|a - b| = 2, max(|a| + |b|) = 4
    assert abs(rel_error(a, b) - 0.5) < 1e-15 and abs(rel_error(b, a) - 0.5) < 1e-15
    assert abs(rel_error([0.0], [1e-12]) - 1e-4) < 1e-15   # the denominator's floor, 1e-8


class _Doubler:
    """A one-tap stand-in network, out = 2 x, for check_network (which needs only forward and backward)."""

    def __init__(self, backward):
        self.backward = backward

    def forward(self, x, taps):
        return {"t": 2 * x}


def test_checks_use_a_random_upstream_gradient(rng):
    """A backward that sends each output's gradient to another input (here: rows reversed) is caught by the
    layer and the network check. With an upstream gradient of all ones it would pass (docs/guide.md, section 1)."""
    x = rng.standard_normal((4, 5, 3))
    assert check_layer(lambda z: (2 * z, None), lambda d, c: 2 * d, x, rng) < BOUND   # the stand-in is right
    assert check_layer(lambda z: (2 * z, None), lambda d, c: 2 * d[::-1], x, rng) > 1e-2
    assert check_network(_Doubler(lambda ups: 2 * ups["t"]), x, ["t"], rng) < BOUND
    assert check_network(_Doubler(lambda ups: 2 * ups["t"][::-1]), x, ["t"], rng, n_samples=20) > 1e-2
    # The same wrong backward passes when the upstream gradient is all ones: reversed ones are ones.
    assert check_layer(lambda z: (2 * z, None), lambda d, c: 2 * d[::-1], x, _AllOnes()) < BOUND


class _AllOnes:
    """A stand-in for the random generator whose "random" upstream gradient is all ones."""

    def standard_normal(self, shape):
        return np.ones(shape)
