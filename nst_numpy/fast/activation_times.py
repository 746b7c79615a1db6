"""ActivationTimes: a style gradient handed to FastVGG19.backward as K instead of as an array."""
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class ActivationTimes:
    """A gradient to inject at a layer, given as F @ K: that layer's own activation F (H, W, C)
    times K (C, C), plus an optional ordinary gradient (H, W, C).

    A style loss's gradient has this form (losses.style_loss_from_gram, Gatys et al. 2016,
    eq. 6). Handing backward() K instead of the (H, W, C) product lets it form the product
    band by band while the activation is in cache, just before overwriting it: no
    activation-sized array for it ever exists.

    window (w0, w1, c0, c1), rows w0..w1 and columns c0..c1, if given, limits F @ K to the positions a tile owns
    (tiling.py): outside it the product is 0, because those positions' losses belong to
    another tile. `plus` is added everywhere (the caller zeroes it outside the window).
    """
    K: np.ndarray
    plus: Optional[np.ndarray] = None
    window: Optional[tuple] = None

    def check_shape(self, name, shape):
        """Raise ValueError unless K is (C, C) and plus (if any) is shape, the activation's (H, W, C)."""
        if np.shape(self.K) != (shape[2], shape[2]):
            raise ValueError(f"the K for {name} has shape {np.shape(self.K)}; it needs ({shape[2]}, {shape[2]})")
        if self.plus is not None and np.shape(self.plus) != tuple(shape):
            raise ValueError(f"the plus for {name} has shape {np.shape(self.plus)}; its activation has shape {shape}")

    def rows(self, F, r0, r1):
        """Rows r0..r1 of F @ K (+ plus), F: (H, W, C) the layer's activation -> (r1 - r0, W, C)."""
        if self.window is None:
            part = np.matmul(F[r0:r1], self.K)   # (rows, W, C) @ (C, C)
        else:
            w0, w1, c0, c1 = self.window
            part = np.zeros((r1 - r0,) + F.shape[1:], F.dtype)
            a, b = max(r0, w0), min(r1, w1)
            if a < b:
                part[a - r0:b - r0, c0:c1] = np.matmul(F[a:b, c0:c1], self.K)
        if self.plus is not None:
            part += self.plus[r0:r1]
        return part


BAND_BYTES = 4 << 20   # add_in_bands forms this many bytes of rows of F @ K at a time


def add_in_bands(dx, g_rows, accumulate=True):
    """dx += g (or dx = g if not accumulate), a band of rows at a time, so that an injected F @ K is
    never one activation-sized array.

    dx: (H, W, C), updated in place; g_rows(r0, r1): rows r0..r1 of g, (r1 - r0, W, C). Each band of
    g is formed before that band of dx is written, so g may be read from dx's own memory.
    """
    rows = max(1, BAND_BYTES // (dx.shape[1] * dx.shape[2] * dx.itemsize))
    for r0 in range(0, dx.shape[0], rows):
        r1 = min(r0 + rows, dx.shape[0])
        if accumulate:
            dx[r0:r1] += g_rows(r0, r1)   # sum: the activation feeds several terms
        else:
            dx[r0:r1] = g_rows(r0, r1)
