"""The style-transfer objective and the optimisers that minimise it.

    f = make_objective(net, content, [(style, 1.0)], Config())
    loss, grad = f(x_flat)          # x_flat: float64, the network-space image raveled
    f.parts                         # {"content": ..., "style": ..., "tv": ...} of that call

The image being optimised lives in network space (the output of net.preprocess),
so the optimiser works directly on what the first conv sees; pixel bounds and the
TV term are mapped through net.preprocessing, so they mean the same for every
channel order, scale and std.
"""
import numpy as np

from .losses import content_loss, gram_matrix, style_layer_loss, tv_loss


def pixel_bounds(net):
    """Per network channel (lo, hi), each (3,): where RGB 0 and 255 land after preprocessing."""
    pre = net.preprocessing
    lo = pre.preprocess(np.zeros((1, 1, 3)), np.float64).reshape(3)
    hi = pre.preprocess(np.full((1, 1, 3), 255.0), np.float64).reshape(3)
    return lo, hi


class Objective:
    """f(x_flat float64) -> (loss float, grad float64 flat), for scipy's L-BFGS-B (jac=True).

    Built by make_objective; the targets are computed once here. After each call,
    self.parts holds the weighted content, style and tv terms of that call.
    """

    def __init__(self, net, content, styles, config, shape=None):
        config.validate()
        self.net = net
        self.config = config
        dt = net.dtype
        if content is not None:
            shape = np.shape(content)
        if shape is None or len(shape) != 3 or shape[2] != 3:
            raise ValueError("make_objective needs a content image (H, W, 3) or, for texture synthesis, shape=(H, W, 3)")
        self.shape = tuple(int(s) for s in shape)
        if not styles:
            raise ValueError("at least one style image is needed")
        blend = np.array([float(w) for _, w in styles])
        if not (np.all(np.isfinite(blend)) and np.all(blend >= 0) and blend.sum() > 0):
            raise ValueError(f"style blend weights must be >= 0 and not all zero, got {blend.tolist()}")
        blend = blend / blend.sum()

        self.content_layers = tuple(config.content_layers) if content is not None else ()
        self.style_layers = tuple(config.style_layers)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))

        # Content targets P^l and their weights alpha / n_c / Z_c.
        self.P, self.content_w = {}, {}
        if content is not None:
            acts = net.forward(np.asarray(content, dt), self.content_layers)
            for name in self.content_layers:
                P = acts[name].copy()
                z = 0.5 * float(np.sum(P.astype(np.float64) ** 2)) if config.normalize else 1.0
                self.P[name] = P
                self.content_w[name] = config.content_weight / len(self.content_layers) / max(z, 1e-30)

        # Style targets A^l: the blend of the style images' Gram matrices. A Gram matrix
        # sums over positions, so a style image with M_s positions at a layer is rescaled
        # by M / M_s to the output's M positions (the paper assumes equal sizes).
        sizes = _layer_sizes(net, self.shape, self.style_layers)
        self.A = {name: np.zeros((sizes[name][1],) * 2, np.float64) for name in self.style_layers}
        for (img, _), b in zip(styles, blend):
            if b == 0:
                continue
            acts = net.forward(np.asarray(img, dt), self.style_layers)
            for name in self.style_layers:
                F = acts[name]
                M_s = F.shape[0] * F.shape[1]
                if M_s == 0:
                    raise ValueError(f"a style image of {np.shape(img)[1]}x{np.shape(img)[0]} px is too small for {name}")
                self.A[name] += b * (sizes[name][0] / M_s) * gram_matrix(F.astype(np.float64))
        self.style_w = {}
        for name, w in zip(self.style_layers, config.layer_weights()):
            M, N = sizes[name]
            A = self.A[name]
            z = float(np.sum(A * A)) / (4.0 * N ** 2 * M ** 2) if config.normalize else 1.0
            self.A[name] = A.astype(dt)
            self.style_w[name] = config.style_weight * w / max(z, 1e-30)

        # TV on the image in 0..1 RGB units: network value / (pixel_step * 255), per channel.
        self.tv_scale = 1.0 / (net.preprocessing.pixel_step() * 255.0)  # (3,), network channel order
        self.tv_w = config.tv_weight / (self.shape[0] * self.shape[1])
        self.parts = {}
        self.evaluations = 0

    def __call__(self, x_flat):
        dt = self.net.dtype
        x = np.asarray(x_flat).reshape(self.shape).astype(dt)  # float32 for real runs
        acts = self.net.forward(x, self.layers)
        grads = {}
        parts = {"content": 0.0, "style": 0.0, "tv": 0.0}
        for name in self.content_layers:
            loss, g = content_loss(acts[name], self.P[name])
            w = self.content_w[name]
            parts["content"] += w * loss
            grads[name] = g * dt.type(w)
        for name in self.style_layers:
            loss, g = style_layer_loss(acts[name], self.A[name])
            w = self.style_w[name]
            parts["style"] += w * loss
            g = g * dt.type(w)
            grads[name] = grads[name] + g if name in grads else g  # a layer may serve both content and style
        dx = self.net.backward(grads)
        scale = self.tv_scale.astype(dt)
        tv, dtv = tv_loss(x * scale)
        parts["tv"] = self.tv_w * tv
        dx += dtv * (scale * dt.type(self.tv_w))  # chain rule through x * scale
        self.parts = parts
        self.evaluations += 1
        loss = parts["content"] + parts["style"] + parts["tv"]  # Gatys et al. 2016, eq. 7 (+ TV)
        return loss, dx.astype(np.float64).reshape(-1)


def _layer_sizes(net, shape, layers):
    """{name: (M, N)} positions and channels of each layer for an input of the given shape."""
    probe = np.zeros((shape[0], shape[1], 3), net.dtype)
    acts = net.forward(probe, layers)
    return {n: (a.shape[0] * a.shape[1], a.shape[2]) for n, a in acts.items()}


def make_objective(net, content, styles, config, shape=None):
    """The objective over the network-space image, ready for scipy L-BFGS-B with jac=True.

    net: a VGG19 (its dtype is the compute dtype). content: preprocessed (H, W, 3) or None
    for texture synthesis (then pass shape=(H, W, 3)). styles: [(preprocessed (H_s, W_s, 3),
    blend weight), ...]. config: a Config. Returns an Objective f with
    f(x_flat float64 of H*W*3) -> (loss float, grad float64 (H*W*3,)), and f.parts.

        loss = sum_c a_c * 1/2 sum (F_c - P_c)^2                      eq. 1, weighted
             + sum_l b_l * 1/(4 N_l^2 M_l^2) sum (G_l - A_l)^2         eq. 4, weighted
             + g * TV(x * tv_scale)

    with a_c = f.content_w[c], b_l = f.style_w[l], g = f.tv_w, tv_scale = f.tv_scale
    (per channel) and A_l = f.A[l]: see config.py for how they follow from alpha, beta, gamma.
    """
    return Objective(net, content, styles, config, shape=shape)
