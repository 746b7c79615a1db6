"""The engine's convolutions (fast/winograd.py, fast/threads.py) against the reference layers,
and FastVGG19's buffer reuse. The whole network is bound to the reference network in
tests/test_engine_vs_reference.py.

Bounds: float64 results must equal the im2col reference to rounding (rel_error < 1e-12);
float32 results may differ by the Winograd transforms' rounding, measured 0.4-1.4e-6 per
layer, bounded here by 1e-5 per layer, and by 2.5e-6 for a 256 -> 256 layer, which
Lavin & Gray's points 0, +-1, +-2 miss (see winograd_matrices.py, "Which points").
"""
import contextlib
import importlib.util
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from nst_numpy import VGG19, FastVGG19
from nst_numpy import layers as L
from nst_numpy.fast import threads, winograd, winograd_matrices
from nst_numpy.gradcheck import rel_error

F32_LAYER = 1e-5
F32_VGG_LAYER = 2.5e-6   # test_vgg_sized_layer_float32_accuracy: measured 1.3-1.4e-6; points 0, +-1, +-2: 4.2-4.9e-6
F64 = 1e-12
LAVIN_GRAY_POINTS = (0, 1, -1, 2, -2)


def _padded(x):
    """(H, W, C) -> zero-padded Winograd input (4 ceil(H/4) + 2, 4 ceil(W/4) + 2, C)."""
    H, W, C = x.shape
    xp = np.zeros((4 * -(-H // 4) + 2, 4 * -(-W // 4) + 2, C), x.dtype)
    xp[1:H + 1, 1:W + 1] = x
    return xp


def _fast_conv(x, w, b=None, relu=False, n_threads=1, band_bytes=1 << 12, bands=None):
    """The engine on an unpadded image, in several bands. The engine's floor of MIN_TILES (256) tiles
    per band would make every test image here one band, so it is lowered to 1 for the call and a small
    band_bytes splits even tiny images. bands: a list that receives (r0, r1) of each band run."""
    H, W, _ = x.shape
    xp = _padded(x)
    out = np.full((xp.shape[0] - 2, xp.shape[1] - 2, w.shape[3]), np.nan, x.dtype)  # NaN: unwritten shows
    min_tiles, band = winograd.MIN_TILES, winograd.WinogradConv._band

    def spy(*args):   # (xp, U, out, bias, relu, r0, r1, scratch)
        if bands is not None:
            bands.append(args[5:7])
        return band(*args)
    winograd.MIN_TILES, winograd.WinogradConv._band = 1, staticmethod(spy)
    engine = winograd.WinogradConv(n_threads, band_bytes=band_bytes)
    try:
        engine.conv(xp, winograd.transform_kernel(w, x.dtype), out, None if b is None else b.astype(x.dtype), relu)
    finally:
        engine.close()
        winograd.MIN_TILES, winograd.WinogradConv._band = min_tiles, staticmethod(band)
    return out[:H, :W]


@pytest.fixture(scope="module")
def net32():
    """One float32 network shared by the tests that only need some network (making one takes a while)."""
    return FastVGG19.random(seed=0, dtype=np.float32)


def _case(rng, H, W, c_in, c_out):
    x = rng.standard_normal((H, W, c_in)) * 3
    w = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))
    return x, w, rng.standard_normal(c_out)


def test_transform_matrices_compute_a_correlation():
    """1-D: A^T [(G g) * (B^T d)] == the 3-tap correlation of 6 inputs (Lavin & Gray, eq. 7)."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal(6), rng.standard_normal(3)
    direct = np.array([d[i:i + 3] @ g for i in range(4)])
    assert rel_error(winograd.AT @ ((winograd.G @ g) * (winograd.BT @ d)), direct) < F64
    # negative control: a wrong entry in B^T breaks it
    bad = winograd.BT.copy()
    bad[1, 2] += 1
    assert rel_error(winograd.AT @ ((winograd.G @ g) * (bad @ d)), direct) > 1e-3


@pytest.mark.parametrize("points", [LAVIN_GRAY_POINTS, (0, 1, -1, Fraction(1, 2), Fraction(-1, 2)),
                                    (Fraction(-5, 3), 0, Fraction(3, 5), 4, Fraction(-1, 7))])
def test_toom_cook_computes_a_correlation_for_any_points(points):
    """toom_cook's matrices satisfy the identity above for other points too (fractions, any order)."""
    bt, g, at = winograd_matrices.toom_cook(points)
    rng = np.random.default_rng(6)
    d, k = rng.standard_normal(6), rng.standard_normal(3)
    assert rel_error(at @ ((g @ k) * (bt @ d)), [d[i:i + 3] @ k for i in range(4)]) < F64


def test_toom_cook_gives_lavin_and_gray_matrices():
    """The derivation (winograd_matrices.toom_cook) gives, for the points 0, 1, -1, 2, -2, exactly the
    F(4x4, 3x3) matrices printed by Lavin & Gray 2015; and the engine's B^T and A^T are
    integers, exact in float32 (as _bt_at says)."""
    bt, g, at = winograd_matrices.toom_cook(LAVIN_GRAY_POINTS)
    assert np.array_equal(bt, [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])
    assert np.allclose(g, [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                           [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], rtol=1e-15, atol=0)
    assert np.array_equal(at, [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])
    for m in (winograd.BT, winograd.AT):
        assert np.array_equal(m, np.round(m)) and np.array_equal(m.astype(np.float32), m)
    for bad in [(0, 1, -1, 2), (0, 1, 1, 2, -2)]:   # four points, or one twice: no F(4, 3)
        with pytest.raises(ValueError, match="5 distinct"):
            winograd_matrices.toom_cook(bad)


@pytest.mark.parametrize("nb, nb_scratch", [(3, 3), (2, 3)])   # the last band of a conv may be shorter
def test_input_transform_gives_bt_d_b_of_every_tile(nb, nb_scratch):
    """winograd.input_transform (the rows and the columns stage, matrix products on strided
    views) against B^T d B computed tile by tile."""
    rng = np.random.default_rng(1)
    tw, c_in = 5, 7
    band = rng.standard_normal((4 * nb + 2, 4 * tw + 2, c_in))
    engine = winograd.WinogradConv(1)
    v = engine._scratch(nb_scratch, tw, band.shape[1], c_in, 4, band.dtype).views(nb)
    V = winograd.input_transform(band, nb, winograd.BT, v).reshape(6, 6, nb, tw, c_in)
    for i in range(nb):
        for j in range(tw):
            d = band[4 * i: 4 * i + 6, 4 * j: 4 * j + 6]                    # (6, 6, C_in)
            want = np.einsum("pk,klc,ql->pqc", winograd.BT, d, winograd.BT)
            assert rel_error(V[:, :, i, j], want) < F64, (i, j)


@pytest.mark.parametrize("H, W, c_in, c_out", [
    (1, 1, 4, 3),      # one pixel: a single tile, almost all padding
    (4, 8, 5, 6),      # whole tiles
    (13, 9, 3, 8),     # odd sizes, not divisible by the tile; C_in = 3 as in conv1_1
    (6, 17, 16, 3),    # C_out = 3 as in conv1_1's backward
])
def test_forward_matches_reference(H, W, c_in, c_out):
    rng = np.random.default_rng(H * 100 + W)
    x, w, b = _case(rng, H, W, c_in, c_out)
    ref = L.conv_forward(x, w, b)[0]
    bands = []
    assert rel_error(_fast_conv(x, w, b, bands=bands), ref) < F64
    assert len(bands) == -(-H // 4)   # one band per row of 4x4 tiles: each band's offset is exercised
    assert rel_error(_fast_conv(x.astype(np.float32), w, b), ref) < F32_LAYER
    # fused ReLU
    assert rel_error(_fast_conv(x, w, b, relu=True), np.maximum(ref, 0)) < F64


def test_backward_to_input_matches_reference():
    rng = np.random.default_rng(2)
    x, w, b = _case(rng, 11, 14, 6, 9)
    dout = rng.standard_normal((11, 14, 9))
    ref = L.conv_backward(dout, (x, w))
    bands = []
    fast = _fast_conv(dout, winograd.flip_kernel(w), bands=bands)
    assert rel_error(fast, ref) < F64 and len(bands) == 3   # 11 rows: 3 bands of one tile row
    assert rel_error(_fast_conv(dout.astype(np.float32), winograd.flip_kernel(w)), ref) < F32_LAYER


def test_wrong_kernel_transform_is_caught():
    """Negative control: the comparison above fails for a slightly wrong transformed kernel."""
    rng = np.random.default_rng(3)
    x, w, b = _case(rng, 8, 8, 4, 4)
    xp = _padded(x)
    U = winograd.transform_kernel(w)
    U[7] *= 1.01
    out = np.empty((8, 8, 4))
    winograd.WinogradConv(1).conv(xp, U, out, b)
    assert rel_error(out, L.conv_forward(x, w, b)[0]) > 1e-4


def _vgg_layer_error(kind):
    """rel_error of a float32 256 -> 256 layer (12 x 12, seed 4) against the float64 reference.
    kind "forward": ReLU-like input (a conv's input in VGG); "backward": a gradient (zero-mean,
    half of it masked off by a ReLU) through the flipped kernel."""
    rng = np.random.default_rng(4)
    x, w, b = _case(rng, 12, 12, 256, 256)
    if kind == "forward":
        x = np.maximum(x, 0)
        return rel_error(_fast_conv(x.astype(np.float32), w.astype(np.float32), b), L.conv_forward(x, w, b)[0])
    x = x * (rng.random(x.shape) > 0.5)
    want = L.conv_backward(x, (None, w))
    return rel_error(_fast_conv(x.astype(np.float32), winograd.flip_kernel(w).astype(np.float32)), want)


@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_vgg_sized_layer_float32_accuracy(kind):
    """A layer of VGG19's width in float32 against the float64 reference, bounded by F32_VGG_LAYER.

    Measured: forward 1.3e-6, backward 1.4e-6 (float32 im2col: 1.5e-7, 1.7e-7); with Lavin &
    Gray's points 0, +-1, +-2: 4.2e-6 and 4.9e-6 (test_old_points_miss_the_float32_bound)."""
    assert _vgg_layer_error(kind) < F32_VGG_LAYER


@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_old_points_miss_the_float32_bound(kind):
    """Control for the test above: the engine with Lavin & Gray's points does not meet its bound,
    so that bound proves the points in use are more accurate (and the engine works with any
    toom_cook matrices: the bias is not tied to the points)."""
    with winograd.interpolation_points(LAVIN_GRAY_POINTS):
        rng = np.random.default_rng(7)
        x, w, b = _case(rng, 9, 10, 6, 5)
        assert rel_error(_fast_conv(x, w, b), L.conv_forward(x, w, b)[0]) < F64   # still exact in float64
        assert _vgg_layer_error(kind) > F32_VGG_LAYER
    assert winograd.BT is winograd_matrices.BT   # and the engine's own points are back


def test_one_network_inside_and_after_other_points_stays_exact():
    """A network's transformed kernels are kept by their points: used in an interpolation_points block
    and after it, it is exact both times (kernels made with one set of points and transformed back with
    another gave an error of 5e8)."""
    x = np.random.default_rng(3).uniform(-100, 100, (20, 24, 3))
    truth = VGG19.random(seed=2, dtype=np.float64).forward(x, ["relu2_1"])["relu2_1"]
    net = FastVGG19.random(seed=2, dtype=np.float64)
    for points in (None, LAVIN_GRAY_POINTS, None):
        with winograd.interpolation_points(points) if points else contextlib.nullcontext():
            assert rel_error(net.forward(x, ["relu2_1"])["relu2_1"], truth) < F64


def test_threads_do_not_change_results():
    rng = np.random.default_rng(5)
    x, w, b = _case(rng, 37, 23, 8, 12)
    x = x.astype(np.float32)
    one = _fast_conv(x, w, b, n_threads=1)
    two = _fast_conv(x, w, b, n_threads=2)
    bands = []
    three = _fast_conv(x, w, b, n_threads=3, band_bytes=1 << 20, bands=bands)   # other band heights
    assert rel_error(one, two) < F32_LAYER and rel_error(one, three) < F32_LAYER
    assert sorted(bands) == [(0, 4), (4, 8), (8, 10)]   # 10 tile rows, ceil(10 / 3) per thread
    x64 = x.astype(np.float64)   # and against the reference, exactly, with a short last band
    assert rel_error(_fast_conv(x64, w, b, n_threads=3, band_bytes=1 << 20), L.conv_forward(x64, w, b)[0]) < F64


@pytest.mark.skipif(not threads.available(), reason="numpy's BLAS thread count cannot be read here")
def test_bands_on_worker_threads_use_single_threaded_blas(monkeypatch):
    """Bands on the worker threads run with one BLAS thread each (2 workers x 2 BLAS threads would
    oversubscribe the cores); one band, or one thread, gets BLAS on all the engine's threads."""
    seen, band = [], winograd.WinogradConv._band

    def recorder(*args):
        seen.append(threads.get_blas_threads())
        return band(*args)
    monkeypatch.setattr(winograd.WinogradConv, "_band", staticmethod(recorder))
    rng = np.random.default_rng(8)
    x, w, b = _case(rng, 16, 16, 8, 8)
    _fast_conv(x.astype(np.float32), w, b, n_threads=2)   # 4 tile rows: 4 bands on 2 workers
    assert seen == [1] * 4
    seen.clear()
    _fast_conv(x[:4].astype(np.float32), w, b, n_threads=2)   # one tile row: one band, here
    assert seen == [2]


def test_band_buffers_are_reused_and_dropped_when_the_arena_grows():
    """One engine, layers of growing then shrinking size: each result matches the float64
    reference (so no cached view of a freed or regrown arena is used), the views of a band
    shape are carved once, and after growth no kept view points into the old arena."""
    rng = np.random.default_rng(11)
    engine = winograd.WinogradConv(1, band_bytes=1 << 12)
    cases = [_case(rng, 12, 16, 4, 4), _case(rng, 20, 24, 16, 8), _case(rng, 12, 16, 4, 4)]
    try:
        for x, w, b in cases:
            xp = _padded(x.astype(np.float32))
            out = np.full((xp.shape[0] - 2, xp.shape[1] - 2, w.shape[3]), np.nan, np.float32)
            engine.conv(xp, winograd.transform_kernel(w, np.float32), out, b.astype(np.float32))
            ref, _ = L.conv_forward(x, w, b)
            assert rel_error(ref, out[:x.shape[0], :x.shape[1]]) < F32_LAYER
        local = engine._local
        scratch = local.scratch[np.dtype(np.float32)]
        assert local.views, "band views are kept"
        for s in local.views.values():
            assert np.shares_memory(s.V, scratch)   # every kept view lives in the current scratch array
        key = next(iter(local.views))
        assert engine._scratch(*key) is local.views[key]
    finally:
        engine.close()


def test_outputs_are_not_overwritten_by_the_next_call(net32):
    """Buffers are reused across calls, so returned arrays must be copies."""
    net = net32
    rng = np.random.default_rng(10)
    a = net.forward(rng.standard_normal((8, 8, 3)), ["relu1_2"])["relu1_2"]
    keep = a.copy()
    dx = net.backward({"relu1_2": rng.standard_normal(a.shape)})
    keep_dx = dx.copy()
    b = net.forward(rng.standard_normal((8, 8, 3)), ["relu1_2"])["relu1_2"]
    net.backward({"relu1_2": rng.standard_normal(b.shape)})
    assert np.array_equal(a, keep) and np.array_equal(dx, keep_dx)


def test_timings_collects_per_layer_seconds(net32):
    net32.timings = {}
    try:
        a = net32.forward(np.zeros((8, 8, 3)), ["relu2_1"])["relu2_1"]
        net32.backward({"relu2_1": np.ones_like(a)})
        assert ("conv1_1", "forward") in net32.timings and ("conv2_1", "backward") in net32.timings
        assert all(t >= 0 for t in net32.timings.values())
    finally:
        net32.timings = None


def test_changing_image_size_uses_clean_buffers(net32):
    """30 px after 32 px (same tile-rounded buffers): no values of the larger image may leak in."""
    rng = np.random.default_rng(11)
    net = net32
    fresh = FastVGG19.from_arrays(net.params, dtype=np.float32)
    big, small = rng.standard_normal((32, 32, 3)) * 50, rng.standard_normal((30, 30, 3)) * 50
    a = net.forward(big, ["relu3_1"])["relu3_1"]
    net.backward({"relu3_1": rng.standard_normal(a.shape)})
    g = rng.standard_normal((7, 7, 256))
    reused = net.forward(small, ["relu3_1"])["relu3_1"], net.backward({"relu3_1": g})
    clean = fresh.forward(small, ["relu3_1"])["relu3_1"], fresh.backward({"relu3_1": g})
    assert np.array_equal(reused[0], clean[0]) and np.array_equal(reused[1], clean[1])


@pytest.mark.parametrize("c_in, c_out", [(3, 8), (8, 3)])
@pytest.mark.parametrize("dtype, bound", [(np.float64, F64), (np.float32, F32_LAYER)])
def test_direct_path_for_three_channels(c_in, c_out, dtype, bound):
    """conv_direct (conv1_1 and its backward) against the reference, both of its branches, 2 threads."""
    rng = np.random.default_rng(12)
    x, w, b = _case(rng, 13, 10, c_in, c_out)
    xp = _padded(x.astype(dtype))
    out = np.full((xp.shape[0] - 2, xp.shape[1] - 2, c_out), np.nan, dtype)
    engine = winograd.WinogradConv(2)
    try:
        engine.conv_direct(xp, w.astype(dtype), out, b.astype(dtype), relu=True)
    finally:
        engine.close()
    assert rel_error(out[:13, :10], np.maximum(L.conv_forward(x, w, b)[0], 0)) < bound


def test_repeated_backward_after_one_forward():
    """backward() overwrites ReLU outputs with gradients (and so redoes the forward for a
    second backward): a second backward of the same forward, from any tap, must give the
    same as on a fresh forward."""
    rng = np.random.default_rng(13)
    net = FastVGG19.random(seed=1, dtype=np.float64)
    x = rng.standard_normal((13, 11, 3)) * 50
    acts = net.forward(x, ["relu1_1", "relu1_2", "relu2_2"])
    g = {n: rng.standard_normal(a.shape) for n, a in acts.items()}
    net.backward({"relu2_2": g["relu2_2"]})           # overwrites relu1_1, relu1_2, relu2_1
    again = [net.backward({n: g[n]}) for n in ("relu1_1", "relu1_2", "relu2_2")]
    for n, d in zip(("relu1_1", "relu1_2", "relu2_2"), again):
        net.forward(x, ["relu1_1", "relu1_2", "relu2_2"])
        assert rel_error(d, net.backward({n: g[n]})) < F64, n


def _bench_precision():
    """scripts/bench_precision.py as a module."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_precision.py"
    spec = importlib.util.spec_from_file_location("bench_precision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_precision_measures_rounding_and_flips():
    """The precision script's measure(): the float64 network against itself has no error and no
    flip; the float32 engine's error through its own masks is rounding (~1e-6)."""
    bp = _bench_precision()
    params = bp.shared_params(0)
    net64 = VGG19(params, dtype=np.float64)
    engine = FastVGG19(params, dtype=np.float32)
    runs = {"self": bp.numpy_network(VGG19(params, dtype=np.float64)), "engine": bp.numpy_network(engine)}
    r = bp.measure([0], 32, 48, runs, net64)[0]
    assert r["self"]["dx"] == r["self"]["dx_masks"] == r["self"]["flips"] == 0
    assert max(r["self"]["acts"].values()) == 0
    assert r["engine"]["dx_masks"] < 1e-5 and max(r["engine"]["acts"].values()) < 1e-5
    assert r["engine"]["flips"] > 0 or r["engine"]["dx"] == r["engine"]["dx_masks"]


def test_bench_precision_objective_errors_need_no_torch(capsys):
    """--objective's figures: the float32 engine's loss and gradient against the float64 reference,
    small (float32 rounding) but not zero (they are measured, not copied)."""
    import re
    bp = _bench_precision()
    bp.objective_errors(bp.shared_params(0), 32, 32, 1)
    out = capsys.readouterr().out
    loss_err, grad_err = (float(v) for v in re.search(r"loss rel. error (\S+), gradient max\|a-b\|/max\|b\| (\S+)",
                                                        out).groups())
    assert loss_err < 1e-5 and 1e-9 < grad_err < 1e-4, out   # 2e-9 and 3e-7 when written; float64 gives ~1e-15


def test_bench_precision_measures_against_the_truth_with_random_gradients():
    """rel_err is max|a - b| / max|b| with b the truth; the shared weights are float32 numbers (so every
    network runs the same ones); the upstream gradients are random, never all ones; the masks given to
    backward_with_masks are the ones it uses (its own give the plain backward, flipped ones do not)."""
    bp = _bench_precision()
    assert bp.rel_err([3.0, 2.0], [1.0, 2.0]) == pytest.approx(1.0)   # not / max|a| (2/3), not the mean (1/2)
    params = bp.shared_params(0)
    for k, b in params.values():
        assert k.dtype == np.float64 and np.array_equal(k, k.astype(np.float32)) and np.array_equal(b, b.astype(np.float32))
    net64 = VGG19(params, dtype=np.float64)
    x, grads = bp.case(0, 32, 32, net64.preprocess)
    assert all(np.std(g) > 0.5 for g in grads.values())
    acts = net64.forward(x, bp.RELUS)
    plain = net64.backward(grads)
    net64.forward(x, bp.RELUS)
    own = bp.backward_with_masks(net64, {n: a > 0 for n, a in acts.items()}, grads)
    flipped = bp.backward_with_masks(net64, {n: a <= 0 for n, a in acts.items()}, grads)
    assert rel_error(own, plain) < 1e-12 and rel_error(flipped, plain) > 1e-2


def test_bench_precision_script_runs_without_torch(capsys, monkeypatch):
    bp = _bench_precision()
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch raises ImportError
    assert bp.main(["--size", "16", "16", "--seeds", "0"]) == 0
    assert "torch is not importable" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        bp.main(["--size", "8", "16"])
    assert e.value.code == 2 and "at least 16 px" in capsys.readouterr().err


def test_bench_precision_script_with_torch(capsys):
    pytest.importorskip("torch")
    bp = _bench_precision()
    assert bp.main(["--size", "16", "32", "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "same masks" in out and "median" in out and "relu5_1" in out


def test_bench_precision_run_changes_the_points_for_a_while_and_scores_three_runs(capsys):
    """--run: inside winograd.interpolation_points the engine computes with Lavin & Gray's points (another float32
    rounding of the same convolution), outside with its own again; final_losses scores three short
    runs with one float64 objective, and they end within 0.1% of each other (the guide's 40-iteration
    runs: 0.008% between the points, 0.3% from float64)."""
    bp = _bench_precision()
    params = bp.shared_params(0)

    def networks(engine, dtype):
        return (FastVGG19 if engine == "fast" else VGG19)(params, dtype=dtype)
    x = np.random.default_rng(3).normal(0, 50, (32, 48, 3))
    ours = networks("fast", np.float32).forward(x, ["relu2_1"])["relu2_1"]
    with winograd.interpolation_points(bp.LAVIN_GRAY_POINTS):
        theirs = networks("fast", np.float32).forward(x, ["relu2_1"])["relu2_1"]
    again = networks("fast", np.float32).forward(x, ["relu2_1"])["relu2_1"]
    truth = networks("reference", np.float64).forward(x, ["relu2_1"])["relu2_1"]
    assert np.array_equal(again, ours) and not np.array_equal(theirs, ours)
    assert rel_error(theirs, truth) < 1e-5 and rel_error(ours, truth) < 1e-5   # both right, to rounding
    losses = bp.final_losses(networks, 48, 2, 1)
    assert len(losses) == 3 and np.ptp(list(losses.values())) / min(losses.values()) < 1e-3
    assert "the points move the final loss by" in capsys.readouterr().out


def test_bench_precision_run_with_a_missing_weights_file_is_one_line(tmp_path, capsys):
    assert _bench_precision().main(["--run", "1", "--weights", str(tmp_path / "nope.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.h5" in err and err.count("\n") == 1
