"""Each loss's gradient against centered finite differences (float64), with negative controls."""
import numpy as np
import pytest

from nst_numpy.gradcheck import numerical_gradient, rel_error
from nst_numpy.losses import content_loss, gram_matrix, style_layer_loss, tv_loss, tv_loss_banded

BOUND = 1e-8  # float64, h = 1e-5: observed errors are ~1e-10 (docs/guide.md, section 1)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def _check(loss_fn, x, h=1e-5):
    """(relative error of the analytic gradient, the analytic gradient, the numeric one)."""
    _, analytic = loss_fn(x)
    numeric = numerical_gradient(lambda z: loss_fn(z)[0], x.copy(), h)
    return rel_error(analytic, numeric), analytic, numeric


def test_content_loss_value_and_gradient(rng):
    F, P = rng.standard_normal((5, 4, 3)), rng.standard_normal((5, 4, 3))
    loss, dF = content_loss(F, P)
    assert loss == pytest.approx(0.5 * np.sum((F - P) ** 2))
    err, analytic, numeric = _check(lambda z: content_loss(z, P), F)
    assert err < BOUND
    # Negative control: the gradient without the 1/2 of eq. 1 is caught.
    assert rel_error(2 * analytic, numeric) > 0.1


def test_gram_matrix_matches_explicit_sum(rng):
    F = rng.standard_normal((3, 5, 4))
    G = gram_matrix(F)
    Fp = F.reshape(-1, 4).T  # the paper's (N, M) layout
    expected = np.array([[np.sum(Fp[i] * Fp[j]) for j in range(4)] for i in range(4)])
    assert G.shape == (4, 4)
    assert np.allclose(G, expected, rtol=1e-12, atol=1e-12)
    assert np.allclose(G, G.T, rtol=0, atol=1e-12)


def test_style_layer_loss_value_and_gradient(rng):
    F = np.abs(rng.standard_normal((4, 3, 6)))  # ReLU outputs are >= 0
    A = gram_matrix(np.abs(rng.standard_normal((4, 3, 6))))
    N, M = 6, 12
    loss, _ = style_layer_loss(F, A)
    assert loss == pytest.approx(np.sum((gram_matrix(F) - A) ** 2) / (4 * N ** 2 * M ** 2), rel=1e-12)
    err, analytic, numeric = _check(lambda z: style_layer_loss(z, A), F)
    assert err < BOUND
    # Negative controls: keeping the 1/4 of eq. 4 in the gradient (eq. 6 has none: the 2 of
    # the square and the 2 from F appearing twice in G = F F^T cancel it), or A - G for G - A.
    assert rel_error(analytic / 4, numeric) > 0.1
    assert rel_error(-analytic, numeric) > 0.1


def test_style_layer_loss_rejects_wrong_target_shape(rng):
    with pytest.raises(ValueError, match="A must be"):
        style_layer_loss(rng.standard_normal((2, 2, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="differ"):
        content_loss(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)))


def test_style_loss_zero_at_target(rng):
    F = rng.standard_normal((3, 3, 5))
    loss, grad = style_layer_loss(F, gram_matrix(F))
    assert abs(loss) < 1e-20 and np.max(np.abs(grad)) < 1e-12


def test_tv_loss_value_and_gradient(rng):
    x = rng.standard_normal((6, 5, 3))
    loss, _ = tv_loss(x)
    expected = np.sum(np.diff(x, axis=0) ** 2) + np.sum(np.diff(x, axis=1) ** 2)
    assert loss == pytest.approx(expected, rel=1e-12)
    err, analytic, numeric = _check(tv_loss, x)
    assert err < BOUND
    # Negative control: dropping the horizontal term's gradient is caught.
    partial = np.zeros_like(x)
    dv = x[1:] - x[:-1]
    partial[1:] += 2 * dv
    partial[:-1] -= 2 * dv
    assert rel_error(partial, numeric) > 0.1


def test_tv_loss_of_constant_image_is_zero():
    loss, grad = tv_loss(np.full((4, 4, 3), 7.0))
    assert abs(loss) < 1e-20 and not grad.any()


def test_losses_keep_float32(rng):
    F = rng.standard_normal((4, 4, 8)).astype(np.float32)
    assert content_loss(F, F * 0.5)[1].dtype == np.float32
    assert style_layer_loss(F, gram_matrix(F * 0.5))[1].dtype == np.float32
    assert tv_loss(F)[1].dtype == np.float32


def test_float32_losses_are_summed_in_float64():
    """A loss is a sum of many squares of very different sizes; in float32, 1e8 + 1 is 1e8 (its step
    there is 8), so the six 1s below would vanish from a float32 sum. _total accumulates in float64."""
    F = np.ones((1, 1, 7), np.float32)
    F[0, 0, 0] = 1e4
    assert content_loss(F, np.zeros_like(F))[0] == pytest.approx(0.5 * (1e8 + 6), rel=1e-12)


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 100])
def test_tv_loss_banded_equals_tv_loss(rng, rows):
    """The banded form (objective.py's) against tv_loss: value, and the weighted gradient added into out."""
    x = rng.standard_normal((7, 5, 3))
    scale = np.array([0.5, 2.0, 1.5])
    loss, grad = tv_loss(x * scale)
    start = rng.standard_normal(x.shape)
    out = start.copy()
    banded = tv_loss_banded(x, scale, out, 0.3, rows=rows)
    assert abs(banded - loss) <= 1e-12 * loss
    expected = start + 0.3 * grad * scale
    assert np.max(np.abs(out - expected)) / np.max(np.abs(expected)) < 1e-12
    wrong = start + 0.3 * grad   # negative control: the chain rule's scale left out
    assert np.max(np.abs(out - wrong)) / np.max(np.abs(wrong)) > 1e-3
