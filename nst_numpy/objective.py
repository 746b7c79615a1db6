"""The style-transfer objective: eq. 7 of Gatys et al. 2016 (plus TV), its value and gradient.

    f = make_objective(net, content, [(style, 1.0)], Config())
    loss, grad = f(x_flat)          # x_flat: float64, the network-space image raveled
    f.parts                         # {"content": ..., "style": ..., "tv": ...} of that call

One objective for both networks. It picks by what the network offers: the reference
vgg.VGG19 gets each style gradient as an array, eq. 6 computed literally
(losses.style_layer_loss); the engine fast.FastVGG19, which can form F @ K itself,
gets only K (fast.ActivationTimes) and never holds the (H, W, C) product.

The image being optimised lives in network space (the output of net.preprocess),
so the optimiser works directly on what the first conv sees; pixel bounds and the
TV term are mapped through net.preprocessing, so they mean the same for every
channel order, scale and std.
"""
import numpy as np

from .fast import ActivationTimes
from .losses import content_loss, gram_matrix_banded, style_layer_loss, style_loss_from_gram, tv_loss_banded
from .vgg_spec import activation_shape


def pixel_bounds(net):
    """Per network channel (lo, hi), each (3,): where RGB 0 and 255 land after preprocessing."""
    pre = net.preprocessing
    lo = pre.preprocess(np.zeros((1, 1, 3)), np.float64).reshape(3)
    hi = pre.preprocess(np.full((1, 1, 3), 255.0), np.float64).reshape(3)
    return lo, hi


def factors_style_gradient(net):
    """True for a network that forms eq. 6's F @ K inside its backward pass (fast.FastVGG19)."""
    return hasattr(net, "gram")


class Objective:
    """f(x_flat float64) -> (loss float, grad float64 flat), for scipy's L-BFGS-B (jac=True).

    Built by make_objective; the targets are computed once here. After each call,
    self.parts holds the weighted content, style and tv terms of that call, and
    self.style_parts the style term of each layer.
    """

    def __init__(self, net, content, styles, config, shape=None):
        config.validate()
        self.net = net
        self.config = config
        if content is not None:
            shape = np.shape(content)
        if shape is None or len(shape) != 3 or shape[2] != 3:
            raise ValueError("make_objective needs a content image (H, W, 3) or, for texture synthesis, shape=(H, W, 3)")
        self.shape = tuple(int(s) for s in shape)
        self.content_layers = tuple(config.content_layers) if content is not None else ()
        self.style_layers = tuple(config.style_layers)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        empty = [n for n, (M, _) in _layer_sizes(self.shape, self.layers).items() if M == 0]
        if empty:
            raise ValueError(f"a {self.shape[1]}x{self.shape[0]} image is too small for layer(s) {', '.join(empty)}")
        self.P, self.content_w = self._content_targets(content)
        self.A, self.style_w = self._style_targets(styles)
        # TV on the image in 0..1 RGB units: network value / (pixel_step * 255), per channel.
        self.tv_scale = 1.0 / (net.preprocessing.pixel_step() * 255.0)  # (3,), network channel order
        self.tv_w = config.tv_weight / (self.shape[0] * self.shape[1])
        self.parts = {}
        self.style_parts = {}   # the last call's weighted style term per layer (they sum to parts["style"])

    def _content_targets(self, content):
        """Content targets P^l (the content image's activations) and their weights alpha / n_c / Z_c."""
        P, weights = {}, {}
        if content is None or not self.content_layers:   # no content term (Config(content_layers=()))
            return P, weights
        cfg = self.config
        acts = self._features(np.asarray(content, self.net.dtype), self.content_layers)
        for name in self.content_layers:
            P[name] = acts[name]
            z = 0.5 * float(np.sum(P[name].astype(np.float64) ** 2)) if cfg.normalize else 1.0
            weights[name] = cfg.content_weight / len(self.content_layers) / max(z, 1e-30)
        return P, weights

    def _style_targets(self, styles):
        """Style targets A^l, the blend of the style images' Gram matrices, and their weights beta w_l / Z_l.

        styles: [(preprocessed image, blend weight)]. A Gram matrix sums over positions, so a
        style image with M_s positions at a layer is rescaled by M / M_s to the output's M
        positions (the paper assumes equal sizes).
        """
        if not styles:
            raise ValueError("at least one style image is needed")
        blend = np.array([float(w) for _, w in styles])
        if not (np.all(np.isfinite(blend)) and np.all(blend >= 0) and blend.sum() > 0):
            raise ValueError(f"style blend weights must be >= 0 and not all zero, got {blend.tolist()}")
        blend = blend / blend.sum()
        sizes = _layer_sizes(self.shape, self.style_layers)
        A = {name: np.zeros((sizes[name][1],) * 2, np.float64) for name in self.style_layers}
        for (img, _), b in zip(styles, blend):
            if b <= 0:   # a style weighted out of the blend: skip its network pass
                continue
            img = np.asarray(img, self.net.dtype)
            empty = [n for n, (M_s, _) in _layer_sizes(img.shape, self.style_layers).items() if M_s == 0]
            if empty:
                raise ValueError(f"a style image of {img.shape[1]}x{img.shape[0]} px is too small for {empty[0]}")
            for name, G in self._grams(img, self.style_layers).items():
                M_s = _layer_sizes(img.shape, [name])[name][0]
                A[name] += b * (sizes[name][0] / M_s) * G   # eq. 3, in float64
        cfg, weights = self.config, {}
        for name, w in zip(self.style_layers, cfg.layer_weights()):
            M, N = sizes[name]
            z = float(np.sum(A[name] * A[name])) / (4.0 * N ** 2 * M ** 2) if cfg.normalize else 1.0
            A[name] = A[name].astype(self.net.dtype)
            weights[name] = cfg.style_weight * w / max(z, 1e-30)
        return A, weights

    def _features(self, img, layers):
        """{name: activation (H_l, W_l, C_l)} of image img (H, W, 3), fresh arrays (tiled_objective: by tiles)."""
        return self.net.forward(img, layers, copy=True)

    def _grams(self, img, layers):
        """{name: Gram matrix (C_l, C_l) in float64} of image img (H, W, 3) (tiled_objective: by tiles)."""
        acts = self.net.forward(img, layers, copy=False)
        return {name: gram_matrix_banded(acts[name]) for name in layers}

    def __call__(self, x_flat):
        x = np.asarray(x_flat).reshape(self.shape).astype(self.net.dtype)  # float32 for real runs
        parts = {"content": 0.0, "style": 0.0, "tv": 0.0}
        dx = self._network_terms(x, parts)
        tv = tv_loss_banded(x, self.tv_scale.astype(x.dtype), dx, x.dtype.type(self.tv_w))   # losses.tv_loss, banded
        parts["tv"] = self.tv_w * tv
        self.parts = parts
        loss = parts["content"] + parts["style"] + parts["tv"]  # Gatys et al. 2016, eq. 7 (+ TV)
        return loss, np.asarray(dx, np.float64).reshape(-1)   # a copy unless dx is float64 already (tiled)

    def _network_terms(self, x, parts):
        """Adds the content and style terms at image x (H, W, 3) to parts; returns their gradient dx (H, W, 3)."""
        dt = self.net.dtype
        acts = self.net.forward(x, self.layers, copy=False)  # views, read before backward() below
        grads = {}
        for name in self.content_layers:
            loss, g = content_loss(acts[name], self.P[name])   # eq. 1 and 2
            w = self.content_w[name]
            parts["content"] += w * loss
            g *= dt.type(w)   # in place: g is the loss's own array
            grads[name] = g
        for name in self.style_layers:
            self.style_parts[name] = self._style_term(name, acts[name], grads)
            parts["style"] += self.style_parts[name]
        return self.net.backward(grads)

    def _style_term(self, name, F, grads):
        """Layer name's weighted style loss w_l E_l (eq. 4, 5); adds its gradient to grads[name].

        F: the layer's activation (H, W, C). A layer may serve both content and style: then
        its two gradients are summed, as the activation feeds both terms.
        """
        dt, w = self.net.dtype, self.style_w[name]
        if not factors_style_gradient(self.net):   # the reference network: eq. 6 as an array
            loss, g = style_layer_loss(F, self.A[name])   # dE/dF = F @ K, (H, W, C)
            g *= dt.type(w)
            grads[name] = g if name not in grads else grads[name] + g
            return w * loss
        # The engine: the Gram matrix split over its threads (FastVGG19.gram), and dE/dF = F @ K
        # formed by backward band by band; a content gradient at the same layer rides along as plus.
        loss, K = style_loss_from_gram(self.net.gram(name), self.A[name], F.shape[0] * F.shape[1])
        K *= dt.type(w)
        grads[name] = ActivationTimes(K, plus=grads.get(name))
        return w * loss


def _layer_sizes(shape, layers):
    """{name: (M, N)}: positions and channels of each layer for an input of shape (H, W, ...).

    Convolutions keep the size (3x3, padding 1); each 2x2 pooling halves it, rounding down.
    """
    sizes = {}
    for name in layers:
        H, W, C = activation_shape(name, shape[:2])
        sizes[name] = (H * W, C)
    return sizes


def make_objective(net, content, styles, config, shape=None, tile_size=None):
    """The objective over the network-space image, ready for scipy L-BFGS-B with jac=True.

    net: a VGG19 or FastVGG19 (its dtype is the compute dtype). content: preprocessed (H, W, 3)
    or None for texture synthesis (then pass shape=(H, W, 3)). styles: [(preprocessed
    (H_s, W_s, 3), blend weight), ...]. config: a Config. Returns an Objective f with
    f(x_flat float64 of H*W*3) -> (loss float, grad float64 (H*W*3,)), and f.parts.

        loss = sum_c a_c * 1/2 sum (F_c - P_c)^2                      eq. 1, weighted
             + sum_l b_l * 1/(4 N_l^2 M_l^2) sum (G_l - A_l)^2         eq. 4, weighted
             + t * TV(x * tv_scale)

    with a_c = f.content_w[c], b_l = f.style_w[l], t = f.tv_w, tv_scale = f.tv_scale
    (per channel) and A_l = f.A[l]: see config.py for how they follow from alpha, beta, gamma.

    tile_size: the side of a tile's core in px (a multiple of 16) to evaluate f tile by tile
    (tiled_objective.TiledObjective: the same loss and gradient in less memory), or None
    for one pass over the whole image.
    """
    if tile_size:
        from .tiled_objective import TiledObjective   # imports this module
        return TiledObjective(net, content, styles, config, shape=shape, tile_size=tile_size)
    return Objective(net, content, styles, config, shape=shape)
