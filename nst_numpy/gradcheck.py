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
import numpy as np


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
    flat = x.reshape(-1)  # a view: writing to it perturbs x in place
    idx = range(flat.size) if indices is None else indices
    grad = []
    for i in idx:
        old = flat[i]
        flat[i] = old + h
        f_plus = f(x)
        flat[i] = old - h
        f_minus = f(x)
        flat[i] = old
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


def check_conv_params(x, w, b, rng, h=1e-5):
    """Relative errors (dw, db) of conv_backward_params against finite differences."""
    from .layers import conv_backward_params, conv_forward

    out, cache = conv_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dw, db = conv_backward_params(dout, cache)
    num_dw = numerical_gradient(lambda w_: np.sum(conv_forward(x, w_, b)[0] * dout), w.copy(), h)
    num_db = numerical_gradient(lambda b_: np.sum(conv_forward(x, w, b_)[0] * dout), b.copy(), h)
    return rel_error(dw, num_dw), rel_error(db, num_db)


def check_network(net, x, taps, rng, n_samples=None, h=1e-5):
    """Relative error of net.backward for a loss summing random projections of several taps.

    net: a float64 VGG19; x: (H, W, 3) float64; taps: layer names.
    f(x) = sum_l sum(act_l(x) * g_l) with random g_l, so the gradients of all taps
    must be accumulated correctly. n_samples: probe that many random pixels
    (default: all).
    """
    acts = net.forward(x, taps)
    ups = {name: rng.standard_normal(a.shape) for name, a in acts.items()}
    analytic = net.backward(ups)

    def f(z):
        out = net.forward(z, taps)
        return sum(float(np.sum(out[n] * ups[n])) for n in taps)

    if n_samples is None:
        return rel_error(analytic, numerical_gradient(f, x.copy(), h))
    idx = rng.choice(x.size, size=min(n_samples, x.size), replace=False)
    return rel_error(analytic.reshape(-1)[idx], numerical_gradient(f, x.copy(), h, idx))
