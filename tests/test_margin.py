"""--margin (margin.py): a canvas wider than the picture, cropped at the end; and --style-scale, which
sizes the style images against the picture, margin or not."""
import numpy as np
import pytest

from nst_numpy import FastVGG19, optimize
from nst_numpy.config import Config
from nst_numpy.image import resize
from nst_numpy.margin import Geometry
from nst_numpy.samples import landscape, swirls
from PIL import Image
from nst_numpy.optimize import Interrupted, auto_scales, scale_sizes, stylize

SMALL = dict(style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_2",), min_improvement=0.0)


@pytest.fixture(scope="module")
def net():
    return FastVGG19.random(seed=0, dtype=np.float32)


@pytest.mark.parametrize("shape, size, scales, pictures", [
    ((375, 500), 512, None, [(384, 512)]),
    ((500, 333), 2048, None, [(512, 341), (1024, 682), (2048, 1364)]),
    ((77, 301), 300, 3, [(19, 75), (38, 150), (77, 300)]),
])
def test_the_pictures_are_the_sizes_of_earlier_versions(shape, size, scales, pictures):
    """Margin or not, the picture at each scale is scale_sizes': a margin neither adds a scale nor lets a
    picture too small for the network through. Without one the canvas is the picture."""
    for margin in (0, 16):
        g = Geometry(shape, Config(size=size, scales=scales, margin=margin))
        assert g.pictures == pictures == scale_sizes(shape, size, scales) and g.out_hw == g.pictures[-1]
        assert [(h - 2 * m, w - 2 * m) for (h, w), m in zip(g.sizes, g.margins)] == g.pictures
    assert g.margins[-1] == 16 and g.sizes[-1] == (g.out_hw[0] + 32, g.out_hw[1] + 32)
    g = Geometry(shape, Config(size=size, scales=scales))
    rgb = np.zeros(g.sizes[-1] + (3,))
    assert g.sizes == g.pictures and g.widen(None) is None and g.widen(rgb) is rgb and g.crop(rgb) is rgb


def test_a_margin_does_not_make_a_picture_too_small_acceptable():
    with pytest.raises(ValueError, match="gives a 32x2 output"):   # the canvas would be 94x64
        Geometry((17, 301), Config(size=32, scales=2, margin=31))
    assert len(Geometry((375, 500), Config(size=128, scales=4, margin=16)).sizes) == 3   # 16x12 is dropped


def test_the_canvas_is_the_picture_plus_a_mirrored_margin():
    g = Geometry((60, 90), Config(size=60, margin=4, scales=2, style_scale=2.0))
    assert g.pictures == [(20, 30), (40, 60)] and g.margins == [2, 4] and g.sizes == [(24, 34), (48, 68)]
    # A margin that does not halve evenly is rounded up at the coarse scales, so none of them is left
    # without one (an edge frame painted there would be carried up): 5 px gives 2.5 -> 3, 1 px 1 and 1.
    assert Geometry((60, 90), Config(size=60, margin=5, scales=2)).margins == [3, 5]
    assert Geometry((60, 90), Config(size=60, margin=1, scales=2)).margins == [1, 1]
    with pytest.raises(ValueError, match="not one of this run's canvases"):
        g.crop(np.zeros((40, 60, 3)))
    assert (g.style_side(0), g.style_side(1)) == (60.0, 120.0)   # style_scale times the picture's side
    assert g.style_hws([(50, 100)]) == [[(30, 60)], [(60, 120)]]
    photo = np.random.default_rng(0).uniform(0, 255, (60, 90, 3)).astype(np.float32)
    canvas = g.widen(photo)
    inner = resize(photo, (40, 60))
    assert canvas.shape == (48, 68, 3)
    assert np.array_equal(g.crop(canvas), inner)
    # np.pad's "reflect": the margin mirrors the picture about its edge row, which is not repeated.
    assert np.array_equal(canvas[3], inner[1, np.r_[4:0:-1, 0:60, 58:54:-1]])
    assert np.array_equal(canvas[4:-4, 0], inner[:, 4]) and np.array_equal(canvas[4:-4, -1], inner[:, -5])
    assert g.crop(np.zeros((24, 34, 3))).shape == (20, 30, 3)   # the coarse scale: a margin of 2


def _spy_objective(monkeypatch, images=None):
    """Record (x's shape, the style images' (H, W)) of every objective stylize makes; the style images
    themselves go to `images` if given."""
    seen, real = [], optimize.make_objective

    def spy(net, content, styles, config, shape=None, tile_size=None):
        seen.append(((content.shape if content is not None else shape)[:2], [s.shape[:2] for s, _ in styles]))
        if images is not None:
            images.append([s for s, _ in styles])
        return real(net, content, styles, config, shape=shape, tile_size=tile_size)
    monkeypatch.setattr(optimize, "make_objective", spy)
    return seen


@pytest.mark.parametrize("margin", [0, 8])
def test_style_scale_sizes_the_style_against_the_picture(net, monkeypatch, margin):
    """--style-scale 0.5 at --size 48 makes a 64 px square painting 24 px, with or without a margin."""
    seen, planned = _spy_objective(monkeypatch), []
    from nst_numpy import memory_plan
    monkeypatch.setattr(memory_plan, "needs_plan", lambda sizes, config, style_hws: planned.append(style_hws))
    config = Config(size=48, scales=1, iterations=1, style_scale=0.5, margin=margin, **SMALL)
    out = stylize(net, landscape(40, 48), [swirls(64, 64)], config)
    assert out.shape == (40, 48, 3)
    assert seen == [((40 + 2 * margin, 48 + 2 * margin), [(24, 24)])]
    assert planned == [[(24, 24)]]   # the memory plan sizes the style image as the run does


@pytest.mark.parametrize("mode", ["histogram", "luminance"])
def test_colours_are_the_pictures_not_the_margins(net, monkeypatch, mode):
    """--preserve-colors takes the photo's colour statistics from the picture, not from the mirrored
    border: the style images the objective gets are the same with and without a margin."""
    styles = []
    _spy_objective(monkeypatch, styles)
    for margin in (0, 12):
        config = Config(size=48, scales=1, iterations=1, margin=margin, preserve_colors=mode, **SMALL)
        stylize(net, landscape(40, 48), [swirls(40, 40)], config)
    assert np.array_equal(styles[0][0], styles[1][0])


def test_a_run_with_a_margin_optimises_the_canvas_and_returns_the_picture(net, monkeypatch):
    seen = _spy_objective(monkeypatch)
    states = []
    config = Config(size=48, scales=2, iterations=2, coarse_iterations=2, margin=8, **SMALL)
    out = stylize(net, landscape(40, 48), [swirls(40, 40)], config, callback=states.append)
    assert [s for s, _ in seen] == [(28, 32), (56, 64)] and out.shape == (40, 48, 3)   # canvases: half, whole
    assert states[0].image().shape == (20, 24, 3)   # a coarse scale's picture, its margin (4 px) cropped
    assert 0 <= out.min() and out.max() <= 255


def test_ctrl_c_with_a_margin_saves_the_picture_at_the_output_size(net):
    def ctrl_c(state):
        if state.step == 2:
            raise KeyboardInterrupt
    config = Config(size=48, scales=2, iterations=3, coarse_iterations=3, margin=8, **SMALL)
    with pytest.raises(Interrupted) as e:   # during the coarse scale: cropped there, then enlarged
        stylize(net, landscape(40, 48), [swirls(40, 40)], config, callback=ctrl_c)
    assert e.value.rgb.shape == (40, 48, 3)


@pytest.mark.parametrize("margin", [-1, 1.5, 600])
def test_bad_margins_are_refused(margin):
    with pytest.raises(ValueError, match="margin must be a whole number of px from 0 to --size"):
        Config(size=512, margin=margin).validate()


def test_a_margin_never_adds_an_automatic_scale():
    """At --size 1000 one scale runs; the 1032 px canvas of --margin 16 must not make it two (the tests
    above give --scales, so auto_scales is never reached there)."""
    g = Geometry((375, 500), Config(size=1000, margin=16))
    assert len(g.sizes) == auto_scales(1000) == 1


def test_the_crop_at_a_coarse_scale_removes_the_scaled_margin():
    """A coarse canvas made from a fine one whose margin is white
    and picture black; the cropped picture must not keep a row or column that is mostly margin."""
    g = Geometry((60, 90), Config(size=60, margin=3, scales=2))
    (h, w), (H, W) = g.sizes
    fine = np.full((H, W, 3), 255.0, np.float32)
    fine[3:-3, 3:-3] = 0.0
    picture = g.crop(resize(fine, (h, w), Image.BOX))
    edges = np.concatenate([picture[0].ravel(), picture[-1].ravel(), picture[:, 0].ravel(), picture[:, -1].ravel()])
    assert edges.max() < 128, edges.max()
