"""The layers VGG19 is made of, as forward/backward pairs (the cs231n pattern).

Every ``*_forward`` returns ``(out, cache)``; the matching ``*_backward`` takes the
upstream gradient ``dout`` (same shape as ``out``) and that cache, and returns the
gradient with respect to the layer's input. Each backward sits right below its
forward so the two can be read together.

All arrays are channels-last: an image or activation is ``(H, W, C)``. A layer
never changes the dtype of its input, so the same code runs in float32 (real
runs) and float64 (gradient checks).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


# ---------------------------------------------------------------------------
# 3x3 convolution, stride 1, zero padding 1 ("same" size output)
# ---------------------------------------------------------------------------

def im2col(x):
    """Unroll every 3x3 neighbourhood of a zero-padded image into one row.

    x: (H, W, C) -> cols: (H*W, 9*C)

    Row ``i*W + j`` holds the 3x3xC patch centred on pixel (i, j), ordered
    (kh, kw, c). That is the same order as a HWIO kernel reshaped to
    (9*C, C_out), so the whole convolution becomes one matrix product
    ``cols @ w.reshape(9*C, C_out)``.
    """
    H, W, C = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))                 # (H+2, W+2, C)
    # A strided *view*: patches[i, j, c, kh, kw] = xp[i + kh, j + kw, c]; no copy yet.
    patches = sliding_window_view(xp, (3, 3), axis=(0, 1))  # (H, W, C, 3, 3)
    # The reshape copies the view into a contiguous (H*W, 9*C) matrix.
    return patches.transpose(0, 1, 3, 4, 2).reshape(H * W, 9 * C)


def conv_forward(x, w, b):
    """3x3 convolution (cross-correlation, as in every CNN library), stride 1, padding 1.

    x: (H, W, C_in) input
    w: (3, 3, C_in, C_out) kernel, HWIO
    b: (C_out,) bias
    Returns out: (H, W, C_out) and cache = (x, w), exactly what the backward passes need.

        out[i, j, o] = b[o] + sum_{kh, kw, c} xpad[i + kh, j + kw, c] * w[kh, kw, c, o]
    """
    H, W, _ = x.shape
    C_out = w.shape[3]
    out = im2col(x) @ w.reshape(-1, C_out)  # (H*W, 9*C_in) @ (9*C_in, C_out)
    out += b
    return out.reshape(H, W, C_out), (x, w)


def conv_backward(dout, cache):
    """Gradient of the convolution with respect to its input.

    dout: (H, W, C_out), cache = (x, w) from conv_forward. Returns dx: (H, W, C_in).

    Each input pixel x[p, q, c] was multiplied by w[kh, kw, c, o] to make
    out[p - kh + 1, q - kw + 1, o]. Summing those contributions is itself a
    3x3 "same" convolution of dout, with the kernel flipped in space and its
    in/out channel axes swapped:  dx = conv(dout, w[::-1, ::-1].T_io).
    So the backward pass reuses the forward code (and its speed).
    """
    _, w = cache
    w_flip = w[::-1, ::-1].transpose(0, 1, 3, 2)  # (3, 3, C_out, C_in)
    H, W, C_out = dout.shape
    dx = im2col(dout) @ w_flip.reshape(9 * C_out, -1)  # (H*W, 9*C_out) @ (9*C_out, C_in)
    return dx.reshape(H, W, -1)


def conv_backward_params(dout, cache):
    """Gradients of the convolution with respect to its kernel and bias.

    dout: (H, W, C_out), cache = (x, w). Returns dw: (3, 3, C_in, C_out), db: (C_out,).
    Style transfer never needs these (the weights are fixed; only the pixels
    move), so they are kept out of the network's hot path. They are here for
    learners and are gradient-checked like everything else.
    """
    x, w = cache
    C_out = dout.shape[2]
    # out = cols @ w2d  =>  dL/dw2d = cols^T @ dout2d
    dw = im2col(x).T @ dout.reshape(-1, C_out)  # (9*C_in, H*W) @ (H*W, C_out)
    db = dout.sum(axis=(0, 1))                  # the bias is added at every pixel
    return dw.reshape(w.shape), db


def conv_forward_naive(x, w, b):
    """Reference convolution with explicit loops, for readers and for testing.

    x: (H, W, C_in), w: (3, 3, C_in, C_out), b: (C_out,) -> out: (H, W, C_out).
    Far too slow for real images; tests compare it with ``conv_forward``.
    """
    H, W, C_in = x.shape
    C_out = w.shape[3]
    xp = np.zeros((H + 2, W + 2, C_in), dtype=x.dtype)
    xp[1:-1, 1:-1] = x
    out = np.zeros((H, W, C_out), dtype=np.result_type(x, w))
    for i in range(H):
        for j in range(W):
            for o in range(C_out):
                total = b[o]
                for kh in range(3):
                    for kw in range(3):
                        for c in range(C_in):
                            total += xp[i + kh, j + kw, c] * w[kh, kw, c, o]
                out[i, j, o] = total
    return out


# ---------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------

def relu_forward(x):
    """out = max(x, 0).  x: (H, W, C) -> out: (H, W, C); cache = out.

    The output alone is enough for the backward pass (out > 0 exactly where x > 0),
    so the input need not be kept.
    """
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout, cache):
    """dx = dout where the unit was active, 0 elsewhere.  dout, cache=out: (H, W, C)."""
    return np.where(cache > 0, dout, 0).astype(dout.dtype, copy=False)


# ---------------------------------------------------------------------------
# 2x2 stride-2 pooling. Odd sizes are floored (as Keras and PyTorch do; Caffe rounds up):
# a last row/column that does not fill a window is dropped and gets zero gradient.
# ---------------------------------------------------------------------------

def _windows(x):
    """x: (H, W, C) -> (H//2, 2, W//2, 2, C) view of the 2x2 windows (odd edges cropped)."""
    H, W, C = x.shape
    Ho, Wo = H // 2, W // 2
    return x[:2 * Ho, :2 * Wo].reshape(Ho, 2, Wo, 2, C)


def avgpool_forward(x):
    """Average pooling, 2x2 windows, stride 2 (Gatys et al. replace max by average).

    x: (H, W, C) -> out: (H//2, W//2, C); cache = x.shape.
    """
    return _windows(x).mean(axis=(1, 3)), x.shape


def avgpool_backward(dout, cache):
    """Each of the 4 inputs of a window gets a quarter of its output's gradient.

    dout: (H//2, W//2, C), cache = (H, W, C) -> dx: (H, W, C)
    """
    H, W, C = cache
    Ho, Wo, _ = dout.shape
    dx = np.zeros((H, W, C), dtype=dout.dtype)
    dx[:2 * Ho, :2 * Wo] = (dout * 0.25)[:, None, :, None, :].repeat(2, 1).repeat(2, 3).reshape(2 * Ho, 2 * Wo, C)
    return dx


def maxpool_forward(x):
    """Max pooling, 2x2 windows, stride 2 (what the ImageNet weights were trained with).

    x: (H, W, C) -> out: (H//2, W//2, C); cache = (x.shape, argmax), where
    argmax: (H//2, W//2, C) is the position 0..3 of the maximum inside each window
    (row-major; on ties the first one wins, as in PyTorch).
    """
    Ho, _, Wo, _, C = _windows(x).shape
    win = _windows(x).transpose(0, 2, 4, 1, 3).reshape(Ho, Wo, C, 4)  # (Ho, Wo, C, 4)
    idx = win.argmax(axis=3)
    out = np.take_along_axis(win, idx[..., None], axis=3)[..., 0]
    return out, (x.shape, idx)


def maxpool_backward(dout, cache):
    """The whole gradient goes to the input that was the maximum of its window.

    dout: (H//2, W//2, C), cache = (x.shape, argmax) -> dx: (H, W, C)
    """
    (H, W, C), idx = cache
    Ho, Wo, _ = dout.shape
    onehot = idx[..., None] == np.arange(4)                    # (Ho, Wo, C, 4)
    dwin = np.where(onehot, dout[..., None], 0).astype(dout.dtype, copy=False)
    # Undo the forward's transpose(0, 2, 4, 1, 3): axes (Ho, Wo, C, row, col) back to (Ho, row, Wo, col, C).
    dwin = dwin.reshape(Ho, Wo, C, 2, 2).transpose(0, 3, 1, 4, 2)  # (Ho, 2, Wo, 2, C)
    dx = np.zeros((H, W, C), dtype=dout.dtype)
    dx[:2 * Ho, :2 * Wo] = dwin.reshape(2 * Ho, 2 * Wo, C)
    return dx
