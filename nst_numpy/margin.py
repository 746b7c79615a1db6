"""--margin: optimise a canvas wider than the picture by a border of free pixels, then crop the border off.

Why: every convolution pads with zeros, so the picture's outermost pixels see an edge that no inside pixel
sees, and the optimiser uses it: most runs end with a bright or dotted frame 1-3 px wide, strongest along the
top (README, "A frame along the edges"). With a margin, that edge lies in pixels that are cropped off.
The content photo is mirrored into the margin, so the content term there asks for a plausible continuation,
and the style is sized against the picture, not the canvas, so the strokes keep their size.

    geometry = Geometry(base_shape, config)     # canvas sizes per scale, and how to get back to the picture
    content = geometry.widen(content_rgb)       # the photo at the output size, mirrored into the margin
    picture = geometry.crop(canvas_rgb)         # the canvas at any scale -> the picture at that scale

With margin 0 widen and crop are the identity, and the canvas is the picture.
"""
import math

import numpy as np

from .image import fit_size, resize


class Geometry:
    """Sizes of one run. base_shape: (H, W, ...) of the content (or of the texture);
    config: a Config (size, scales, margin, style_scale).

    pictures: (H, W) of the picture at each scale, coarse to fine: optimize.scale_sizes, margin or not, so
    a margin changes neither the scales nor what is refused as too small. sizes: (H, W) of the canvas the
    optimiser paints at each scale, the picture plus margins[k] px on every side, margins[k] being the
    margin scaled to that scale. out_hw: the output picture, pictures[-1].
    """

    def __init__(self, base_shape, config):
        from .optimize import scale_sizes   # optimize imports this module
        self.pictures = scale_sizes(base_shape, config.size, config.scales)
        self.out_hw = self.pictures[-1]
        # Rounded up: every coarse scale keeps a margin (of at least 1 px) if the output has one.
        self.margins = [math.ceil(config.margin * max(hw) / max(self.out_hw)) for hw in self.pictures]
        self.sizes = [(h + 2 * m, w + 2 * m) for (h, w), m in zip(self.pictures, self.margins)]
        self.style_scale = config.style_scale
        self._margin_of = dict(zip(self.sizes, self.margins))

    def style_side(self, k):
        """Longest side of the style images at scale k: style_scale times the picture's (not the canvas's)."""
        return self.style_scale * max(self.pictures[k])

    def style_hws(self, style_shapes):
        """[[(H, W) of each style image] per scale]."""
        return [[fit_size(shape, self.style_side(k)) for shape in style_shapes] for k in range(len(self.pictures))]

    def widen(self, rgb):
        """rgb (h, w, 3) -> the canvas at the output scale, (H + 2m, W + 2m, 3): resized to the picture and
        mirrored into the margin (np.pad "reflect": the edge row is not repeated). None stays None."""
        m = self.margins[-1]
        if rgb is None or not m:
            return rgb
        rows, cols = (np.pad(np.arange(n), m, mode="reflect") for n in self.out_hw)   # source row, column
        return resize(rgb, self.out_hw)[rows][:, cols]

    def crop(self, rgb):
        """The canvas of one of the scales, (sizes[k], 3) -> the picture inside it, (pictures[k], 3)."""
        if rgb.shape[:2] not in self._margin_of:
            raise ValueError(f"a {rgb.shape[1]}x{rgb.shape[0]} image is not one of this run's canvases {self.sizes}")
        m = self._margin_of[rgb.shape[:2]]
        return rgb[m:rgb.shape[0] - m, m:rgb.shape[1] - m] if m else rgb
