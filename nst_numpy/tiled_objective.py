"""TiledObjective: objective.Objective evaluated tile by tile, with the same loss and gradient.

Replaces: Objective._network_terms (one forward and backward over the whole image).
Proved by: tests/test_tiling.py (tiled equals untiled to 1e-9 in float64, both networks,
both poolings, odd sizes, a layer that is content and style, two style images; a halo one
pooling step too small fails). Why it is exact: tiling.py's docstring.

Memory: one window's network buffers, instead of the whole image's, plus the whole
image's gradient (float64, the optimiser's own array) and the content targets.
"""
import numpy as np

from .losses import style_loss_from_gram
from .objective import Objective, _layer_sizes
from .tiling import plan_tiles, stride_of, tile_features, tile_gradient, tile_grams


class TiledObjective(Objective):
    """Objective whose content and style terms are summed over tiles of `tile_size` px (see tiling.py).

    on_tile(done, total), if set, is called after each tile's pass: progress within one evaluation
    (2 passes x tiles).
    """

    def __init__(self, net, content, styles, config, shape=None, tile_size=512, halo=None):
        self.tile_size = int(tile_size)
        self.halo = halo          # None: tiling.halo_for the layers (tests shrink it to show it matters)
        self.on_tile = None
        super().__init__(net, content, styles, config, shape=shape)   # its targets use _features, _grams
        self.tiles = self._tiles(self.shape[:2], self.layers)

    def _tiles(self, hw, layers):
        return plan_tiles(hw, self.tile_size, layers, halo=self.halo)

    def _features(self, img, layers):
        """Objective._features by tiles: each tile's owned activations put in place."""
        sizes = _layer_sizes(img.shape, layers)
        out = {n: np.empty((img.shape[0] // stride_of(n), img.shape[1] // stride_of(n), sizes[n][1]), self.net.dtype)
               for n in layers}
        for t in self._tiles(img.shape[:2], layers):
            for n, F in tile_features(self.net, t.pixels(img), t, layers).items():
                r0, r1, c0, c1 = t.owned_in_image(stride_of(n))
                out[n][r0:r1, c0:c1] = F
        return out

    def _grams(self, img, layers):
        """Objective._grams by tiles: G = sum over tiles of their owned positions' Gram matrices (eq. 3)."""
        G = {n: 0.0 for n in layers}
        for t in self._tiles(img.shape[:2], layers):
            for n, g in tile_grams(self.net, t.pixels(img), t, layers).items():
                G[n] = G[n] + g
        return G

    def _network_terms(self, x, parts):
        """Objective._network_terms in two passes over the tiles (tiling.py)."""
        dt, n = self.net.dtype, len(self.tiles)
        sizes = _layer_sizes(self.shape, self.style_layers)
        G = {name: np.zeros((sizes[name][1],) * 2, np.float64) for name in self.style_layers}
        acts = None
        for i, t in enumerate(self.tiles):            # pass 1: the whole image's Gram matrices
            if i == n - 1:   # keep the last tile's forward pass: pass 2 starts with that tile
                acts = self.net.forward(t.pixels(x), self.layers, copy=False)
            for name, gram in tile_grams(self.net, t.pixels(x), t, self.style_layers, self.layers, acts).items():
                G[name] += gram
            self._report(i + 1, 2 * n)
        K = {}
        for name in self.style_layers:
            w = self.style_w[name]
            loss, k = style_loss_from_gram(G[name], self.A[name], sizes[name][0])   # eq. 4 and 6, whole image
            self.style_parts[name] = w * loss
            parts["style"] += w * loss
            K[name] = (k * w).astype(dt)
        dx = np.zeros(self.shape, np.float64)   # float64: what the optimiser takes, so no copy at the end
        # Pass 2, each tile's share of the gradient, in reverse: its first tile is pass 1's last,
        # whose forward pass is still in the network (acts), so it runs one forward pass fewer.
        for i, t in enumerate(reversed(self.tiles)):
            content = {}
            for name in self.content_layers:
                r0, r1, c0, c1 = t.owned_in_image(stride_of(name))
                content[name] = (self.P[name][r0:r1, c0:c1], self.content_w[name])
            dwindow, share = tile_gradient(self.net, t.pixels(x), t, self.layers, K, content, acts if i == 0 else None)
            parts["content"] += share
            t.pixels(dx)[...] += dwindow   # the halo's part is the neighbours' pixels' gradient: summed
            self._report(n + i + 1, 2 * n)
        return dx

    def _report(self, done, total):
        if self.on_tile is not None:
            self.on_tile(done, total)
