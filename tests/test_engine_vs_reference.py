"""The engine (fast.FastVGG19) against the reference network (vgg.VGG19): the test that binds them.

The reference is checked on its own: against an independent implementation and by finite
differences (tests/test_vgg.py, gradcheck.py). Here the engine must compute the same numbers:

- float64: activations and input gradients equal to rounding, rel_error <= 1e-10 (measured
  ~1e-15), for array gradients and for ActivationTimes (eq. 6's F @ K formed inside backward);
- float32: activations within 1e-4 of the float64 reference (the Winograd transforms' rounding,
  ~1e-6 per layer); the input gradient too, given the same ReLU masks (see the test).

Odd sizes make every pooling floor; the taps sit under convs and under pools, and some are
conv outputs (so their ReLU runs unfused), to reach every fused path of the engine.
"""
import numpy as np
import pytest

from nst_numpy import LAYER_NAMES, FastVGG19, VGG19
from nst_numpy.fast import ActivationTimes, activation_times
from nst_numpy.gradcheck import rel_error

F64 = 1e-10
F32 = 1e-4


@pytest.fixture(scope="module")
def pairs():
    """{pooling: (reference, engine)}, float64, the same random weights (made once: it takes a while).
    The engine runs 3 threads on any machine: at least 3 bands per layer (the last one shorter), so
    the band offsets are tested even where CI has one core."""
    params = VGG19.random(seed=21, dtype=np.float64).params
    out = {}
    for p in ("avg", "max"):
        engine = FastVGG19.from_arrays(params, pooling=p, dtype=np.float64)
        engine.set_threads(3)
        out[p] = (VGG19.from_arrays(params, pooling=p, dtype=np.float64), engine)
    return out


def _image(H, W, seed=0):
    return np.random.default_rng(seed).standard_normal((H, W, 3)) * 50


# (image size, taps)
CASES = [
    ((35, 29), ["relu1_1", "conv2_1", "relu3_1", "pool3", "relu4_2", "relu5_1"]),   # the gradcheck's taps
    ((11, 13), ["relu1_2", "conv2_1", "relu2_2"]),          # a relu right under a pool; a conv output
    ((13, 17), ["conv1_2", "relu1_2", "conv3_1"]),          # conv outputs: their ReLUs run unfused
    ((7, 5), ["relu1_1"]),                                  # one tap: conv1_1's direct path alone
    ((12, 10), ["pool1", "pool2"]),                         # pooled outputs requested
]


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("size, taps", CASES)
def test_activations_and_gradients_match(pairs, pooling, size, taps):
    ref, fast = pairs[pooling]
    rng = np.random.default_rng(size[0])
    x = _image(*size, seed=size[1])
    want, got = ref.forward(x, taps), fast.forward(x, taps)
    for name in taps:
        assert got[name].shape == want[name].shape, name
        assert rel_error(got[name], want[name]) < F64, name
    grads = {n: rng.standard_normal(a.shape) for n, a in want.items()}
    assert rel_error(fast.backward(grads), ref.backward(grads)) < F64


# (image size, {tap: "K" | "K+plus"}): relu1_1 sits right under a conv (its gradient is formed
# inside conv1_2's backward bands), relu1_2 / relu2_2 right under a pool (inside the pool's
# backward bands; 13 rows: the odd last row has its own path), conv3_1 is requested before its
# ReLU, and the deepest tap of each case starts the backward pass.
AT_CASES = [
    ((20, 28), {"relu1_1": "K", "relu2_2": "K", "conv3_1": "K+plus", "relu3_2": "K"}),
    ((13, 17), {"relu1_2": "K+plus", "relu2_1": "K", "pool2": "K"}),
    ((13, 17), {"relu1_1": "K", "relu1_2": "K+plus"}),          # deepest: a relu under a pool, with plus
    ((13, 17), {"conv2_1": "K", "relu2_2": "K+plus", "conv3_1": "K"}),   # deepest: a conv output
]


@pytest.mark.parametrize("pooling, band_bytes", [("avg", None), ("max", None), ("avg", 1)])
@pytest.mark.parametrize("size, taps", AT_CASES)
def test_activation_times_equals_eq6_as_an_array(pairs, pooling, band_bytes, size, taps, monkeypatch):
    """fast.backward({n: ActivationTimes(K, plus)}) == reference backward({n: F_n @ K + plus}),
    F_n the layer's activation: eq. 6 formed inside the engine's bands equals eq. 6 as an
    array. K is not symmetric, so a transposed K would be caught (negative control).
    band_bytes = 1: where a gradient is injected outside a conv's bands (the deepest tap, a tap
    under a pool), activation_times.add_in_bands adds it one row at a time, not in one band."""
    if band_bytes is not None:
        monkeypatch.setattr(activation_times, "BAND_BYTES", band_bytes)
    ref, fast = pairs[pooling]
    rng = np.random.default_rng(len(taps) + size[0])
    x = _image(*size, seed=size[1])
    acts = ref.forward(x, list(taps))
    Ks = {n: rng.standard_normal((a.shape[2], a.shape[2])) / a.shape[2] for n, a in acts.items()}
    plus = {n: rng.standard_normal(a.shape) for n, a in acts.items() if taps[n] == "K+plus"}
    want = ref.backward({n: acts[n] @ Ks[n] + plus.get(n, 0) for n in taps})
    fast.forward(x, list(taps))
    assert rel_error(fast.backward({n: ActivationTimes(Ks[n], plus.get(n)) for n in taps}), want) < F64
    fast.forward(x, list(taps))
    wrong = fast.backward({n: ActivationTimes(Ks[n].T, plus.get(n)) for n in taps})
    assert rel_error(wrong, want) > 1e-6


def test_float32_engine_matches_float64_reference():
    """The whole network to relu5_1: float32 engine on 2 threads vs the float64 reference.

    Forward: rel_error < 1e-4 at every tap (a ReLU is continuous, so rounding stays rounding).
    Backward: a ReLU whose input lies within float32 rounding of 0 may be on in one precision
    and off in the other, which changes the pixel gradient by O(1) wherever that unit reaches
    (a float32 reference does the same). So the reference's ReLU caches (their outputs, read
    only as a mask by layers.relu_backward) are replaced by the float32 run's outputs: what
    remains is rounding. (Max pooling's argmax can flip the same way; it is checked in float64.)
    """
    rng = np.random.default_rng(0)
    ref = VGG19.random(seed=7, dtype=np.float64)
    fast = FastVGG19.from_arrays(ref.params, dtype=np.float32)
    fast.set_threads(2)
    x = rng.standard_normal((35, 29, 3)) * 50            # odd sizes: every pooling floors
    taps = ["relu1_1", "conv2_1", "relu3_1", "relu4_2", "relu5_1"]
    relus = [n for n in LAYER_NAMES[:LAYER_NAMES.index("relu5_1") + 1] if n.startswith("relu")]
    got = fast.forward(x, taps + relus)
    want = ref.forward(x, taps)
    for name in taps:
        assert got[name].dtype == np.float32
        assert rel_error(got[name], want[name]) < F32, name
    ref._caches = [(n, got[n].astype(np.float64) if n.startswith("relu") else c) for n, c in ref._caches]
    grads = {n: rng.standard_normal(want[n].shape) for n in taps}
    fast.forward(x, taps)
    assert rel_error(fast.backward(grads), ref.backward(grads)) < F32


def test_same_api_and_errors(pairs):
    """Both networks take and refuse the same requests with the same messages."""
    for net in pairs["avg"]:
        with pytest.raises(ValueError, match="unknown"):
            net.forward(_image(8, 8), ["relu9_9"])
        with pytest.raises(ValueError, match="too small for layer relu3_1"):
            net.forward(_image(3, 40), ["relu3_1"])
        net.forward(_image(8, 8), ["relu1_1"])
        with pytest.raises(ValueError, match="relu2_1"):
            net.backward({"relu2_1": np.zeros((4, 4, 128))})
        with pytest.raises(ValueError, match="at least one"):
            net.backward({})
        views = net.forward(_image(8, 8), ["relu1_2"], copy=False)
        assert not views["relu1_2"].flags.writeable   # a view of the network's own array
    ref, fast = pairs["avg"]
    assert isinstance(fast, VGG19) and fast.params.keys() == ref.params.keys()


def test_gradients_of_the_wrong_shape_are_refused_by_both(pairs):
    """No broadcasting and no silently dropped rows: a gradient has its activation's shape."""
    for net in pairs["avg"]:
        net.forward(_image(12, 12), ["relu1_1", "relu2_1"])        # relu2_1: (6, 6, 128)
        for shape in [(7, 6, 128), (1, 6, 128), (1, 1, 128), (6, 6, 64)]:
            with pytest.raises(ValueError, match=r"relu2_1 has shape .*; its activation has shape \(6, 6, 128\)"):
                net.backward({"relu2_1": np.zeros(shape)})
        net.backward({"relu2_1": np.zeros((6, 6, 128))})            # the control: the right shape passes
    fast = pairs["avg"][1]
    fast.forward(_image(12, 12), ["relu1_1", "relu2_1"])
    with pytest.raises(ValueError, match=r"the K for relu2_1 has shape \(64, 64\)"):
        fast.backward({"relu2_1": ActivationTimes(np.zeros((64, 64)))})
    with pytest.raises(ValueError, match=r"the plus for relu2_1"):
        fast.backward({"relu2_1": ActivationTimes(np.zeros((128, 128)), plus=np.zeros((6, 5, 128)))})


@pytest.mark.parametrize("copy", [False, True])
def test_views_of_the_network_may_be_gradients(pairs, copy):
    """backward() with views from forward(copy=False) as gradients, each layer's own and another
    layer's of the same shape (relu1_1 and relu1_2 swapped), equals backward() of copies, as in the
    reference: FastVGG19._unaliased copies them before the pass writes over the buffers they view.
    Without it the engine's result was off by rel_error 0.17, and by 0.13 through a plus."""
    ref, fast = pairs["avg"]
    x, taps = _image(13, 11, seed=3), ["relu1_1", "relu1_2", "relu2_1"]
    swap = {"relu1_1": "relu1_2", "relu1_2": "relu1_1", "relu2_1": "relu2_1"}   # gradient of n: activation of swap[n]
    acts = ref.forward(x, taps)
    want = ref.backward({n: acts[swap[n]].copy() for n in taps})
    views = fast.forward(x, taps, copy=False)
    grads = {n: views[swap[n]].copy() if copy else views[swap[n]] for n in taps}
    assert all(fast._arena.may_share_memory(g) for g in grads.values()) != copy   # views alias, copies do not
    assert rel_error(fast.backward(grads), want) < F64
    # The same through an ActivationTimes' plus: F @ (I / 2) + plus, so the result is want plus
    # the reference's backward of F / 2 (backward is linear in its gradients for a fixed forward).
    want_half = ref.backward({n: acts[n] / 2 for n in taps})
    views = fast.forward(x, taps, copy=False)
    halves = {n: ActivationTimes(np.eye(views[n].shape[2]) / 2, plus=views[swap[n]].copy() if copy else views[swap[n]])
              for n in taps}
    assert rel_error(fast.backward(halves), want + want_half) < F64
