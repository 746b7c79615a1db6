"""Tiled evaluation (tiling.py, tiled_objective.py) against the untiled objective, in float64."""
import numpy as np
import pytest

from nst_numpy.config import Config
from nst_numpy.fast import FastVGG19
from nst_numpy.gradcheck import rel_error
from nst_numpy.objective import make_objective
from nst_numpy.tiled_objective import TiledObjective
from nst_numpy.tiling import ALIGN, halo_for, plan_tiles, reach, stride_of
from nst_numpy.vgg import VGG19

EXACT = 1e-9   # the bound: float64 relative error of tiled against untiled


def test_receptive_field_of_conv5_1_is_156_px():
    """conv5_1: 156 px, 70 above a position's 16 px cell and 70 below it; so a halo of 80 (5 x 16)."""
    L, R, s = reach("conv5_1")
    assert (L, R, s) == (70, 85, 16)
    assert L + R + 1 == 156
    assert halo_for(["relu5_1"]) == 80
    assert halo_for(["relu3_1"]) == 16   # reach 10
    assert halo_for(["relu1_1"]) == 16   # reach 1, rounded up to the alignment


@pytest.mark.parametrize("hw, core, layers", [((77, 61), 16, ["relu3_1"]), ((400, 213), 96, ["relu5_1"]),
                                              ((50, 300), 32, ["relu2_1"]), ((35, 29), 64, ["relu1_1"]),
                                              ((100, 90), 64, ["relu3_1"])])   # two cores per axis: one halo each
def test_tiles_partition_the_image_with_windows_of_one_shape(hw, core, layers):
    tiles = plan_tiles(hw, core, layers)
    owner = np.zeros(hw, int)
    halo = halo_for(layers)
    shapes = set()
    for t in tiles:
        (y0, y1, x0, x1), (a0, a1, b0, b1) = t.core, t.window
        owner[y0:y1, x0:x1] += 1
        assert a0 % ALIGN == 0 and b0 % ALIGN == 0 and y0 % ALIGN == 0 and x0 % ALIGN == 0
        assert 0 <= a0 <= y0 and y1 <= a1 <= hw[0] and 0 <= b0 <= x0 and x1 <= b1 <= hw[1]
        assert (a0 == 0 or y0 - a0 >= halo) and (a1 == hw[0] or a1 - y1 >= halo)      # the halo, or the edge
        assert (b0 == 0 or x0 - b0 >= halo) and (b1 == hw[1] or b1 - x1 >= halo)
        shapes.add((a1 - a0, b1 - b0))
    assert np.all(owner == 1)
    assert len(shapes) == 1


def test_bad_tile_size_is_refused():
    with pytest.raises(ValueError, match="multiple of 16"):
        plan_tiles((100, 100), 24, ["relu1_1"])
    with pytest.raises(ValueError, match="tile-size"):
        Config(tile_size=20).validate()


def test_tiles_refuse_pool5():
    """pool5 has stride 32 but windows start at multiples of 16: its 2x2 pairs would differ from untiled
    (a Gram off by 4e-2 on a 480x32 image), so planning stops rather than compute a wrong objective."""
    assert stride_of("conv5_4") == ALIGN and stride_of("pool5") == 2 * ALIGN
    plan_tiles((480, 32), 48, ["relu5_1"])   # stride 16: fine
    with pytest.raises(ValueError, match="up to conv5_4.*pool5"):
        plan_tiles((480, 32), 48, ["relu4_1", "pool5"])


def _case(net, hw, layers_cfg, core, halo=None, seed=0, texture=False):
    """(untiled (loss, grad), tiled (loss, grad), tiles) for one random image and two style images;
    texture: no content image (texture synthesis), so no content term."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-60, 60, hw + (3,))
    styles = [(rng.uniform(-60, 60, (hw[0] - 7, hw[1] + 5, 3)), 1.0), (rng.uniform(-60, 60, (41, 53, 3)), 0.5)]
    cfg = Config(**layers_cfg)
    x = rng.uniform(-60, 60, c.size)
    content, shape = (None, c.shape) if texture else (c, None)
    f = make_objective(net, content, styles, cfg, shape=shape)
    t = TiledObjective(net, content, styles, cfg, shape=shape, tile_size=core, halo=halo)
    return f(x), t(x), t


SHALLOW = dict(content_layers=("relu3_1", "relu2_1"), style_layers=("relu1_1", "relu2_1", "relu3_1"))


@pytest.mark.parametrize("engine", [FastVGG19, VGG19])
@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("hw", [(77, 61), (61, 77)])   # two windows down the rows, then across the columns
def test_tiled_equals_untiled(engine, pooling, hw):
    """Several content and style layers, relu2_1 both; two style images; an odd size; many tiles."""
    net = engine.random(seed=1, dtype=np.float64, pooling=pooling)
    (l0, g0), (l1, g1), t = _case(net, hw, SHALLOW, core=16)
    assert len(t.tiles) >= 4 and len({w.window[:2] if hw[0] > hw[1] else w.window[2:] for w in t.tiles}) == 2
    assert abs(l1 - l0) / abs(l0) < EXACT
    assert rel_error(g1, g0) < EXACT


def test_tiled_equals_untiled_with_no_content_layer():
    """A content image but no content layer (Config(content_layers=())): no content term, tiled or not
    (the tiled objective once asked the tiles for the halo of no layers, and failed)."""
    net = FastVGG19.random(seed=1, dtype=np.float64)
    (l0, g0), (l1, g1), t = _case(net, (77, 61), dict(SHALLOW, content_layers=()), core=16)
    assert len(t.tiles) >= 4 and abs(t.parts.get("content", 0.0)) < 1e-12 * l1
    assert abs(l1 - l0) / abs(l0) < EXACT and rel_error(g1, g0) < EXACT


def test_tiled_texture_synthesis_equals_untiled():
    """No content image (--content none): style and TV terms only, still exact over tiles."""
    net = FastVGG19.random(seed=1, dtype=np.float64)
    (l0, g0), (l1, g1), t = _case(net, (77, 61), SHALLOW, core=16, texture=True)
    assert len(t.tiles) >= 4 and abs(t.parts.get("content", 0.0)) < 1e-12 * l1
    assert abs(l1 - l0) / abs(l0) < EXACT and rel_error(g1, g0) < EXACT


def test_two_tiles_per_axis_with_one_sided_halos_are_exact():
    """With two cores along an axis each window carries one halo, not two (tiling._axis)."""
    net = FastVGG19.random(seed=1, dtype=np.float64)
    (l0, g0), (l1, g1), t = _case(net, (100, 90), SHALLOW, core=64)
    assert len(t.tiles) == 4 and t.tiles[0].window == (0, 84, 0, 74)
    assert abs(l1 - l0) / abs(l0) < EXACT and rel_error(g1, g0) < EXACT


def test_tiled_equals_untiled_to_relu5_1_and_a_halo_one_pooling_step_short_fails():
    """Layers to relu5_1 (halo 80). With a halo of 64 (one 16 px step of pool4 less)
    the positions near a core's edge see zero padding instead of pixels: the check must fail."""
    net = FastVGG19.random(seed=2, dtype=np.float64)
    deep = dict(content_layers=("relu4_2",), style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    (l0, g0), (l1, g1), t = _case(net, (384, 64), deep, core=128)
    assert len(t.tiles) == 3
    assert abs(l1 - l0) / abs(l0) < EXACT and rel_error(g1, g0) < EXACT
    _, (l2, g2), _ = _case(net, (384, 64), deep, core=128, halo=64)
    assert rel_error(g2, g0) > 1e-4


def test_tile_progress_is_reported():
    net = FastVGG19.random(seed=3, dtype=np.float64)
    rng = np.random.default_rng(0)
    c = rng.uniform(-60, 60, (70, 50, 3))
    t = TiledObjective(net, c, [(c, 1.0)], Config(**SHALLOW), tile_size=16)
    seen = []
    t.on_tile = lambda done, total: seen.append((done, total))
    t(c.ravel())
    n = len(t.tiles)
    assert n >= 2 and seen == [(k, 2 * n) for k in range(1, 2 * n + 1)]
