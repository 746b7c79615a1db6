"""The engine's 2x2 pooling, forward and backward, cut into row bands run on the worker threads.

Each band calls the reference layer functions themselves (layers.avgpool_forward /
maxpool_forward / *pool_backward) on a slice of rows: a 2x2 stride-2 window never crosses
a band boundary when bands hold whole output rows, so the bands together compute exactly
what one call on the whole image would. Small bands keep those functions' temporaries in
cache, and two threads share the memory-bound work. The backward also applies the ReLU
below the pool (layers.relu_backward) in the same bands, writing straight into the padded
buffer the next conv's backward reads. tests/test_engine_vs_reference.py checks both
poolings against vgg.VGG19 at odd sizes.
"""
import numpy as np

from .. import layers as L

ROWS_PER_BAND = 8   # pooled rows per band: keeps the layer functions' temporaries in cache


def relu_mask(src):
    """A ReLU's mask (H, W, C) bool from what the engine kept of it, src (H, W, C): the bool mask itself,
    or the ReLU's output (> 0)."""
    return src if src.dtype == bool else src > 0


def pool_forward(engine, x, out, argmax=None):
    """2x2 pooling of x (H, W, C) into out (H//2, W//2, C): average, or max when argmax is given,
    an (H//2, W//2, C) uint8 array that receives each window's winning position 0..3."""

    def band(r0, r1):
        if argmax is None:
            out[r0:r1] = L.avgpool_forward(x[2 * r0:2 * r1])[0]
        else:
            # Unpacking into slices writes in place; the int64 positions are 0..3, exact in uint8.
            out[r0:r1], (_, argmax[r0:r1]) = L.maxpool_forward(x[2 * r0:2 * r1])

    engine.map_rows(band, out.shape[0], ROWS_PER_BAND)


def pool_relu_backward(engine, dout, argmax, dst, mask_src, add_rows=None):
    """dst = (pool backward of dout + add_rows) * the ReLU's mask: the gradient at the input of
    the ReLU below the pool.

    dout: (H//2, W//2, C); argmax: as pool_forward's, or None for average pooling; dst: (H, W, C),
    may be the ReLU's own buffer (mask_src is then read band by band before dst is written);
    mask_src: the ReLU's output or bool mask, (H, W, C); add_rows(r0, r1): rows r0..r1 of a
    gradient injected at the ReLU, or None.
    """
    H, W, C = dst.shape

    def band(r0, r1):
        rows = slice(2 * r0, 2 * r1)
        if argmax is None:
            d = L.avgpool_backward(dout[r0:r1], (2 * (r1 - r0), W, C))
        else:
            d = L.maxpool_backward(dout[r0:r1], ((2 * (r1 - r0), W, C), argmax[r0:r1]))
        if add_rows is not None:
            d += add_rows(2 * r0, 2 * r1)
        m = relu_mask(mask_src[rows])   # read before dst is written
        np.multiply(d, m, out=dst[rows])

    engine.map_rows(band, dout.shape[0], ROWS_PER_BAND)
    if H % 2:   # an odd last row fed no window: no gradient from the pool
        last = relu_mask(mask_src[H - 1])
        dst[H - 1] = 0 if add_rows is None else add_rows(H - 1, H)[0] * last
