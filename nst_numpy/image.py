"""Reading, writing and resizing images; colour transfer and luminance (for colour preservation).

Images are float32 arrays (H, W, 3), RGB, values in 0..255. Every problem with a
file raises ImageError with a one-line message, which the CLI prints as
`error: ...` (exit status 2).
"""
import io
import os
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .console import one_line
from .fileio import atomic_path, temp_prefix

MIN_SIDE = 16             # relu5_1 sits after 4 poolings (each halves, rounding down): 16 px -> 1 position
MAX_PIXELS = 40_000_000   # larger inputs need --size to shrink them (memory: ~4 bytes * 3 per pixel, many copies)
HARD_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb limit: never decoded, even with --size

# ITU-R BT.601 RGB -> YIQ, as in Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer".
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


class ImageError(ValueError):
    """A problem with an input or output image, described in one line."""


def _has_alpha(im):
    """Whether a PIL image has an alpha channel or a transparent colour (which _to_rgb composites on white)."""
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info


def _grey_source(im):
    """(mode, largest value) of a 16- or 32-bit grey image as decoded, before _reduced averages it (which
    lowers the largest value that _to_rgb scales 32-bit I and F by); None for other modes. For I;16 the
    mode alone decides, so its largest value is not looked for."""
    if im.mode in ("I", "F"):
        return im.mode, float(im.getextrema()[1])   # Pillow skips NaN here; _to_rgb refuses it
    return (im.mode, None) if im.mode.startswith("I;16") else None


def _to_rgb(im, source=None):
    """A loaded PIL image of any mode -> float32 (H, W, 3) in 0..255.

    source: _grey_source of the image as decoded, when im is its reduction (perhaps from I;16B to I)."""
    mode, top = source or (im.mode, None)
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if not np.all(np.isfinite(a)):   # float TIFFs may hold inf or NaN: no picture to scale
            raise ValueError("its pixels include NaN or infinite values")   # load_image names the file
        if top is None:
            top = float(a.max()) if a.size else 0.0
        if mode.startswith("I;16"):
            a = a * (255.0 / 65535.0)     # 16-bit by its mode, however dark the picture
        elif mode == "F" and top <= 1.0:
            a = a * 255.0                 # float images in 0..1
        elif top > 255.0:
            # 32-bit "I" (e.g. a TIFF) holding 16-bit data: scaled as such; above that, stretch. (Pillow
            # >= 10.3, setup.cfg, opens 16-bit grey PNGs as I;16, above, however dark they are.)
            a = a * (255.0 / (65535.0 if top <= 65535.0 else top))
        g = np.clip(a, 0, 255).astype(np.float32)
        return np.repeat(g[:, :, None], 3, axis=2)
    if _has_alpha(im):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:] / 255.0
        return rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)  # composite on white
    return np.asarray(im.convert("RGB"), dtype=np.float32)


REDUCING_GAP = 3   # _reduced keeps at least this many times the target side before the final resize


def _reduced(im, max_side):
    """A decoded PIL image much larger than max_side -> the same picture, k times smaller (box average).

    Why: resize() works on float32 copies, so a 108-megapixel PNG took 10 s and a 2.8 GB peak to read
    for a 512 px run; now 2.5 s and 0.5 GB. JPEG already decodes at reduced size (draft); this does
    the same for every other format. Averaging over k x k pixels down to at least REDUCING_GAP times
    the final side, then resampling with Lanczos, is the two-step resize Pillow itself offers
    (resize(reducing_gap=3)); the picture at the final size differs from resizing the whole image by
    under a level on average (tests/test_image.py). Pillow's BOX filter rather than reduce(k):
    reduce's last row and column average a partial block, which shifts the picture by up to half a
    pixel. The smaller image's sides are rounded once more, so its aspect, and the output's short
    side, may be a pixel off (as after draft).
    Modes: alpha (or a transparent colour) goes to RGBA, whose resize Pillow does on premultiplied
    colour, so the average is that of the picture composited on white (_to_rgb composites linearly).
    Palette, 1-bit, CMYK and other modes go to RGB first (a palette index or ink is no value to
    average). 16-bit grey (I;16) averages as it is, and big-endian I;16B goes to 32-bit I first
    (Pillow resizes only the native order): _to_rgb scales both by the decoded mode. 32-bit I and F
    average as they are; _to_rgb scales them by the largest value before averaging (_grey_source).
    A transparent colour in these grey modes is ignored, as _to_rgb ignores it unreduced.
    """
    if max_side is None:
        return im
    # Never below MIN_SIDE: load_image refuses smaller images, and a thin style image may be fine
    # at its full size (or never used, at blend weight 0).
    k = min(max(im.size) // (REDUCING_GAP * max_side), min(im.size) // MIN_SIDE)
    if k < 2:
        return im
    if im.mode.startswith("I;16") and im.mode != "I;16":
        im = im.convert("I")
    elif im.mode in ("I;16", "I", "F"):
        pass   # a transparent colour in 16- or 32-bit grey is ignored, as _to_rgb does (RGBA would clip to 8 bits)
    elif _has_alpha(im):
        im = im.convert("RGBA")
    elif im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    w, h = im.size
    return im.resize((round(w / k), round(h / k)), Image.BOX)   # BOX: exact block averages; both >= MIN_SIDE


# Raster formats decoded in-process (JPEG includes MPO). Pillow picks a plugin by content, not name, so without this list an
# EPS named style.png runs Ghostscript (and PDF-like formats would run other tools).
READ_FORMATS = ["PNG", "JPEG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "AVIF", "JPEG2000", "PPM", "TGA", "ICO", "PCX",
                "SGI", "QOI"]


def load_image(path, max_side=None, max_pixels=MAX_PIXELS):
    """Read any image Pillow reads -> float32 (H, W, 3) RGB in 0..255, EXIF orientation applied.

    max_side: the longest side it will be resized to (e.g. --size); allows inputs over
    max_pixels, since they will be shrunk, and lets JPEG decode at reduced size (most other images
    are box-averaged to 3-4.5x max_side as they are read, _reduced).
    """
    name = os.fspath(path)
    if not name:
        raise ImageError("an image path is empty")
    if not os.path.exists(name):
        raise ImageError(f"{name}: no such file")
    if os.path.isdir(name):
        raise ImageError(f"{name}: is a directory, not an image")
    if not os.path.isfile(name):   # a device or a pipe: Pillow would wait on it, or read it forever
        raise ImageError(f"{name}: not a regular file")
    if os.path.getsize(name) == 0:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            # Pillow warns about bombs (our own limits follow) and damaged metadata (it reads on);
            # either would print lines of its own around our one-line messages.
            warnings.simplefilter("ignore")
            with Image.open(name, formats=READ_FORMATS) as im:
                w, h = im.size
                if w * h > max_pixels and (max_side is None or w * h * (max_side / max(w, h)) ** 2 > max_pixels):
                    raise ImageError(f"{name}: {w}x{h} is over the limit of {max_pixels / 1e6:.0f} megapixels; "
                                     f"use --size to shrink it")
                if max_side is not None and max(w, h) > 2 * max_side:
                    # JPEG only (else a no-op): decode at 1/2, 1/4 or 1/8 size, at least the size asked for,
                    # which keeps the short side at MIN_SIDE or more (as _reduced does), so a thin
                    # image is not made too small here.
                    scale = max(max_side / max(w, h), MIN_SIDE / min(w, h))
                    im.draft("RGB", (round(w * scale), round(h * scale)))
                im.load()
                source = _grey_source(im)
                im = _reduced(im, max_side)
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im, source)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: too many pixels (over {HARD_MAX_PIXELS / 1e6:.0f} megapixels); refusing to decode")
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (or a format Pillow cannot read)")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name}: cannot read image ({one_line(e)})")
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode it")
    except Exception as e:   # any other decoder failure (a plugin's own error type) is still one line
        raise ImageError(f"{name}: cannot read image ({type(e).__name__}: {one_line(e)})")
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise ImageError(f"{name}: {rgb.shape[1]}x{rgb.shape[0]} is too small; "
                         f"the network needs at least {MIN_SIDE} px per side")
    return rgb


def fit_size(shape, longest):
    """(H, W) scaled so that the longer side is `longest`, keeping the aspect ratio."""
    h, w = shape[:2]
    s = longest / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize(img, size, resample=Image.LANCZOS):
    """img: (H, W, C) float array -> (size[0], size[1], C) float32; each channel resampled as a float image."""
    h, w = size
    if img.shape[:2] == (h, w):
        return np.asarray(img, np.float32).copy()
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c], np.float32), "F").resize((w, h), resample))
             for c in range(img.shape[2])]
    return np.stack(chans, axis=2)


def upsample(rgb, size):
    """An RGB result (H, W, 3) in 0..255 -> (size[0], size[1], 3), bicubic, clipped to 0..255.

    Used to carry a coarse scale's result to the next scale (and to the output size on
    Ctrl-C); the clip keeps the interpolation's overshoot inside the pixel range.
    """
    return np.clip(resize(rgb, size, Image.BICUBIC), 0, 255)


def output_format(path):
    """Pillow's format name for the output path's extension; ImageError if it has none we can write."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if not ext or fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"{path}: unknown output format {ext or '(no extension)'!r}; use e.g. .png or .jpg")
    return fmt


def check_output_path(path):
    """Fail early (before a long run) if the output cannot be written: format, directory, permissions."""
    name = os.fspath(path)
    if not name:
        raise ImageError("the output path is empty")
    if os.path.isdir(name):   # before the format: "no extension" would be the wrong complaint
        raise ImageError(f"{name}: is a directory; name a file in it, e.g. {os.path.join(name, 'output.png')}")
    fmt = output_format(name)
    if fmt == "GIF":   # Pillow would quietly cut the picture to a palette of 256 colours
        raise ImageError(f"{name}: GIF holds 256 colours and would band the picture; use .png, .webp or .jpg")
    if fmt == "ICO":   # Pillow would quietly shrink the picture to an icon of at most 256x256
        raise ImageError(f"{name}: an icon holds at most 256x256 px; use .png, .webp or .jpg")
    try:   # some formats Pillow lists cannot take an RGB picture (.xbm, .blp) or lack a writer (.h5)
        Image.new("RGB", (16, 16)).save(io.BytesIO(), format=fmt)
    except Exception as e:   # Pillow raises OSError, KeyError, ValueError ... depending on the plugin
        raise ImageError(f"{name}: cannot write {fmt} images ({one_line(e)}); use e.g. .png or .jpg")
    check_writable(name)


def check_writable(path):
    """ImageError unless a file named `path` can be created (folder, permissions, name length)."""
    name = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(name))
    if os.path.isdir(name):
        raise ImageError(f"{name}: is a directory")
    if not os.path.isdir(folder):
        raise ImageError(f"{name}: directory {folder} does not exist")
    if os.path.exists(name) and not os.access(name, os.W_OK):
        raise ImageError(f"{name}: not writable")
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):   # no pathconf (Windows) or no answer: the usual limit
        longest = 255
    if len(os.fsencode(os.path.basename(name))) > longest:
        raise ImageError(f"{name}: the name is longer than the {longest} bytes this file system allows")
    try:  # os.access says yes to root everywhere; a real file says whether the directory takes one
        fd, probe = tempfile.mkstemp(dir=folder, prefix=temp_prefix(os.path.basename(name)), suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ImageError(f"{name}: cannot write there ({one_line(e)})")


def to_uint8(rgb):
    """RGB floats in 0..255 (H, W, 3) -> uint8, clipped and rounded: the saved picture's values."""
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def save_image(path, rgb, text=None):
    """Write rgb (H, W, 3), 0..255 floats (clipped, rounded), atomically; format from the extension.

    text: {key: value} recorded as PNG tEXt chunks (ignored by other formats).
    The image goes to a temporary file in the same directory, then os.replace puts
    it in place, so a crash or Ctrl-C never leaves a partial file.
    """
    name = os.fspath(path)
    fmt = output_format(name)
    arr = to_uint8(rgb)
    im = Image.fromarray(arr, "RGB")
    options = {}
    if fmt == "PNG" and text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            # A file name that is not UTF-8 reaches Python with surrogates, which no PNG text can hold:
            # they are written as \udcff escapes instead of failing the save after a whole run.
            info.add_text(key, str(value).encode("utf-8", "backslashreplace").decode("utf-8"))
        options["pnginfo"] = info
    elif fmt in ("JPEG", "MPO"):   # full-resolution colour: Pillow's default 4:2:0 smears the fine strokes
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":   # lossless: Pillow's default (lossy, quality 80) was 31 dB from the PNG
        options["lossless"] = True
    elif fmt == "AVIF":   # Pillow's default is quality 75 in 4:2:0
        options.update(quality=95, subsampling="4:4:4")
    try:
        with atomic_path(name) as tmp, open(tmp, "wb") as f:
            im.save(f, format=fmt, **options)
    except (OSError, ValueError, KeyError) as e:
        raise ImageError(f"{name}: cannot write ({one_line(e)})")


def rgb_to_yiq(rgb):
    """(H, W, 3) RGB -> (H, W, 3) YIQ (Y: luminance in 0..255)."""
    return rgb @ _RGB_TO_YIQ.T.astype(rgb.dtype)


def yiq_to_rgb(yiq):
    """(H, W, 3) YIQ -> (H, W, 3) RGB."""
    return yiq @ _YIQ_TO_RGB.T.astype(yiq.dtype)


def luminance(rgb):
    """(H, W, 3) RGB -> (H, W, 3) grey image whose three channels are the luminance Y."""
    y = rgb_to_yiq(rgb)[:, :, :1]
    return np.repeat(y, 3, axis=2)


def match_luminance(style_rgb, content_rgb):
    """Style luminance with the content's mean and std (Gatys et al. 2016, colour paper, eq. 1). Grey (H_s, W_s, 3)."""
    ys, yc = luminance(style_rgb)[:, :, 0], luminance(content_rgb)[:, :, 0]
    y = (ys - ys.mean()) * (yc.std() / max(float(ys.std()), 1e-6)) + yc.mean()
    return np.repeat(np.clip(y, 0, 255)[:, :, None], 3, axis=2).astype(np.float32)


def with_luminance_of(rgb, content_rgb):
    """Luminance (Y) of rgb combined with the colour (I, Q) of content_rgb, same size. RGB, clipped to 0..255."""
    yiq = rgb_to_yiq(np.asarray(content_rgb, np.float64))
    yiq[:, :, 0] = rgb_to_yiq(np.asarray(rgb, np.float64))[:, :, 0]
    return np.clip(yiq_to_rgb(yiq), 0, 255).astype(np.float32)


def _sqrtm(cov, inverse=False):
    """Symmetric (inverse) square root of a 3x3 covariance, regularised for flat images."""
    vals, vecs = np.linalg.eigh(cov + 1e-3 * np.eye(3))
    vals = np.maximum(vals, 1e-6)
    return (vecs * (vals ** (-0.5 if inverse else 0.5))) @ vecs.T


def transfer_colors(style_rgb, content_rgb):
    """Recolour the style image so its pixel mean and covariance match the content's.

    x' = C_c^(1/2) C_s^(-1/2) (x - mu_s) + mu_c: the linear colour transfer of
    Gatys et al. 2016 ("Preserving Color...", sec. 2.1). Returns (H_s, W_s, 3), clipped to 0..255.
    """
    s = np.asarray(style_rgb, np.float64).reshape(-1, 3)
    c = np.asarray(content_rgb, np.float64).reshape(-1, 3)
    mu_s, mu_c = s.mean(0), c.mean(0)
    A = _sqrtm(np.cov(c, rowvar=False)) @ _sqrtm(np.cov(s, rowvar=False), inverse=True)  # (3, 3)
    out = (s - mu_s) @ A.T + mu_c
    return np.clip(out, 0, 255).reshape(np.shape(style_rgb)).astype(np.float32)
