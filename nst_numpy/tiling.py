"""Exact tiled evaluation: the geometry of tiles, and the work on one tile as a pure function.

Why an exact tiling exists. Every term of the objective is a sum over positions:

- the content loss (eq. 1) is 1/2 sum_p |F_p - P_p|^2, and so is its gradient (eq. 2);
- a Gram matrix (eq. 3) is G = sum_p f_p f_p^T, so tiles that each add up the positions
  they *own* (their core) give G exactly. The style loss E(G) (eq. 4) and
  K = (G - A) / (N^2 M^2) (eq. 6: dE/dF = F K; K is 2 dE/dG, F being in G twice) then
  follow for the whole image;
- the gradient of a sum of per-position terms is the sum, over tiles, of the gradient of
  the terms each tile owns. A tile injects F K (style) and F - P (content) at its own
  positions only, runs backward, and adds the resulting dx into the image at its window:
  what lands in the halo is a contribution to the neighbour's pixels, and `+=` sums it.

When a tile's activations are exact. A position of a layer depends only on the input
pixels in its receptive field. A tile reads a *window*: its core plus a halo on every side
that is not the image's edge. If the halo covers the receptive field of the deepest tapped
layer, every owned position sees exactly the pixels it sees in the whole image, and every
value on its way there is computed from pixels inside the window, so the zero padding
at the window's edge never reaches it. For VGG19's relu5_1 the field is 156 px, reaching
70 px above an output's 16 px cell and 70 px below it (see reach); a window's halo is
that rounded up to 80, a multiple of 16, because windows must start at multiples of 16:
then the four 2x2 poolings see the same windows as in the whole image.

Cost: pass 1 runs each window forward (Gram shares), pass 2 forward and backward
(gradient shares), so an evaluation costs one extra forward plus the halo's share.

Every window of one plan has the same shape (cores of equal size, windows clamped to the
image), so the engine's buffer arena (fast/buffers.py) plans once and reuses its memory.
"""
import math
from dataclasses import dataclass

import numpy as np

from .fast.activation_times import ActivationTimes
from .losses import content_loss, gram_matrix_banded
from .objective import factors_style_gradient
from .vgg_spec import LAYER_NAMES

ALIGN = 16   # window offsets are multiples of 2^4: VGG19's four 2x2 poolings up to conv5_1


def reach(layer):
    """(L, R, s): position i of `layer` (stride s in input pixels) depends on input rows s*i - L .. s*i + R."""
    L, R, s = 0, 0, 1
    for name in LAYER_NAMES[:LAYER_NAMES.index(layer) + 1]:
        if name.startswith("conv"):      # 3x3, padding 1: one position more on each side, at this stride
            L, R = L + s, R + s
        elif name.startswith("pool"):    # 2x2, stride 2: position i covers 2i and 2i+1 of the layer below
            R, s = R + s, 2 * s
    return L, R, s


def halo_for(layers):
    """Pixels a window must extend beyond its core, on each inner side, for `layers` to be exact there.

    A core [y0, y1) (multiples of the stride s) owns positions y0/s .. y1/s - 1, which need rows
    y0 - L .. y1 - s + R: L above, R - s + 1 below. Rounded up to a multiple of ALIGN.
    """
    need = max(max(L, R - s + 1) for L, R, s in map(reach, layers))
    return ALIGN * math.ceil(need / ALIGN)


@dataclass(frozen=True)
class Tile:
    """core: (y0, y1, x0, x1) the pixels whose layer positions this tile owns; window:
    (a0, a1, b0, b1) the pixels it reads. Both half-open, in the image's pixel coordinates."""
    core: tuple
    window: tuple

    def pixels(self, x):
        """The window of image x (H, W, ...) -> (a1 - a0, b1 - b0, ...), a view."""
        a0, a1, b0, b1 = self.window
        return x[a0:a1, b0:b1]

    def owned(self, stride):
        """(r0, r1, c0, c1): the owned positions of a layer of this stride, in the window's layer."""
        (y0, y1, x0, x1), (a0, _, b0, _) = self.core, self.window
        return (y0 // stride - a0 // stride, y1 // stride - a0 // stride,
                x0 // stride - b0 // stride, x1 // stride - b0 // stride)

    def owned_in_image(self, stride):
        """(r0, r1, c0, c1): the same positions in the whole image's layer."""
        y0, y1, x0, x1 = self.core
        return y0 // stride, y1 // stride, x0 // stride, x1 // stride


def _axis(n, core, halo):
    """[(c0, c1, a0, a1)] along one axis of n pixels: cores of at most `core` px, windows of one length.

    Cores are balanced (a thin last core would waste a whole window). The window length T is
    core + 2 halo + (n mod ALIGN), so that a window clamped to end at n still starts at a
    multiple of ALIGN: n - T = ALIGN * (n // ALIGN) - core - 2 halo. With two cores, each
    touches an edge of the image and needs a halo on one side only, so T drops one halo:
    the second window, clamped to end at n, starts at n - T <= core - halo because n <= 2 core.
    """
    k = -(-n // core)
    core = ALIGN * -(-n // (k * ALIGN))    # balanced, a multiple of ALIGN
    T = core + (1 if k == 2 else 2) * halo + n % ALIGN
    if T >= n:
        return [(0, n, 0, n)]
    out = []
    for c0 in range(0, n, core):
        a0 = min(max(c0 - halo, 0), n - T)   # a multiple of ALIGN: each term is
        out.append((c0, min(n, c0 + core), a0, a0 + T))
    return out


def plan_tiles(hw, core, layers, halo=None):
    """Tiles covering an image of hw = (H, W) with cores of at most core x core px (a multiple of ALIGN).
    halo: None for halo_for(layers); tests pass a smaller one to show that it is needed."""
    if core < ALIGN or core % ALIGN:
        raise ValueError(f"tile size must be a positive multiple of {ALIGN} px, got {core}")
    deep = [n for n in layers if stride_of(n) > ALIGN]
    if deep:   # pool5's 2x2 pairs would start at odd multiples of 16 in some windows: other pairs than untiled
        raise ValueError(f"tiles reach layers up to conv5_4 (stride {ALIGN} px), not {', '.join(deep)}")
    halo = halo_for(layers) if halo is None else halo
    return [Tile((y0, y1, x0, x1), (a0, a1, b0, b1))
            for y0, y1, a0, a1 in _axis(hw[0], core, halo) for x0, x1, b0, b1 in _axis(hw[1], core, halo)]


def stride_of(layer):
    """Input pixels per position of `layer`: 2 ** (poolings at or below it)."""
    return reach(layer)[2]


def _own(F, tile, name):
    """The positions of activation F (h, w, C) of window layer `name` that the tile owns: a view (h', w', C)."""
    r0, r1, c0, c1 = tile.owned(stride_of(name))
    return F[r0:r1, c0:c1]


# -- the work on one tile: pure functions of (network, window, tile, what the pass needs) ---------

def tile_features(net, window, tile, layers):
    """Forward pass on one window (h, w, 3): {name: its owned activations (h', w', C), copies}, for the
    content targets."""
    acts = net.forward(window, layers, copy=False)
    return {name: _own(acts[name], tile, name).copy() for name in layers}


def tile_grams(net, window, tile, layers, run_layers=None, acts=None):
    """Pass 1 on one window: {name: the Gram matrix (C, C) float64 of its owned positions (eq. 3)}.

    run_layers: what the forward pass computes (a superset of layers); pass 2's list, so that
    this forward pass is the start of pass 2's (the arena then keeps one plan).
    acts: this window's activations, if the caller has just run net.forward on it itself.
    """
    if acts is None:
        acts = net.forward(window, list(run_layers or layers), copy=False)
    return {name: gram_matrix_banded(_own(acts[name], tile, name), acts[name].dtype) for name in layers}


def tile_gradient(net, window, tile, layers, K, content, acts=None):
    """Pass 2 on one window: (dx window (h, w, 3), its share of the weighted content loss).

    K: {style layer: w_l (G_l - A_l) / (N_l² M_l²) = 2 w_l dE_l/dG_l (C, C)} from the whole image's Gram
    matrices (eq. 6);
    content: {content layer: (owned target P (h_l, w_l, C), weight a_c)} (eq. 1, 2).
    Gradients go in at owned positions only; dx also covers the halo, for the caller to add.
    acts: the activations of the forward pass the network has just run on this window with
    these layers (pass 1's last tile), so that it need not run again; None runs it.
    """
    if acts is None:
        acts = net.forward(window, layers, copy=False)
    grads, loss = {}, 0.0
    for name, (P, w) in content.items():
        l, g_own = content_loss(_own(acts[name], tile, name), P)   # eq. 1 and 2 on owned positions
        loss += w * l
        g = np.zeros(acts[name].shape, acts[name].dtype)
        _own(g, tile, name)[...] = g_own * g.dtype.type(w)
        grads[name] = g
    factored = factors_style_gradient(net)   # the engine forms F @ K itself
    for name, k in K.items():
        if factored:
            grads[name] = ActivationTimes(k, plus=grads.get(name), window=tile.owned(stride_of(name)))
            continue
        F = acts[name]
        g = np.zeros(F.shape, F.dtype)
        _own(g, tile, name)[...] = np.matmul(_own(F, tile, name), k)   # eq. 6 on owned positions
        grads[name] = g if name not in grads else grads[name] + g    # both content and style: sum
    return net.backward(grads), loss
