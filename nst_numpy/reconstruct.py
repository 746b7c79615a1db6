"""Figure 1 of Gatys et al.: what one layer of VGG19 "knows" about an image.

Start from white noise and change the pixels until the network's response to
them matches a target image's response at chosen layers, and nothing else:

- content reconstruction from one layer l: minimise the content loss at l alone
  (Gatys et al. 2016, eq. 1). Shallow layers keep the exact pixels; deep layers
  keep the arrangement of objects but lose the detail.
- style reconstruction from a set of layers: minimise the style loss over those
  layers' Gram matrices (eq. 4 and 5). The Gram matrix forgets where things are,
  so what comes back is a texture; with deeper layers its structures grow larger.

The paper calls the layers conv1_2 ... conv5_2 and conv1_1 ... conv5_1. Its Caffe
network applied each ReLU in place, so the responses stored under those names are
rectified: our relu1_2 ... relu5_2 and relu1_1 ... relu5_1.
"""
import os

import numpy as np
from PIL import Image, ImageDraw

from .config import Config
from .image import to_uint8
from .losses import content_loss
from .objective import make_objective, pixel_bounds
from .lbfgs import run_lbfgs
from .weights import WeightsError, get_vgg19, network_class

CONTENT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_SETS = tuple(STYLE_LAYERS[:k] for k in range(1, 6))  # relu1_1; relu1_1+relu2_1; ...
RANDOM_NOTE = "random weights: shows the pipeline, not the real Figure 1"


class ContentObjective:
    """f(x_flat) -> (loss, grad): the content loss at one layer only, for L-BFGS.

    net: a VGG19 or FastVGG19; content: preprocessed (H, W, 3); layer: a name from LAYER_NAMES.
    The loss is divided by that of an all-zero response, 1/2 sum P^2, so at every layer
    it reads as a relative error (0 at a perfect match), as in config.py's normalisation.
    """

    def __init__(self, net, content, layer):
        self.net, self.layer, self.shape = net, layer, np.shape(content)
        self.P = net.forward(content, [layer])[layer].copy()  # (H_l, W_l, C_l), the target
        self.scale = 1.0 / max(0.5 * float(np.sum(self.P.astype(np.float64) ** 2)), 1e-30)

    def __call__(self, x_flat):
        x = x_flat.reshape(self.shape).astype(self.net.dtype)
        F = self.net.forward(x, [self.layer])[self.layer]
        loss, dF = content_loss(F, self.P)                             # Gatys et al. 2016, eq. 1 and 2
        dx = self.net.backward({self.layer: dF * self.net.dtype.type(self.scale)})  # (H, W, 3)
        return loss * self.scale, dx.astype(np.float64).reshape(-1)


def style_objective(net, style, layers, shape):
    """f(x_flat) -> (loss, grad): the style loss over `layers` only (texture synthesis).

    style: preprocessed (H_s, W_s, 3); shape: (H, W, 3) of the image to synthesise.
    Equal weights w_l = 1/len(layers) (eq. 5); each E_l normalised as in config.py.
    """
    config = Config(style_layers=tuple(layers), content_weight=0.0, style_weight=1.0, tv_weight=0.0)
    return make_objective(net, None, [(style, 1.0)], config, shape=shape)


def minimise_in_box(f, x0, net, iterations):
    """Minimise f from x0 (network space, (H, W, 3)) with L-BFGS-B, pixels kept inside 0..255.

    Returns the final image in network space, (H, W, 3) float64. The optimiser is
    the one stylize uses (lbfgs.run_lbfgs), run plain: 10 correction pairs and no step sizes,
    as in a run with --min-improvement 0. Only the bounds are set up here.
    """
    lo, hi = (np.broadcast_to(b, x0.shape).reshape(-1) for b in pixel_bounds(net))  # per channel -> per pixel
    return run_lbfgs(f, np.asarray(x0, np.float64).reshape(-1), lo, hi, iterations).reshape(x0.shape)


def white_noise(net, shape, seed):
    """Uniform RGB noise in 0..255, preprocessed for net: the starting point of every reconstruction."""
    return net.preprocess(np.random.default_rng(seed).uniform(0, 255, shape))


def reconstruct_content(net, content_rgb, layer, iterations, seed=0):
    """content_rgb: (H, W, 3) in 0..255 -> RGB uint8 (H, W, 3) rebuilt from noise via `layer` alone."""
    content = net.preprocess(content_rgb)
    x = minimise_in_box(ContentObjective(net, content, layer), white_noise(net, content.shape, seed), net, iterations)
    return to_uint8(net.deprocess(x))


def reconstruct_style(net, style_rgb, layers, shape, iterations, seed=0):
    """style_rgb: (H_s, W_s, 3) in 0..255 -> RGB uint8 of `shape` with the Gram matrices of `layers`."""
    f = style_objective(net, net.preprocess(style_rgb), layers, shape)
    return to_uint8(net.deprocess(minimise_in_box(f, white_noise(net, shape, seed), net, iterations)))


def figure1(net, content_rgb, style_rgb, iterations, seed=0, title="", progress=None):
    """The whole figure as a PIL image: two labelled rows of 6 cells.

    Row 1: the content image, then its reconstructions from each of CONTENT_LAYERS.
    Row 2: the style image, then its reconstructions from each of STYLE_SETS.
    content_rgb, style_rgb: (H, W, 3) in 0..255 (resize them first; every style
    reconstruction has the content image's size). progress: optional callable(str).
    """
    say = progress or (lambda message: None)
    content_row, style_row = [to_uint8(content_rgb)], [to_uint8(style_rgb)]
    for layer in CONTENT_LAYERS:
        say(f"content from {layer}")
        content_row.append(reconstruct_content(net, content_rgb, layer, iterations, seed))
    for layers in STYLE_SETS:
        say(f"style from {'+'.join(layers)}")
        style_row.append(reconstruct_style(net, style_rgb, layers, np.shape(content_rgb), iterations, seed))
    content_labels = ["content"] + list(CONTENT_LAYERS)
    style_labels = ["style"] + ["relu1_1"] + ["+" + layers[-1] for layers in STYLE_SETS[1:]]
    return grid([content_row, style_row], [content_labels, style_labels], title)


def grid(rows, labels, title="", pad=4, label_height=14):
    """Lay out rows of RGB uint8 images (cells may differ in size) with a label above each.

    rows: list of lists of (H, W, 3) uint8; labels: matching lists of strings.
    Returns a PIL RGB image; text is drawn with Pillow's default bitmap font.
    """
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(measure.textlength(name) for names in labels for name in names)
    cell_w = max(max(img.shape[1] for row in rows for img in row), int(text_w) + pad)  # labels never overlap
    cell_h = max(img.shape[0] for row in rows for img in row)
    top = label_height + pad if title else 0
    width = max(pad + len(rows[0]) * (cell_w + pad), int(measure.textlength(title)) + 2 * pad)
    height = top + pad + len(rows) * (label_height + cell_h + pad)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), title, fill="black")
    for r, (row, names) in enumerate(zip(rows, labels)):
        y = top + pad + r * (label_height + cell_h + pad)
        for c, (img, name) in enumerate(zip(row, names)):
            x = pad + c * (cell_w + pad)
            draw.text((x, y), name, fill="black")
            canvas.paste(Image.fromarray(img), (x, y + label_height))
    return canvas


def load_network(weights, pooling, seed, engine="fast"):
    """--weights value (a path, None for the default file, or "random") -> (network, title for the figure).

    engine: "fast" (FastVGG19) or "reference" (VGG19). Never downloads: a missing file raises
    WeightsError with a one-line message.
    """
    if weights == "random":
        return network_class(engine).random(seed=seed, pooling=pooling), RANDOM_NOTE
    try:
        net = get_vgg19(weights, pooling=pooling, download=False, engine=engine)
    except WeightsError as e:
        raise WeightsError(f"{e} (`python scripts/stylize.py` downloads the default weights on first use.) "
                           f"Or try --weights random to see the pipeline run.") from None
    return net, f"VGG19 weights: {os.path.basename(weights) if weights else 'default'}"
