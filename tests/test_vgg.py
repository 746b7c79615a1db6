"""The reference VGG19: structure, dtype handling, an independent implementation, and the whole
network's gradient from several taps (the engine is bound to it in test_engine_vs_reference.py)."""
import numpy as np
import pytest
from scipy.signal import correlate

from nst_numpy import LAYER_NAMES, FastVGG19, VGG19
from nst_numpy.gradcheck import check_network, rel_error
from nst_numpy.vgg_spec import CONV_SPECS, TORCHVISION


def test_layer_names():
    assert LAYER_NAMES[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert LAYER_NAMES[-3:] == ["conv5_4", "relu5_4", "pool5"]
    assert len(LAYER_NAMES) == 37


def test_from_arrays_round_trips_params():
    net = VGG19.random(seed=3, dtype=np.float64)
    net2 = VGG19.from_arrays(net.params, pooling="max", dtype=np.float64)
    for name, c_in, c_out in CONV_SPECS:
        k, b = net2.params[name]
        assert k.shape == (3, 3, c_in, c_out) and b.shape == (c_out,)
        assert np.array_equal(k, net.params[name][0])


def test_from_arrays_rejects_bad_shapes():
    params = dict(VGG19.random(seed=0).params)
    params["conv2_1"] = (np.zeros((3, 3, 64, 127)), np.zeros(127))
    with pytest.raises(ValueError, match="conv2_1"):
        VGG19.from_arrays(params)
    del params["conv2_1"]
    with pytest.raises(ValueError, match="missing"):
        VGG19.from_arrays(params)


def test_forward_shapes_and_depth():
    net = VGG19.random(seed=0)
    acts = net.forward(np.zeros((16, 24, 3)), ["relu1_1", "relu3_1", "pool3"])
    assert acts["relu1_1"].shape == (16, 24, 64)
    assert acts["relu3_1"].shape == (4, 6, 256)
    assert acts["pool3"].shape == (2, 3, 256)
    assert all(a.dtype == np.float32 for a in acts.values())
    # It stopped at pool3: nothing deeper was computed.
    assert net._caches[-1][0] == "pool3"


def _reference_forward(params, x, upto, pooling):
    """An independent VGG19 forward: scipy correlate per channel pair, explicit pooling loops."""
    for name in LAYER_NAMES:
        if name.startswith("conv"):
            w, b = params[name]
            x = np.stack([sum(correlate(x[:, :, c], w[:, :, c, o], mode="same") for c in range(w.shape[2])) + b[o]
                          for o in range(w.shape[3])], axis=-1)
        elif name.startswith("relu"):
            x = np.maximum(x, 0)
        else:
            H, W = x.shape[0] // 2, x.shape[1] // 2
            red = np.mean if pooling == "avg" else np.max
            x = np.array([[red(x[2 * i:2 * i + 2, 2 * j:2 * j + 2], axis=(0, 1)) for j in range(W)] for i in range(H)])
        if name == upto:
            return x


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_forward_matches_independent_implementation(pooling):
    # Narrow random weights keep the scipy reference fast: use only the first two blocks.
    net = VGG19.random(seed=5, pooling=pooling, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((10, 14, 3))
    ours = net.forward(x, ["relu2_2"])["relu2_2"]
    ref = _reference_forward(net.params, x, "relu2_2", pooling)
    assert rel_error(ours, ref) < 1e-12


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_network_gradient_from_several_taps(pooling):
    rng = np.random.default_rng(7)
    net = VGG19.random(seed=1, pooling=pooling, dtype=np.float64)
    x = rng.standard_normal((16, 24, 3)) * 50
    taps = ["relu1_1", "conv2_1", "relu3_1", "pool3", "relu4_2", "relu5_1"]
    err = check_network(net, x, taps, rng, n_samples=48)
    assert err < 1e-6


class _DeepTapDoubled:
    """The reference network with the gradient arriving at relu5_1, the tap whose share of dx is smallest,
    doubled: a bug confined to block 5."""

    def __init__(self, net):
        self.net = net

    def forward(self, x, taps):
        return self.net.forward(x, taps)

    def backward(self, grads):
        return self.net.backward({n: 2 * g if n == "relu5_1" else g for n, g in grads.items()})


def test_network_check_catches_a_bug_in_the_deepest_tap():
    """check_network balances the taps' upstream gradients, so a bug in relu5_1's share alone is caught
    (unbalanced, relu1_1's share is over 3000 times larger and this bug moved dx by 1e-4)."""
    rng = np.random.default_rng(9)
    net = VGG19.random(seed=1, dtype=np.float64)
    x = rng.standard_normal((16, 16, 3)) * 50
    taps = ["relu1_1", "conv2_1", "relu3_1", "pool3", "relu4_2", "relu5_1"]
    assert check_network(net, x, taps, rng, n_samples=12) < 1e-6
    assert check_network(_DeepTapDoubled(net), x, taps, rng, n_samples=12) > 1e-2


def test_network_negative_control():
    """Breaking one layer's backward must make the whole-network check fail."""
    rng = np.random.default_rng(8)
    net = VGG19.random(seed=1, dtype=np.float64)
    x = rng.standard_normal((16, 24, 3)) * 50
    import nst_numpy.layers as L
    good = L.avgpool_backward
    L.avgpool_backward = lambda d, c: 2 * good(d, c)  # wrong scale inside the network
    try:
        err = check_network(net, x, ["relu1_1", "relu3_1"], rng, n_samples=60)
    finally:
        L.avgpool_backward = good
    assert err > 1e-2


def test_backward_accumulates_gradients():
    """backward({a: g1, b: g2}) == backward({a: g1}) + backward({b: g2}), by linearity."""
    rng = np.random.default_rng(2)
    net = VGG19.random(seed=2, dtype=np.float64)
    x = rng.standard_normal((12, 12, 3))
    acts = net.forward(x, ["relu1_2", "relu2_1"])
    g1, g2 = (rng.standard_normal(acts[n].shape) for n in ("relu1_2", "relu2_1"))
    both = net.backward({"relu1_2": g1, "relu2_1": g2})
    one = net.backward({"relu1_2": g1})
    two = net.backward({"relu2_1": g2})
    assert rel_error(both, one + two) < 1e-12


@pytest.mark.parametrize("cls", [VGG19, FastVGG19])
def test_copied_activations_are_the_callers_own(cls):
    """forward(copy=True) hands out arrays the network keeps no reference to: overwriting them
    changes neither the next backward nor another copy. (Writing into copy=False's views raises.)"""
    rng = np.random.default_rng(5)
    net = cls.random(seed=2, dtype=np.float64)
    x = rng.standard_normal((12, 12, 3))
    g = rng.standard_normal((6, 6, 128))
    net.forward(x, ["relu2_1"])
    expected = net.backward({"relu2_1": g})
    acts = net.forward(x, ["relu1_1", "relu1_2", "relu2_1"])
    for a in acts.values():
        a[...] = -1.0                # every ReLU mask and every conv input, were these the network's own
    assert rel_error(net.backward({"relu2_1": g}), expected) < 1e-12
    view = net.forward(x, ["relu1_2"], copy=False)["relu1_2"]
    with pytest.raises(ValueError):
        view[0, 0, 0] = 1.0


def test_release_buffers_drops_the_last_forward():
    net = VGG19.random(seed=1, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal((8, 8, 3))
    a = net.forward(x, ["relu1_1"])["relu1_1"]
    net.release_buffers()
    with pytest.raises(RuntimeError):
        net.backward({"relu1_1": a})
    net.forward(x, ["relu1_1"])
    assert net.backward({"relu1_1": a}).shape == x.shape


def test_float32_matches_float64():
    net64 = VGG19.random(seed=4, dtype=np.float64)
    net32 = VGG19.from_arrays(net64.params, dtype=np.float32)
    x = np.random.default_rng(3).standard_normal((32, 32, 3)) * 50
    a64 = net64.forward(x, ["relu5_1"])["relu5_1"]
    a32 = net32.forward(x, ["relu5_1"])["relu5_1"]
    assert a32.dtype == np.float32
    assert rel_error(a32, a64) < 1e-4
    g = np.random.default_rng(4).standard_normal(a64.shape)
    assert rel_error(net32.backward({"relu5_1": g}), net64.backward({"relu5_1": g})) < 1e-4


def test_backward_errors():
    net = VGG19.random(seed=0)
    with pytest.raises(RuntimeError):
        net.backward({"relu1_1": np.zeros((4, 4, 64))})
    net.forward(np.zeros((8, 8, 3)), ["relu1_1"])
    with pytest.raises(ValueError, match="relu2_1"):
        net.backward({"relu2_1": np.zeros((4, 4, 128))})
    with pytest.raises(ValueError, match="unknown"):
        net.forward(np.zeros((8, 8, 3)), ["relu9_9"])
    with pytest.raises(ValueError, match=r"expected an image of shape \(H, W, 3\), got \(8, 8, 4\)"):
        net.forward(np.zeros((8, 8, 4)), ["relu1_1"])   # RGBA: the caller must composite first


def test_bad_network_settings_are_refused():
    from nst_numpy.gradcheck import numerical_gradient
    from nst_numpy.vgg_spec import Preprocessing
    with pytest.raises(ValueError, match="pooling must be 'avg' or 'max', not 'min'"):
        VGG19.random(seed=0, pooling="min")
    with pytest.raises(ValueError, match="channel_order must be 'RGB' or 'BGR', not 'GBR'"):
        Preprocessing("GBR")
    for bad in (dict(scale=0.0), dict(mean=(1.0, 2.0)), dict(std=(1.0, 0.0, 1.0))):
        with pytest.raises(ValueError, match="invalid preprocessing"):
            Preprocessing(**bad)
    with pytest.raises(TypeError, match="float64"):   # float32 differences would measure rounding, not slope
        numerical_gradient(lambda v: float(np.sum(v ** 2)), np.ones(3, np.float32))


def test_numerical_gradient_perturbs_non_contiguous_inputs():
    """A transpose or a strided slice is probed in place too: the slope of sum(c * x) is c."""
    from nst_numpy.gradcheck import numerical_gradient, rel_error
    rng = np.random.default_rng(0)
    for x in (rng.standard_normal((3, 4)).T, rng.standard_normal((3, 8))[:, ::2]):
        c = rng.standard_normal(x.shape)
        numeric = numerical_gradient(lambda v: float(np.sum(c * v)), x)
        assert rel_error(numeric, c) < 1e-8
        assert rel_error(numerical_gradient(lambda v: float(np.sum(c * v)), x, indices=[1, 5]),
                         c.reshape(-1)[[1, 5]]) < 1e-8


@pytest.mark.parametrize("pre", [VGG19.random(seed=0).preprocessing, TORCHVISION])
def test_preprocess_round_trip(pre):
    net = VGG19.random(seed=0, preprocessing=pre, dtype=np.float64)
    rgb = np.random.default_rng(0).uniform(0, 255, (4, 5, 3))
    x = net.preprocess(rgb)
    assert x.dtype == np.float64
    assert rel_error(net.deprocess(x), rgb) < 1e-14


def test_set_threads_validates():
    net = FastVGG19.random(seed=0)
    net.set_threads(1)
    assert net.threads == 1
    with pytest.raises(ValueError):
        net.set_threads(0)


def test_overwritten_tap_control_breaks_the_real_join():
    """The gradcheck's negative control edits the one join line of VGG19.backward
    (`d = g if d is None else d + g` -> `d = g`): the check must then fail, and the control
    must refuse to run if that line is ever changed (it would test nothing)."""
    from nst_numpy import gradcheck
    rng = np.random.default_rng(9)
    net = VGG19.random(seed=1, dtype=np.float64)
    x = rng.standard_normal((16, 16, 3)) * 50
    taps = ["relu1_1", "relu2_1", "relu3_1"]
    assert check_network(net, x, taps, rng, n_samples=40) < 1e-6
    assert check_network(gradcheck.with_overwritten_taps(net), x, taps, rng, n_samples=40) > 1e-2
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gradcheck, "JOIN", "d = d + g  # not in the source")
        with pytest.raises(AssertionError, match="no longer has the line"):
            gradcheck.with_overwritten_taps(net)


def test_preprocessing_channel_order_direction():
    from nst_numpy.vgg_spec import CAFFE, MATCONVNET
    red = np.array([[[255.0, 0.0, 0.0]]])
    assert np.allclose(CAFFE.preprocess(red, np.float64)[0, 0], [-103.939, -116.779, 255 - 123.68])   # BGR
    assert np.allclose(MATCONVNET.preprocess(red, np.float64)[0, 0], [255 - 123.68, -116.779, -103.939])


def test_backward_refuses_a_transposed_gradient():
    net = VGG19.random(seed=0)
    net.forward(np.zeros((16, 24, 3)), ["relu1_1"])
    with pytest.raises(ValueError, match="has shape"):
        net.backward({"relu1_1": np.zeros((24, 16, 64))})


def test_random_params_are_he_initialised_by_fan_in():
    from nst_numpy.vgg_spec import random_params
    k = random_params(0)["conv2_1"][0]   # C_in 64, C_out 128
    assert abs(k.std() / np.sqrt(2 / (9 * 64)) - 1) < 0.05
