"""--margin: optimise a canvas wider than the picture by a border of free pixels, then crop the border off.

Why: every convolution pads with zeros, so the picture's outermost pixels see an edge that no inside pixel
sees, and the optimiser uses it: most runs end with a bright or dotted frame 1-3 px wide, strongest along the
top (README, "A frame along the edges"). With a margin, that edge lies in pixels that are cropped off.
The content photo is mirrored into the margin, so the content term there asks for a plausible continuation,
and the style is sized against the picture, not the canvas, so the strokes keep their size.

    geometry = Geometry(base_shape, config)     # canvas sizes per scale, and how to get back to the picture
    content = geometry.widen(content_rgb)       # the photo at the output size, mirrored into the margin
    picture = geometry.crop(canvas_rgb)         # the canvas at any scale -> the picture at that scale

With margin 0 every method is the identity, and the sizes are those of optimize.scale_sizes.
"""
import numpy as np

from .image import fit_size, resize


class Geometry:
    """Sizes of one run. base_shape: (H, W, ...) of the content (or of the texture);
    config: a Config (size, scales, margin, style_scale)."""

    def __init__(self, base_shape, config):
        from .optimize import auto_scales, scale_sizes   # optimize imports this module
        self.margin = int(config.margin)
        self.out_hw = fit_size(base_shape, config.size)   # the picture the user asked for
        canvas = (self.out_hw[0] + 2 * self.margin, self.out_hw[1] + 2 * self.margin)
        # The number of scales follows --size, not the canvas (a margin must not add a scale).
        scales = auto_scales(config.size) if config.scales is None else config.scales
        # canvas (H, W) per scale, coarse to fine; without a margin, exactly the sizes of earlier versions
        self.sizes = (scale_sizes(canvas, max(canvas), scales) if self.margin
                      else scale_sizes(base_shape, config.size, config.scales))
        # The style image's side is style_scale times the picture's longest side, at every scale.
        self.style_scale = config.style_scale * max(self.out_hw) / max(canvas)

    def widen(self, rgb):
        """rgb (h, w, 3) -> the canvas at the output scale, (H + 2m, W + 2m, 3): resized to the picture and
        mirrored into the margin (np.pad "reflect": the edge row is not repeated). None stays None."""
        if rgb is None or not self.margin:
            return rgb
        m = self.margin
        rows, cols = (np.pad(np.arange(n), m, mode="reflect") for n in self.out_hw)   # source row, column
        return resize(rgb, self.out_hw)[rows][:, cols]

    def crop(self, rgb):
        """A canvas (h, w, 3) at any scale -> the picture inside it (the margin scaled to that scale)."""
        if not self.margin:
            return rgb
        H, W = self.sizes[-1]
        r, c = round(self.margin * rgb.shape[0] / H), round(self.margin * rgb.shape[1] / W)
        return rgb[r:rgb.shape[0] - r, c:rgb.shape[1] - c]
