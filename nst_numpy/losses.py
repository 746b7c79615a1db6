"""The losses of neural style transfer, each returning (loss, gradient).

Equation numbers refer to Gatys, Ecker & Bethge, "Image Style Transfer Using
Convolutional Neural Networks" (CVPR 2016); the 2015 arXiv paper "A Neural
Algorithm of Artistic Style" has the same formulas.

Layout. The paper writes a layer's response as F^l, an N_l x M_l matrix
(N_l filters, M_l = height * width positions). Our activations are channels-last
(H, W, C), so reshaping to F2d: (M, N) gives the *transpose* of the paper's
matrix. Every formula below is the paper's, transposed accordingly.

The ReLU mask of dE/dF (the paper's "0 if F < 0") is not applied here: the
network's backward pass through the ReLU that produced F applies it.
"""
import numpy as np


def _total(a):
    """Sum of an array as a Python float, accumulated in float64 (a loss, not a gradient)."""
    return float(np.sum(a, dtype=np.float64))


def content_loss(F, P):
    """Squared-error content loss and its gradient.

    F: (H, W, C) activations of the image being optimised; P: (H, W, C) of the content image.
    Returns (L, dL/dF) with L a float and dL/dF: (H, W, C).
    """
    if F.shape != P.shape:
        raise ValueError(f"content_loss: F {F.shape} and P {P.shape} differ in shape")
    diff = F - P
    loss = 0.5 * _total(diff * diff)  # Gatys et al. 2016, eq. 1
    return loss, diff                 # Gatys et al. 2016, eq. 2 (ReLU mask: see module docstring)


def gram_matrix(F):
    """Gram matrix of a layer's activations.

    F: (H, W, C) -> G: (C, C), G[i, j] = sum_k F2d[k, i] F2d[k, j] over the M = H*W positions k,
    F2d = F.reshape(M, C); in the paper's (channel, position) layout, G_ij = sum_k F_ik F_jk.
    """
    F2d = F.reshape(-1, F.shape[-1])  # (M, N): the paper's F^l transposed
    return F2d.T @ F2d                # Gatys et al. 2016, eq. 3: G = F F^T in the paper's layout


def gram_matrix_banded(F, dtype=np.float64, band_values=1 << 22):
    """gram_matrix(F) summed in float64 a band of rows at a time, each band's product in `dtype`.

    F: (H, W, N), any strides (a tile's owned part is a strided view) -> G: (N, N) float64.
    Why bands: a float64 copy, or a contiguous copy of a strided view, of a large layer would
    be large itself (relu1_1 at 1024 px: 0.5 GB in float64). Checked against gram_matrix by
    tests/test_memory_paths.py::test_gram_matrix_banded_equals_gram_matrix.
    """
    N = F.shape[-1]
    rows = max(1, band_values // max(1, F.shape[1] * N))
    G = np.zeros((N, N), np.float64)
    for r0 in range(0, F.shape[0], rows):
        G += gram_matrix(np.ascontiguousarray(F[r0:r0 + rows], dtype))   # eq. 3 over these rows
    return G


def style_loss_from_gram(G, A, M):
    """One layer's style loss E_l, and its gradient factored as dE/dF = F @ K.

    G: (N, N) the Gram matrix of the image being optimised (gram_matrix), A: (N, N) the
    target's, M: the number of positions H*W at this layer. Returns (E, K), E a float and
    K: (N, N). The objective hands K to the engine's backward pass (fast.ActivationTimes),
    which forms F @ K a band of rows at a time instead of as one (H, W, N) array.
    """
    N = G.shape[0]
    if A.shape != (N, N):
        raise ValueError(f"style loss: A must be ({N}, {N}) for {N} channels, got {A.shape}")
    diff = G - A                                                 # (N, N): G - A
    norm = G.dtype.type(1.0 / (float(N) ** 2 * float(M) ** 2))   # 1 / (N^2 M^2), in G's dtype
    loss = 0.25 * float(norm) * _total(diff * diff)              # Gatys et al. 2016, eq. 4
    # Paper, (N, M) layout: dE/dF_ij = (F^T (G - A))_ji / (N^2 M^2); G - A is symmetric, which is why
    # F's two appearances in G give one term twice (docs/guide.md, section 7). Entry (j, i) of
    # F^T (G - A) is entry (position j, channel i) of our (M, N) layout, so there the gradient
    # is F2d @ (G - A) / (N^2 M^2) as it stands: K = (G - A) / (N^2 M^2).
    diff *= norm                                                 # in place: diff becomes K
    return loss, diff                                            # Gatys et al. 2016, eq. 6, factored


def style_layer_loss(F, A):
    """One layer's style loss E_l and its gradient.

    F: (H, W, N) activations of the image being optimised (N channels, the paper's N_l);
    A: (N, N) the target Gram matrix (of the style image, for the same number of positions M = H*W).
    Returns (E, dE/dF) with E a float and dE/dF: (H, W, N).
    """
    H, W, N = F.shape
    loss, K = style_loss_from_gram(gram_matrix(F), A, H * W)   # checks A's shape
    grad = F.reshape(H * W, N) @ K                               # Gatys et al. 2016, eq. 6; (M, N)
    return loss, grad.reshape(H, W, N)


def tv_loss(x):
    """Total variation: squared differences of vertically and horizontally neighbouring pixels.

    x: (H, W, C). L = sum (x[i+1, j] - x[i, j])^2 + sum (x[i, j+1] - x[i, j])^2.
    Returns (L, dL/dx) with dL/dx: (H, W, C). Not in the Gatys papers; a smoothness
    prior as in Mahendran & Vedaldi 2015 (their TV norm with exponent 2).
    """
    dv = x[1:, :, :] - x[:-1, :, :]  # (H-1, W, C)
    dh = x[:, 1:, :] - x[:, :-1, :]  # (H, W-1, C)
    loss = _total(dv * dv) + _total(dh * dh)
    grad = np.zeros_like(x)
    # Each difference d = b - a contributes 2d to dL/db and -2d to dL/da.
    grad[1:, :, :] += 2 * dv
    grad[:-1, :, :] -= 2 * dv
    grad[:, 1:, :] += 2 * dh
    grad[:, :-1, :] -= 2 * dh
    return loss, grad


def tv_loss_banded(x, scale, out, weight, rows=128):
    """tv_loss(x * scale), with weight * its gradient w.r.t. x added into out, a band of rows at a time.

    x, out: (H, W, C); scale: (C,) per channel. Returns the loss (not weighted). The same sums
    as tv_loss; why bands: tv_loss's temporaries are about six image-sized arrays, which at 8K
    (100 M values) would be 2.4 GB. Band [r0, r1) owns the vertical differences of its rows to
    the row below and the horizontal differences within its rows, so each difference is counted once.
    """
    H = x.shape[0]
    loss = 0.0
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        xb = x[r0:min(H, r1 + 1)] * scale      # the band and the row below it, (<= rows + 1, W, C)
        dv = xb[1:] - xb[:-1]                   # differences to the row below, rows r0 .. r0 + len(dv) - 1
        dh = xb[:r1 - r0, 1:] - xb[:r1 - r0, :-1]
        loss += _total(dv * dv) + _total(dh * dh)
        k = len(dv)
        dv *= 2 * weight * scale                # chain rule through x * scale
        dh *= 2 * weight * scale
        out[r0 + 1:r0 + 1 + k] += dv            # each difference d = b - a: +2d at b, -2d at a
        out[r0:r0 + k] -= dv
        out[r0:r1, 1:] += dh
        out[r0:r1, :-1] -= dh
    return loss
