"""Gatys et al.'s normalised VGG19: every filter scaled so that its mean ReLU activation is 1.

    images = load_images("photos/", max_side=256)   # RGB (H, W, 3) arrays in 0..255
    normed = normalize_vgg19(get_vgg19(), images)    # the same network up to a positive scale per channel

scripts/normalize_weights.py runs it and saves the result in the converted format (weights.save_converted).
"""
import pathlib

import numpy as np

from .console import one_line
from .vgg_spec import CONV_NAMES
from .weights import WeightsError


def mean_activations(net, images):
    """Mean of each ReLU output channel over positions and images (each image weighs the same).

    images: list of RGB (H, W, 3) arrays in 0..255. Returns {"relu1_1": (64,), ...} in float64.
    Computed with average pooling, as Gatys et al. did.
    """
    avg = net if net.pooling == "avg" else type(net).from_arrays(net.params, pooling="avg",
                                                                 preprocessing=net.preprocessing, dtype=net.dtype)
    relus = ["relu" + n[4:] for n in CONV_NAMES]
    sums = {r: 0.0 for r in relus}
    for rgb in images:
        acts = avg.forward(avg.preprocess(rgb), relus)
        for r in relus:
            sums[r] += acts[r].mean(axis=(0, 1), dtype=np.float64)  # (C,)
    return {r: s / len(images) for r, s in sums.items()}


def normalize_vgg19(net, images):
    """Gatys et al.'s normalised VGG19: scale every filter so its mean ReLU activation on images is 1.

    ReLU and pooling commute with a positive per-channel scale s_k, so dividing conv_l's kernel[..., k]
    and bias[k] by s_k divides channel k of every later activation of that layer by s_k; multiplying
    the next conv's input weights kernel[:, :, k, :] by s_k undoes it for the layers after. The network
    computes the same thing up to a positive scale per channel. Dead filters (mean 0) are left as they
    are. Returns a new network of net's class (same pooling, preprocessing and dtype); its `dead_filters` attribute lists
    {relu name: [channel indices]} that were left unscaled.
    """
    if not images:
        raise WeightsError("normalisation needs at least one image")
    means = mean_activations(net, images)  # of the original net; earlier rescales never change these
    params = {n: [np.array(k, np.float64), np.array(b, np.float64)] for n, (k, b) in net.params.items()}
    dead = {}
    for i, name in enumerate(CONV_NAMES):
        relu = "relu" + name[4:]
        m = means[relu]
        alive = m > 0
        s = np.where(alive, m, 1.0)  # (C_out,); 1 leaves a dead filter unscaled
        if not alive.all():
            dead[relu] = np.flatnonzero(~alive).tolist()
        params[name][0] /= s          # kernel (3, 3, C_in, C_out) / s over C_out
        params[name][1] /= s
        if i + 1 < len(CONV_NAMES):
            params[CONV_NAMES[i + 1]][0] *= s[:, None]  # next kernel (3, 3, C_out, C_next): rows of input channels
    out = type(net).from_arrays({n: tuple(p) for n, p in params.items()}, pooling=net.pooling,
                                preprocessing=net.preprocessing, dtype=net.dtype)
    out.dead_filters = dead
    return out


def load_images(directory, max_side=256):
    """Every image file in directory as RGB float64 (H, W, 3) in 0..255, shrunk to a longest side of at most max_side.
    Converted as stylize's inputs are (image.py: EXIF orientation, 16-bit scaled, transparency on white)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from .image import _to_rgb, resize
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise WeightsError(f"image directory {directory} {what}")
    images = []
    for p in sorted(directory.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        try:
            with Image.open(p) as im:
                rgb = _to_rgb(ImageOps.exif_transpose(im))   # as a camera's photo is shown
        except UnidentifiedImageError:
            continue  # not an image (a README, a .DS_Store ...): skip it
        except OSError as e:   # an image, but truncated or unreadable: skipping it would bias the means unseen
            raise WeightsError(f"{p}: cannot read image ({one_line(e)})") from None
        except Image.DecompressionBombError:
            raise WeightsError(f"{p}: too many pixels to decode safely") from None
        except ValueError as e:   # e.g. a float image holding NaN
            raise WeightsError(f"{p}: {e}") from None
        h, w = rgb.shape[:2]
        scale = max_side / max(h, w)
        if scale < 1:  # only shrink: enlarging adds no information
            rgb = resize(rgb, (max(1, round(h * scale)), max(1, round(w * scale))))
        images.append(rgb.astype(np.float64))
    if not images:
        raise WeightsError(f"no readable images in {directory}")
    return images
