"""Built-in sample images: a real photo and painting for the default run, and two drawn by code.

photo() and painting() are the default run's content and style, shipped in sample_images/:

    chelsea_cat.jpg    "Chelsea", a cat (451x300), from scikit-image's sample data: CC0 1.0 (public domain dedication)
    starry_night.jpg   Vincent van Gogh, The Starry Night (1889), downscaled to 512x320: public domain

More samples, for scripts/make_readme_images.py and scripts/make_tuning_images.py (load them with
image.load_image(SAMPLE_DIR / name)); each downscaled to under 200 KB:

    astronaut.jpg        Eileen Collins, NASA portrait (512x512), via scikit-image: public domain (NASA)
    coffee.jpg           a cup of coffee (600x400), from scikit-image's sample data: CC0 1.0
    rocket.jpg           a rocket on its launch pad, SpaceX (640x427), via scikit-image: public domain
    great_wave.jpg       Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831), 928x514: public domain
    the_scream.jpg       Edvard Munch, The Scream (1893), 804x1024: public domain
    composition_vii.jpg  Wassily Kandinsky, Composition VII (1913), 900x598: public domain
    woman_with_hat.jpg   Henri Matisse, Woman with a Hat (1905), 591x800: public domain in the US

landscape(): a content image with clear structure (sky, sun, mountains, a lake with
reflections, a row of trees). swirls(): a style image of flowing, brush-stroke-like swirls
in blues and yellows. Both are drawn by code, deterministic, and used by the tests.
"""
import pathlib

import numpy as np

SAMPLE_DIR = pathlib.Path(__file__).with_name("sample_images")
PHOTO = SAMPLE_DIR / "chelsea_cat.jpg"          # CC0 1.0
PAINTING = SAMPLE_DIR / "starry_night.jpg"      # public domain


def photo():
    """The default content image: a cat, RGB float32 (300, 451, 3) in 0..255."""
    from .image import load_image   # here: image.py needs Pillow, which the drawn samples do not
    return load_image(PHOTO)


def painting():
    """The default style image: The Starry Night, RGB float32 (320, 512, 3) in 0..255."""
    from .image import load_image
    return load_image(PAINTING)


def _grid(h, w):
    """Coordinates u (0..1 left to right) and v (0..1 top to bottom), each (h, w)."""
    v, u = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")
    return u, v


def _paint(img, mask, colour):
    """Blend colour (3,) into img where mask (h, w) in 0..1 says so."""
    m = np.clip(mask, 0.0, 1.0)[:, :, None]
    img *= 1.0 - m
    img += m * np.asarray(colour, np.float64)


def landscape(h=384, w=512):
    """Content sample: a landscape at sunset. Returns float32 (h, w, 3), RGB 0..255."""
    u, v = _grid(h, w)
    soft = 2.0 / min(h, w)  # anti-aliasing width of the edges, in image units
    horizon = 0.62
    img = np.empty((h, w, 3))
    t = np.clip(v / horizon, 0, 1)[:, :, None]
    img[:] = (1 - t) * np.array([40.0, 70.0, 150.0]) + t * np.array([250.0, 170.0, 110.0])  # sky gradient
    sun = np.hypot((u - 0.7) * w / h, v - 0.36)
    _paint(img, (0.11 - sun) / soft, (255, 230, 150))
    for ridge, colour, seed in ((0.40, (110, 90, 130), 0.0), (0.50, (60, 70, 90), 1.7)):
        top = ridge + 0.06 * np.sin(7 * u + seed) + 0.035 * np.sin(19 * u + 2 * seed) + 0.015 * np.sin(41 * u)
        _paint(img, (v - top) / soft, colour)
    below = v > horizon
    mirror = np.clip(2 * horizon - v, 0, 1)  # the lake reflects the scene above the horizon
    rows = np.clip(np.rint(mirror * (h - 1)).astype(int), 0, h - 1)
    ripple = 0.04 * np.sin(120 * v + 8 * u)
    reflected = img[rows, np.arange(w)[None, :]] * (0.65 + ripple[:, :, None]) + np.array([10.0, 25.0, 45.0])
    img[below] = reflected[below]
    _paint(img, (v - 0.83 - 0.01 * np.sin(13 * u)) / soft, (70, 110, 50))  # grassy shore
    for i, x0 in enumerate(np.linspace(0.06, 0.5, 6)):  # trees: triangles on trunks
        base = 0.86 + 0.02 * np.sin(3.1 * i)
        height = 0.2 + 0.05 * np.cos(1.7 * i)
        half = 0.05 * (v - (base - height)) / height  # widens from the tip down to the base
        inside = np.minimum((base - v) / soft, (half - np.abs(u - x0) * w / h) / soft)
        _paint(img, (np.abs(u - x0) * w / h < 0.008) * ((v > base - 0.02) & (v < base + 0.05)), (80, 50, 30))
        _paint(img, inside, (30, 80 + 10 * (i % 3), 40))
    return np.clip(img, 0, 255).astype(np.float32)


def swirls(h=384, w=384):
    """Style sample: dense swirling brush strokes. Returns float32 (h, w, 3), RGB 0..255."""
    u, v = _grid(h, w)
    x, y = u * w / h, v
    # A stream function from a few vortices: its level lines are the strokes.
    psi = np.zeros_like(x)
    for cx, cy, strength in ((0.25, 0.3, 1.0), (0.75, 0.35, -0.8), (0.5, 0.75, 1.2), (0.1, 0.85, -0.6), (0.9, 0.8, 0.7)):
        r2 = (x - cx) ** 2 + (y - cy) ** 2
        psi += strength * np.log(r2 + 0.01) * np.exp(-r2 / 0.15)
    psi += 0.6 * np.sin(3 * x + 1.0) * np.cos(2 * y)
    strokes = np.sin(14 * psi + 2 * np.sin(9 * x) * np.sin(7 * y))  # bands along the flow
    streak = 0.5 + 0.5 * np.sin(90 * psi + 30 * x)                    # fine bristle marks inside each band
    palette = np.array([[20, 40, 110], [50, 90, 170], [240, 210, 80], [250, 240, 190], [30, 60, 60]], np.float64)
    pos = (0.5 + 0.5 * np.tanh(2.5 * strokes)) * 0.75 + 0.25 * np.clip(psi * 0.3 + 0.5, 0, 1)
    pos = np.clip(pos * (len(palette) - 1), 0, len(palette) - 1.001)  # (h, w) in palette index units
    lo = pos.astype(int)
    frac = (pos - lo)[:, :, None]
    img = palette[lo] * (1 - frac) + palette[lo + 1] * frac
    img *= (0.8 + 0.2 * streak)[:, :, None]
    return np.clip(img, 0, 255).astype(np.float32)
