"""The engine's memory-saving paths against their plain equivalents.

fast.ActivationTimes (a gradient F @ K formed band by band inside backward), FastVGG19.padded
(the Gram matrix read from the padded buffer), ReLU outputs kept only as bool masks
(WinogradConv mask_out / mask_from / add), replay from the planned buffer arena, and
losses.style_loss_from_gram. tests/test_engine_vs_reference.py binds the same paths to the
reference network. float64 throughout where exactness is checked: the fast
path must then equal the plain computation to rounding (rel_error < 1e-12).
"""
import numpy as np
import pytest

from nst_numpy import FastVGG19
from nst_numpy import layers as L
from nst_numpy.fast import ActivationTimes, winograd
from nst_numpy.gradcheck import numerical_gradient, rel_error
from nst_numpy.losses import gram_matrix, gram_matrix_banded, style_layer_loss, style_loss_from_gram
from test_engine_vs_reference import AT_CASES

F64 = 1e-12


@pytest.fixture(scope="module")
def nets():
    """float64 networks with the same random weights, one per pooling (made once: it takes a while).
    3 threads on any machine, so that every layer runs in several bands (test_engine_vs_reference.pairs)."""
    params = FastVGG19.random(seed=21, dtype=np.float64).params
    nets = {p: FastVGG19.from_arrays(params, pooling=p, dtype=np.float64) for p in ("avg", "max")}
    for net in nets.values():
        net.set_threads(3)
    return nets


def _image(H, W, seed=0):
    return np.random.default_rng(seed).standard_normal((H, W, 3)) * 50


# ---------------------------------------------------------------------------
# ActivationTimes
# ---------------------------------------------------------------------------

# AT_CASES: the taps of the ActivationTimes test in test_engine_vs_reference.py, which binds the
# same cases to the reference network; here the engine is checked against itself.


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("size, taps", AT_CASES)
def test_activation_times_equals_explicit_gradient(nets, pooling, size, taps):
    """backward({n: ActivationTimes(K, plus)}) == backward({n: F_n @ K + plus}), F_n the layer's
    activation. K is not symmetric, so a transposed K would be caught."""
    net = nets[pooling]
    rng = np.random.default_rng(len(taps) + size[0])
    x = _image(*size, seed=size[1])
    acts = net.forward(x, list(taps))
    Ks = {n: rng.standard_normal((a.shape[2], a.shape[2])) / a.shape[2] for n, a in acts.items()}
    plus = {n: rng.standard_normal(a.shape) for n, a in acts.items() if taps[n] == "K+plus"}
    explicit = {n: acts[n] @ Ks[n] + plus.get(n, 0) for n in taps}
    want = net.backward(explicit)
    net.forward(x, list(taps))
    got = net.backward({n: ActivationTimes(Ks[n], plus.get(n)) for n in taps})
    assert rel_error(got, want) < F64
    # negative control: the transposed K gives another gradient
    net.forward(x, list(taps))
    wrong = net.backward({n: ActivationTimes(Ks[n].T, plus.get(n)) for n in taps})
    assert rel_error(wrong, want) > 1e-6


def test_activation_times_needs_a_requested_layer(nets):
    """An ActivationTimes for a layer that was run but not requested cannot be formed: error."""
    net = nets["avg"]
    net.forward(_image(12, 12), ["relu2_1"])
    with pytest.raises(ValueError, match="relu1_1"):
        net.backward({"relu1_1": ActivationTimes(np.eye(64)), "relu2_1": np.ones((6, 6, 128))})


# ---------------------------------------------------------------------------
# padded()
# ---------------------------------------------------------------------------

PADDED_TAPS = ["relu1_1", "relu1_2", "conv2_1", "relu2_1", "pool2", "relu3_1"]


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_padded_buffer_holds_the_activation_and_zeros(nets, pooling):
    """padded(n): read-only, the activation at [1:1+H, 1:1+W], zeros everywhere else, and so the
    same Gram matrix as the activation; a layer not requested raises."""
    net = nets[pooling]
    acts = net.forward(_image(13, 17, seed=3), PADDED_TAPS)
    for name in PADDED_TAPS:
        p, a = net.padded(name), acts[name]
        H, W, C = a.shape
        assert p.shape[2] == C and p.shape[0] >= H + 2 and p.shape[1] >= W + 2, name
        assert not p.flags.writeable
        with pytest.raises(ValueError):
            p[1, 1, 0] = 1.0
        assert rel_error(p[1:1 + H, 1:1 + W], a) < F64, name
        outside = p.copy()
        outside[1:1 + H, 1:1 + W] = 0
        assert not outside.any(), f"{name}: non-zero outside the image"
        assert rel_error(gram_matrix(p), gram_matrix(a)) < F64, name
    for name in ["relu2_2", "conv1_1", "pool1"]:   # pool1 and conv1_1 ran, but were not requested
        with pytest.raises(ValueError, match=name):
            net.padded(name)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gram_split_over_threads_equals_gram_matrix(threads):
    """FastVGG19.gram sums one partial Gram per thread: equal to gram_matrix of the activation up to
    float rounding, for a layer large enough to be split (relu1_1) and one that is not (relu5_1)."""
    net = FastVGG19.random(seed=4, dtype=np.float64)
    net.set_threads(threads)
    acts = net.forward(_image(37, 45, seed=6), ["relu1_1", "relu3_1", "relu5_1"])
    for name, a in acts.items():
        assert rel_error(net.gram(name), gram_matrix(a)) < F64, (threads, name)
    with pytest.raises(ValueError, match="relu2_1"):
        net.gram("relu2_1")


def test_padded_zero_border_survives_a_replayed_episode(nets):
    """The arena hands back memory with whatever its last user left: after a backward pass has
    written gradients everywhere, the next forward's padded buffers must again be zero outside."""
    net = nets["avg"]
    x = _image(13, 17, seed=4)
    for _ in range(3):
        acts = net.forward(x, PADDED_TAPS)
        for name in PADDED_TAPS:
            outside = net.padded(name).copy()
            H, W, _ = acts[name].shape
            outside[1:1 + H, 1:1 + W] = 0
            assert not outside.any(), name
        net.backward({n: np.ones_like(a) * 1e3 for n, a in acts.items()})


# ---------------------------------------------------------------------------
# Replay from the planned arena
# ---------------------------------------------------------------------------

def test_repeated_evaluations_are_bit_identical_and_the_arena_settles(nets):
    """Evaluation 1 runs on fresh arrays, later ones on slices of the planned arena: the same
    operations on the same values, so results must be bit-identical (memory placement must
    change nothing; leftovers of the last user must never leak in). The arena stops growing
    after the second evaluation."""
    net = nets["max"]
    net.free_memory()   # start from an empty arena
    x = _image(20, 28, seed=7)
    taps = ["relu1_1", "relu2_1", "conv3_1", "relu3_3"]
    rng = np.random.default_rng(8)
    results, sizes = [], []
    for _ in range(4):
        acts = net.forward(x, taps, copy=False)
        if not results:
            Ks = {n: rng.standard_normal((a.shape[2],) * 2) for n, a in acts.items()}
        grams = [gram_matrix(net.padded(n)) for n in taps]
        dx = net.backward({n: ActivationTimes(Ks[n]) for n in taps})
        results.append((grams, dx))
        sizes.append(net._arena.nbytes)
    for grams, dx in results[1:]:
        # bit-identity is the point: only memory placement differs between evaluations
        assert all(np.array_equal(g, g0) for g, g0 in zip(grams, results[0][0]))
        assert np.array_equal(dx, results[0][1])
    assert sizes[0] == 0            # evaluation 1 recorded; everything given back
    assert sizes[1] > 0             # evaluation 2 ran from the plan
    assert sizes[2] == sizes[3]     # no more planning: the arena stopped growing
    assert sizes[1] == sizes[2]     # and evaluation 2 followed the plan


@pytest.mark.parametrize("drop", ["release_buffers", "free_memory"])
def test_dropping_memory_then_forward_still_works(nets, drop):
    """release_buffers() drops buffers and the worker threads (with their band scratch), free_memory()
    the transformed kernels too; backward then has nothing to work on, and a new forward (and
    backward) gives the same as before."""
    net = nets["avg"]
    x = _image(13, 17, seed=9)
    taps = ["relu1_2", "relu2_1"]
    before = net.forward(x, taps)
    g = {n: np.random.default_rng(10).standard_normal(a.shape) for n, a in before.items()}
    dx_before = net.backward(g)
    kernels = dict(net._wino)
    getattr(net, drop)()
    assert net._arena.nbytes == 0 and net._conv is None
    kept = [k for k, u in kernels.items() if net._wino.get(k) is u]   # the same arrays, not remade
    assert kernels and kept == ([] if drop == "free_memory" else list(kernels))
    with pytest.raises(RuntimeError):
        net.backward(g)
    after = net.forward(x, taps)
    for n in taps:
        assert rel_error(after[n], before[n]) < F64
    assert rel_error(net.backward(g), dx_before) < F64


def test_network_still_usable_after_a_backward_that_raised(nets):
    """A caller error in backward (a gradient of the wrong shape) must not leave the network
    unusable: the next forward/backward must work and give the usual result."""
    net = nets["avg"]
    x = _image(12, 12, seed=12)
    a = net.forward(x, ["relu1_2"])
    g = np.random.default_rng(3).standard_normal(a["relu1_2"].shape)
    want = net.backward({"relu1_2": g})
    net.forward(x, ["relu1_2"])
    with pytest.raises(ValueError):
        net.backward({"relu1_2": np.ones((12, 12, 63))})   # one channel short
    try:
        net.forward(x, ["relu1_2"])   # the arena abandons the buffers the failed backward held
        got = net.backward({"relu1_2": g})
    finally:
        net.free_memory()   # leave the shared network usable for the other tests
    assert rel_error(got, want) < F64


def test_forward_rejects_an_image_too_small_for_the_layers(nets):
    """An image that pools to nothing before the requested layer gets a clear ValueError (not an
    error from deep inside the engine), and the network stays usable."""
    net = nets["max"]
    with pytest.raises(ValueError, match="too small for layer relu3_1"):
        net.forward(_image(3, 40, seed=1), ["relu3_1"])
    assert net.forward(_image(4, 40, seed=1), ["relu3_1"])["relu3_1"].shape == (1, 10, 256)


# ---------------------------------------------------------------------------
# WinogradConv: mask_out, mask_from, add
# ---------------------------------------------------------------------------

def _padded(x):
    """(H, W, C) -> zero-padded Winograd input (4 ceil(H/4) + 2, 4 ceil(W/4) + 2, C)."""
    H, W, C = x.shape
    xp = np.zeros((4 * -(-H // 4) + 2, 4 * -(-W // 4) + 2, C), x.dtype)
    xp[1:H + 1, 1:W + 1] = x
    return xp


@pytest.fixture(scope="module")
def engine():
    """Two threads and small bands: several bands even on these tiny images."""
    e = winograd.WinogradConv(2, band_bytes=1 << 12)
    yield e
    e.close()


def _conv_case(seed, H, W, c_in, c_out):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((H, W, c_in))
    w = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))
    return rng, x, w, rng.standard_normal(c_out) * 0.3


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("kind, c_in, c_out", [("winograd", 6, 8), ("direct", 3, 8), ("direct", 8, 3)])
def test_mask_out_is_the_sign_of_the_output(engine, relu, kind, c_in, c_out):
    """conv / conv_direct(mask_out=m): m == (out > 0) on the image part (13 x 17, not tile
    multiples); the output itself is unchanged by asking for the mask."""
    H, W = 13, 17
    _, x, w, b = _conv_case(1, H, W, c_in, c_out)
    xp = _padded(x)
    out = np.full((xp.shape[0] - 2, xp.shape[1] - 2, c_out), np.nan)
    mask = np.ones((H, W, c_out), bool)
    mask[::2] = False   # garbage, as arena memory would hold: every entry must be written
    if kind == "winograd":
        engine.conv(xp, winograd.transform_kernel(w), out, b, relu, mask_out=mask)
    else:
        engine.conv_direct(xp, w, out, b, relu, mask_out=mask)
    ref = L.conv_forward(x, w, b)[0]
    assert rel_error(out[:H, :W], np.maximum(ref, 0) if relu else ref) < F64
    np.testing.assert_array_equal(mask, out[:H, :W] > 0)
    assert 0.2 < mask.mean() < 0.8   # a real mask, not all on or all off


def _backward_case(seed=2, H=13, W=17, c_in=6, c_out=5):
    """A conv backward into a ReLU: dout (H, W, c_out) through the flipped kernel, add, ReLU mask."""
    rng, _, w, _ = _conv_case(seed, H, W, c_in, c_out)
    dout = rng.standard_normal((H, W, c_out))
    F = np.maximum(rng.standard_normal((H, W, c_in)), 0)   # the ReLU's output below this conv
    add = rng.standard_normal((H, W, c_in))
    ref = (L.conv_backward(dout, (None, w)) + add) * (F > 0)
    return _padded(dout), winograd.transform_kernel(winograd.flip_kernel(w)), F, add, ref


def _run_backward(engine, gp, U, shape, **kw):
    out = np.full((gp.shape[0] - 2, gp.shape[1] - 2, U.shape[2]), np.nan)
    engine.conv(gp, U, out, **kw)
    return out[:shape[0], :shape[1]]


def test_mask_from_bool_or_float_and_add_callable_or_array_agree(engine):
    """mask_from: a bool mask or the ReLU's float output; add: an array or add(r0, r1). All four
    combinations equal the reference (conv_backward + add) * (F > 0)."""
    gp, U, F, add, ref = _backward_case()
    results = {}
    for mname, mask in [("bool", F > 0), ("float", F)]:
        for aname, a in [("array", add), ("callable", lambda r0, r1: add[r0:r1])]:
            results[mname, aname] = _run_backward(engine, gp, U, F.shape, add=a, mask_from=mask)
            assert rel_error(results[mname, aname], ref) < F64, (mname, aname)
    first = results["bool", "array"]
    for key, res in results.items():
        # bit-identical: every variant reduces to the same bool mask and the same added rows
        assert np.array_equal(res, first), key


def test_mask_from_and_add_may_share_memory_with_out(engine):
    """As backward does: out is the ReLU's own buffer, whose image part holds F, read as the
    mask and for add = F @ K band by band before each band is overwritten."""
    gp, U, F, _, _ = _backward_case(seed=3)
    H, W, C = F.shape
    K = np.random.default_rng(4).standard_normal((C, C))
    w = _conv_case(3, H, W, C, U.shape[1])[2]   # the kernel _backward_case(seed=3) used
    ref = (L.conv_backward(gp[1:H + 1, 1:W + 1], (None, w)) + F @ K) * (F > 0)
    buf = np.zeros((gp.shape[0] - 2, gp.shape[1] - 2, C))
    buf[:H, :W] = F
    Fv = buf[:H, :W]
    engine.conv(gp, U, buf, add=lambda r0, r1: Fv[r0:r1] @ K, mask_from=Fv)
    assert rel_error(buf[:H, :W], ref) < F64
    # add as an array that views out: each band's slice is copied before the band is written.
    buf[:H, :W] = F
    engine.conv(gp, U, buf, add=Fv, mask_from=Fv)
    assert rel_error(buf[:H, :W], (L.conv_backward(gp[1:H + 1, 1:W + 1], (None, w)) + F) * (F > 0)) < F64


def test_add_needs_a_mask(engine):
    """add without mask_from is a caller error (add belongs to the ReLU backward)."""
    gp, U, F, add, _ = _backward_case()
    with pytest.raises(ValueError, match="add comes with a ReLU's mask"):
        _run_backward(engine, gp, U, F.shape, add=add)
    with pytest.raises(ValueError, match="out has shape"):
        engine.conv(gp, U, np.zeros((1, 1, U.shape[2])))


# ---------------------------------------------------------------------------
# losses.style_loss_from_gram
# ---------------------------------------------------------------------------

def test_style_loss_from_gram_is_eq_4_and_6():
    """E from the Gram matrix is eq. 4 written out, K is (G - A) / (N^2 M^2), F2d @ K is
    style_layer_loss's gradient, and that gradient matches finite differences of E."""
    rng = np.random.default_rng(11)
    F = rng.standard_normal((5, 7, 6))
    A = gram_matrix(rng.standard_normal((5, 7, 6)))
    G = np.einsum("hwi,hwj->ij", F, F)   # eq. 3 without gram_matrix
    N, M = 6, 5 * 7
    E, K = style_loss_from_gram(gram_matrix(F), A, M)
    assert abs(E - np.sum((G - A) ** 2) / (4 * N ** 2 * M ** 2)) <= 1e-12 * abs(E)   # eq. 4
    assert rel_error(K, (G - A) / (N ** 2 * M ** 2)) < F64                          # eq. 6's factor
    grad = (F.reshape(-1, 6) @ K).reshape(F.shape)
    assert rel_error(grad, style_layer_loss(F, A)[1]) < F64   # the reference layer loss is this product
    numeric = numerical_gradient(lambda z: style_loss_from_gram(gram_matrix(z), A, 35)[0], F.copy())
    assert rel_error(grad, numeric) < 1e-8
    assert rel_error(grad / 2, numeric) > 1e-2   # control: one of the Gram matrix's two factors forgotten
    # the Gram matrix of a zero-padded copy gives the same loss (how the objective calls it)
    padded = np.zeros((8, 10, 6))
    padded[1:6, 1:8] = F
    assert abs(style_loss_from_gram(gram_matrix(padded), A, 35)[0] - E) <= 1e-12 * abs(E)


@pytest.mark.parametrize("band_values", [7 * 6, 3 * 7 * 6, 1 << 22])   # 1 row a band; 3 (the last one short); all
def test_gram_matrix_banded_equals_gram_matrix(band_values):
    """losses.gram_matrix_banded sums gram_matrix over bands of rows in float64, from a strided view
    (a tile's owned part) as from a whole array."""
    F = np.random.default_rng(12).standard_normal((11, 9, 6))
    view = F[1:11, 1:8]                                     # (10, 7, 6), not contiguous
    want = gram_matrix(np.ascontiguousarray(view))
    got = gram_matrix_banded(view, np.float64, band_values)
    assert got.dtype == np.float64 and rel_error(got, want) < F64
    # float32 products summed in float64: float32 rounding, nothing worse
    assert rel_error(gram_matrix_banded(view, np.float32, band_values), want) < 1e-6
    assert rel_error(gram_matrix_banded(view[:-1], np.float64, band_values), want) > 1e-3   # control: a row short


def test_style_loss_from_gram_does_not_modify_its_inputs():
    """K is computed in place in a new array: G and A are the caller's and must stay as they were."""
    rng = np.random.default_rng(12)
    G, A = gram_matrix(rng.standard_normal((3, 4, 5))), gram_matrix(rng.standard_normal((3, 4, 5)))
    G0, A0 = G.copy(), A.copy()
    _, K = style_loss_from_gram(G, A, 12)
    assert not np.shares_memory(K, G) and not np.shares_memory(K, A)
    np.testing.assert_array_equal(G, G0)   # exact: untouched memory
    np.testing.assert_array_equal(A, A0)


@pytest.mark.parametrize("shape", [(5, 5), (6, 5), (36,), (6, 6, 1)])
def test_style_loss_from_gram_rejects_a_wrong_target(shape):
    """A target Gram matrix of the wrong shape is an error, not a broadcast."""
    G = gram_matrix(np.ones((2, 3, 6)))
    with pytest.raises(ValueError, match="6, 6"):
        style_loss_from_gram(G, np.zeros(shape), 6)



def test_a_new_image_size_keeps_the_transformed_kernels():
    """The kernels do not depend on the image size: a new size re-plans the buffers but keeps
    them (transforming VGG19's kernels again would cost time at every scale change)."""
    net = FastVGG19.random(seed=4, dtype=np.float64)
    net.forward(_image(12, 12, seed=1), ["relu2_1"])
    key = ("conv2_1", False, winograd.current_points())
    U = net._wino[key]
    a = net.forward(_image(16, 20, seed=2), ["relu2_1"])["relu2_1"]
    assert net._wino[key] is U
    fresh = FastVGG19.random(seed=4, dtype=np.float64).forward(_image(16, 20, seed=2), ["relu2_1"])["relu2_1"]
    assert rel_error(a, fresh) < F64
