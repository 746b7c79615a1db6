"""The one dataclass of hyperparameters of a style-transfer run.

Loss weighting (see make_objective in objective.py for the exact formula):

    total = alpha * sum_c  L_content(c) / n_c / Z_c                     (Gatys et al. 2016, eq. 1 and 7)
          + beta  * sum_l  w_l * E_l / Z_l                               (eq. 4, 5, 7)
          + gamma * TV(image in 0..1 RGB units) / (H * W)

With normalize=True, Z_c = 1/2 sum P^2 and Z_l = sum A^2 / (4 N^2 M^2): each term is
divided by the loss an all-zero feature map would have at that layer, i.e. by its
target's squared magnitude. Why: in the standard (unnormalised) VGG19 the activations of
relu1_1..relu5_1 differ by orders of magnitude and E_l grows like the 4th power
of them, so equal w_l in raw units let one or two layers drown the rest and
any fixed alpha/beta holds only for one set of weights and one preprocessing.
Normalised, every term is a dimensionless relative error (about 1 at a random
start, 0 at a perfect match), so alpha, beta and equal w_l mean the same thing for
every network, image size and preprocessing. With normalize=False, Z = 1, and with
gamma = 0, one content layer and one style image of the output's size, the formula is
exactly the paper's eq. 7 (with several, the 1/n_c above and the blend of style targets remain).
"""
import math
import numbers
from dataclasses import asdict, dataclass, field

from .vgg_spec import LAYER_NAMES

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
OPTIMIZERS = ("lbfgs", "adam")
PRESERVE = ("none", "luminance", "histogram")
MAX_WEIGHT = 1e30        # loss weights above this overflow the float32 loss and gradient (max ~3.4e38)
AUTO_PRECONDITION_AFTER = 20  # plain iterations before the step sizes (10 was worse at 320 px; docs/performance.md)
AUTO_LBFGS_MEMORY = 5    # correction pairs with the stopping rule: 10's loss and time in half the memory (README)
PLAIN_LBFGS_MEMORY = 10  # correction pairs without it: the fixed-length run of earlier versions
MAX_LBFGS_MEMORY = 1000  # correction pairs: 16 bytes per value each, so 1000 is 3.7 GB at 320x240


def _real(v):
    """A real number (int, float, numpy scalar), not a bool (True is 1 to Python, never meant as one here)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass
class Config:
    content_layers: tuple = ("relu4_2",)   # layers whose activations carry the content (Gatys et al.'s conv4_2, read after its ReLU)
    style_layers: tuple = STYLE_LAYERS[:4]  # Gram matrices carry the style; relu5_1 paints the painting's objects
                                            # over the photo (docs/tuning.md), so it is left out
    style_layer_weights: tuple = None      # w_l per style layer; None = equal, 1 / len(style_layers)
    content_weight: float = 1.0            # alpha
    style_weight: float = 10.0             # beta, the style/content balance; 10 keeps the subject (docs/tuning.md)
    tv_weight: float = 1.0                 # gamma; TV per pixel, summed over channels and both directions, in 0..1 RGB units
    normalize: bool = True                 # divide each term by the loss an all-zero response would have (docstring)
    iterations: int = 150                  # optimiser iterations at the output size (the last scale), at most
    coarse_iterations: int = 60            # iterations at each coarser scale (scales > 1), at most
    min_improvement: float = 5e-4          # end a scale once the loss fell < this fraction per iteration (0 = never)
    precondition_after: int = None         # L-BFGS restarts after this many iterations of a scale with per-pixel
                                           # step sizes from the gradient (lbfgs.step_scales); 0 = never; None =
                                           # automatic (restart_with_step_sizes_at: 20, 0 if min_improvement is 0)
    optimizer: str = "lbfgs"               # "lbfgs" (scipy L-BFGS-B with pixel bounds) or "adam"
    lbfgs_memory: int = None               # L-BFGS correction pairs (scipy's maxcor); 16 bytes per value each;
                                           # None = automatic (correction_pairs: 5, 10 if min_improvement is 0)
    learning_rate: float = 2.0             # Adam's step, in 0..255 pixel units (unused by L-BFGS)
    init: str = "content"                  # "content", "noise", or a path to an image file
    # (Pooling and the engine belong to the network, not here: load_vgg19(pooling=, engine=).)
    size: int = 512                        # longest side of the output, in pixels
    style_scale: float = 1.0               # longest side of each style image relative to the output's
    margin: int = 0                        # px of free border around the output, optimised and cropped off, so
                                           # the network's zero padding paints no frame (margin.py); 0 = none
    style_blend: tuple = None              # blend weight per style image; None = equal; normalised to sum 1
    scales: int = None                     # coarse-to-fine: optimise at size / 2^(scales-1), ..., size;
                                           # None = automatic (optimize.auto_scales: 1 below 1024 px)
    tile_size: int = None                  # side of a tile's core in px (multiple of 16): evaluate tile by tile
                                           # (tiling.py, exact); None = automatic: untiled if the run fits the
                                           # memory cap, else tiles sized to it (memory_plan.py)
    preserve_colors: str = "none"          # "none", "luminance" (transfer on Y only), "histogram" (recolour style)
    seed: int = 0                          # seeds the noise init: same seed (and --threads), same bytes
    extra: dict = field(default_factory=dict, repr=False)  # free-form notes recorded with the output

    def restart_with_step_sizes_at(self):
        """precondition_after with None resolved: AUTO_PRECONDITION_AFTER iterations when the stopping rule is
        on, else 0 (never). Why: `--scales 1 --iterations 300 --min-improvement 0`, the fixed-length run of
        earlier versions, stays exactly that run (plain L-BFGS-B), while the default gets the step sizes."""
        if self.precondition_after is not None:
            return self.precondition_after
        return AUTO_PRECONDITION_AFTER if self.min_improvement > 0 else 0

    def correction_pairs(self):
        """lbfgs_memory with None resolved: AUTO_LBFGS_MEMORY when the stopping rule is on, else
        PLAIN_LBFGS_MEMORY. Why: in the default run 5 pairs reach the loss of 10 in the same time and
        half the optimiser's memory (README, "Time to a result"), while `--min-improvement 0` keeps the
        earlier versions' 10 exactly."""
        if self.lbfgs_memory is not None:
            return self.lbfgs_memory
        return AUTO_LBFGS_MEMORY if self.min_improvement > 0 else PLAIN_LBFGS_MEMORY

    def validate(self):
        """Raise ValueError with a one-line message for the first invalid field. Whole numbers given as
        floats or numpy scalars (5.0, np.int64(5)) become ints: range() and numpy's seeding need them."""
        for name in ("iterations", "coarse_iterations", "precondition_after", "lbfgs_memory", "scales", "tile_size",
                     "seed", "size", "margin"):
            v = getattr(self, name)
            if _real(v) and math.isfinite(v) and int(v) == v:
                setattr(self, name, int(v))
        if not (isinstance(self.seed, int) and _real(self.seed) and self.seed >= 0):
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed}")
        for name in ("content_weight", "style_weight", "tv_weight", "learning_rate", "style_scale"):
            v = getattr(self, name)
            if not _real(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name.replace('_', '-')} must be a finite number >= 0, got {v}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) > MAX_WEIGHT:
                raise ValueError(f"{name.replace('_', '-')} must be at most {MAX_WEIGHT:g}, got {getattr(self, name)}")
        if max(self.content_weight, self.style_weight, self.tv_weight) <= 0:
            raise ValueError("content-weight, style-weight and tv-weight are all 0: there is nothing to optimise")
        if self.style_scale <= 0 or self.learning_rate <= 0:
            raise ValueError("style-scale and learning-rate must be > 0")
        for name in ("iterations", "coarse_iterations"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a whole number >= 1, got {v}")
        if self.precondition_after is not None and (int(self.precondition_after) != self.precondition_after
                                                    or self.precondition_after < 0):
            raise ValueError(f"precondition-after must be a whole number >= 0, got {self.precondition_after}")
        if not _real(self.min_improvement) or not 0 <= self.min_improvement < 1:
            raise ValueError(f"min-improvement must be a fraction in [0, 1), got {self.min_improvement}")
        if self.lbfgs_memory is not None and (int(self.lbfgs_memory) != self.lbfgs_memory
                                              or not 1 <= self.lbfgs_memory <= MAX_LBFGS_MEMORY):
            raise ValueError(f"lbfgs-memory must be a whole number from 1 to {MAX_LBFGS_MEMORY}, "
                             f"got {self.lbfgs_memory}")
        if not _real(self.margin) or int(self.margin) != self.margin or not 0 <= self.margin <= self.size:
            raise ValueError(f"margin must be a whole number of px from 0 to --size, got {self.margin}")
        if self.scales is not None and (int(self.scales) != self.scales or self.scales < 1):
            raise ValueError(f"scales must be a whole number >= 1, got {self.scales}")
        if self.tile_size is not None and (int(self.tile_size) != self.tile_size or self.tile_size < 16
                                           or self.tile_size % 16):
            raise ValueError(f"tile-size must be a multiple of 16 px, at least 16, got {self.tile_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.preserve_colors not in PRESERVE:
            raise ValueError(f"preserve-colors must be one of {PRESERVE}, got {self.preserve_colors!r}")
        if not self.style_layers:
            raise ValueError("at least one style layer is needed")
        unknown = [n for n in tuple(self.content_layers) + tuple(self.style_layers) if n not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown layer(s) {', '.join(unknown)}; layers are named like relu4_2, conv3_1, pool2")
        for name in ("content_layers", "style_layers"):
            layers = tuple(getattr(self, name))
            if len(set(layers)) != len(layers):
                raise ValueError(f"{name.replace('_', '-')} names a layer twice: {', '.join(layers)}")
        for name, weights, n in (("style layer weights", self.style_layer_weights, len(self.style_layers)),
                                 ("style weights", self.style_blend, None)):
            if weights is None:
                continue
            if n is not None and len(weights) != n:
                raise ValueError(f"{name}: expected {n} values, got {len(weights)}")
            if not all(math.isfinite(w) and 0 <= w <= MAX_WEIGHT for w in weights) or sum(weights) <= 0:
                raise ValueError(f"{name} must be from 0 to {MAX_WEIGHT:g} and not all zero, got {list(weights)}")
        # Each weight alone may be up to MAX_WEIGHT, but the style term is beta * w_l * E_l: the product too.
        if self.style_weight * max(self.layer_weights()) > MAX_WEIGHT:
            raise ValueError(f"style-weight times the largest style layer weight must be at most {MAX_WEIGHT:g}, "
                             f"got {self.style_weight * max(self.layer_weights()):g}")
        return self

    def layer_weights(self):
        """w_l per style layer as a tuple (equal by default)."""
        if self.style_layer_weights is None:
            return (1.0 / len(self.style_layers),) * len(self.style_layers)
        return tuple(float(w) for w in self.style_layer_weights)

    def as_text(self):
        """Parameters as 'key=value' lines, for the PNG text chunk (no timestamps: outputs stay reproducible).
        The automatic L-BFGS memory and restart with step sizes appear as the values the run uses."""
        d = asdict(self)
        d["lbfgs_memory"], d["precondition_after"] = self.correction_pairs(), self.restart_with_step_sizes_at()
        extra = d.pop("extra")
        return "\n".join(f"{k}={v}" for k, v in list(d.items()) + sorted(extra.items()))
