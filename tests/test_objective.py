"""The whole objective, network included, against finite differences; targets, bounds, optimisers."""
import dataclasses

import numpy as np
import pytest

from nst_numpy import FastVGG19, VGG19
from nst_numpy.config import STYLE_LAYERS, Config
from nst_numpy.gradcheck import numerical_gradient, rel_error
from nst_numpy.losses import content_loss, gram_matrix, style_layer_loss, tv_loss
from nst_numpy.objective import make_objective, pixel_bounds
from nst_numpy.optimize import stylize
from nst_numpy.samples import landscape, swirls
from nst_numpy.vgg_spec import TORCHVISION


@pytest.fixture(scope="module")
def net64():
    """The reference network: the objective's gradient checks run on it."""
    return VGG19.random(seed=1, dtype=np.float64)


@pytest.fixture(scope="module")
def net32():
    """The engine, as real runs use it."""
    return FastVGG19.random(seed=0, dtype=np.float32)


def _images(net, rng, shape=(16, 16), style_shape=(20, 18)):
    content = net.preprocess(rng.uniform(0, 255, shape + (3,)))
    style = net.preprocess(rng.uniform(0, 255, style_shape + (3,)))
    x = net.preprocess(rng.uniform(0, 255, shape + (3,))).reshape(-1)
    return content, style, x


@pytest.mark.parametrize("content_layer", ["relu4_2", "relu3_1"])   # relu3_1 also carries style: its two
def test_objective_gradient_matches_finite_differences(net64, content_layer):   # gradients are summed
    """float64, content at relu4_2 (or relu3_1) and style at all five layers relu1_1..relu5_1 (the default's
    four and relu5_1, which only this check reaches through the whole objective), all three terms at the
    default weights (TV about half of the gradient), sampled pixels."""
    rng = np.random.default_rng(0)
    content, style, x = _images(net64, rng)
    f = make_objective(net64, content, [(style, 1.0)],
                       Config(style_layers=STYLE_LAYERS, content_layers=(content_layer,)))
    loss, grad = f(x)
    assert grad.dtype == np.float64 and grad.shape == x.shape
    assert all(v > 0 for v in f.parts.values())
    assert loss == pytest.approx(sum(f.parts.values()), rel=1e-12)
    idx = rng.choice(x.size, size=6, replace=False)
    # h = 1e-4 on values of size ~100 keeps truncation and rounding near 1e-8 and rarely straddles
    # a ReLU's kink (h = 1e-3 once did, in gradcheck.py's objective row).
    numeric = numerical_gradient(lambda z: f(z)[0], x.copy(), 1e-4, idx)
    assert rel_error(grad[idx], numeric) < 1e-7
    # Negative control: the same objective with the TV gradient left out fails.
    f.tv_w *= 0.0
    _, no_tv = f(x)
    assert rel_error(no_tv[idx], numeric) > 1e-2


@pytest.mark.parametrize("content_layers", [("relu4_2",), ("relu2_1", "relu3_1")])   # relu3_1: content and style
def test_either_network_gives_the_same_loss_and_gradient(net64, content_layers):
    """One objective for both networks: eq. 6 as an array (reference) or ActivationTimes (engine)
    give the same loss and gradient, float64, to rounding; two style images, odd size."""
    rng = np.random.default_rng(4)
    fast = FastVGG19.from_arrays(net64.params, dtype=np.float64)
    content, style, _ = _images(net64, rng, shape=(19, 23))
    style2 = net64.preprocess(rng.uniform(0, 255, (24, 17, 3)))
    x = net64.preprocess(rng.uniform(0, 255, (19, 23, 3))).reshape(-1)
    cfg = Config(content_layers=content_layers, tv_weight=2.0)
    results = [make_objective(net, content, [(style, 1.0), (style2, 2.0)], cfg)(x) for net in (net64, fast)]
    (loss_ref, grad_ref), (loss_fast, grad_fast) = results
    assert loss_fast == pytest.approx(loss_ref, rel=1e-10)
    assert rel_error(grad_fast, grad_ref) < 1e-10


def test_objective_formula_by_hand(net64):
    """The loss equals the documented formula rebuilt from the public losses and targets."""
    rng = np.random.default_rng(1)
    content, style, x = _images(net64, rng)
    style2 = net64.preprocess(rng.uniform(0, 255, (32, 32, 3)))
    cfg = Config(content_weight=2.0, style_weight=3.0, tv_weight=0.5)
    f = make_objective(net64, content, [(style, 1.0), (style2, 3.0)], cfg)
    loss, _ = f(x)
    img = x.reshape(16, 16, 3)
    layers = ["relu4_2"] + list(cfg.style_layers)
    a, c, s1, s2 = (net64.forward(z, layers) for z in (img, content, style, style2))
    P = c["relu4_2"]
    expected = cfg.content_weight * content_loss(a["relu4_2"], P)[0] / (0.5 * np.sum(P ** 2))
    for name in cfg.style_layers:
        M, N = a[name].shape[0] * a[name].shape[1], a[name].shape[2]
        A = sum(b * gram_matrix(s[name]) * M / (s[name].shape[0] * s[name].shape[1])
                for b, s in ((0.25, s1), (0.75, s2)))
        Z = np.sum(A ** 2) / (4 * N ** 2 * M ** 2)
        expected += cfg.style_weight / len(cfg.style_layers) * style_layer_loss(a[name], A)[0] / Z
    rgb_units = img / (net64.preprocessing.pixel_step() * 255.0)
    expected += cfg.tv_weight * tv_loss(rgb_units)[0] / 256
    assert loss == pytest.approx(expected, rel=1e-10)


def test_unnormalised_objective_is_the_papers_formula(net64):
    rng = np.random.default_rng(2)
    content, style, x = _images(net64, rng, style_shape=(16, 16))
    cfg = Config(normalize=False, content_weight=1e-3, style_weight=1.0, tv_weight=0.0,
                 style_layers=("relu1_1", "relu2_1"), style_layer_weights=(0.5, 0.5))
    f = make_objective(net64, content, [(style, 1.0)], cfg)
    loss, _ = f(x)
    layers = ["relu1_1", "relu2_1", "relu4_2"]
    a, c, s = (net64.forward(z, layers) for z in (x.reshape(16, 16, 3), content, style))
    expected = 1e-3 * content_loss(a["relu4_2"], c["relu4_2"])[0]  # Gatys et al. 2016, eq. 7
    expected += sum(0.5 * style_layer_loss(a[n], gram_matrix(s[n]))[0] for n in layers[:2])
    assert loss == pytest.approx(expected, rel=1e-10)


def test_several_content_layers_and_unequal_style_weights(net64):
    """alpha is shared equally by the content layers (1/n_c each) and w_l weighs each style layer,
    as Config documents; unequal w_l, so that a weight ignored in favour of 1/n_s shows."""
    rng = np.random.default_rng(3)
    content, style, x = _images(net64, rng, style_shape=(16, 16))
    cfg = Config(normalize=False, content_weight=1e-3, style_weight=2.0, tv_weight=0.0,
                 content_layers=("relu3_1", "relu4_2"), style_layers=("relu1_1", "relu2_1"),
                 style_layer_weights=(0.3, 0.7))
    loss, _ = make_objective(net64, content, [(style, 1.0)], cfg)(x)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_2"]
    a, c, s = (net64.forward(z, layers) for z in (x.reshape(16, 16, 3), content, style))
    expected = sum(1e-3 / 2 * content_loss(a[n], c[n])[0] for n in layers[2:])
    expected += sum(2.0 * w * style_layer_loss(a[n], gram_matrix(s[n]))[0] for n, w in zip(layers[:2], (0.3, 0.7)))
    assert loss == pytest.approx(expected, rel=1e-10)


def test_targets_are_computed_once(net64, monkeypatch):
    rng = np.random.default_rng(3)
    content, style, x = _images(net64, rng)
    f = make_objective(net64, content, [(style, 1.0)], Config())
    calls = []
    original = net64.forward
    monkeypatch.setattr(net64, "forward", lambda z, layers, **kw: calls.append(1) or original(z, layers, **kw))
    for _ in range(3):
        f(x)
    assert len(calls) == 3  # one forward per evaluation: none for the targets


def test_float32_network_computes_in_float32_and_returns_float64(net32):
    net = net32
    rng = np.random.default_rng(4)
    content, style, x = _images(net, rng)
    f = make_objective(net, content, [(style, 1.0)], Config())
    assert f.P["relu4_2"].dtype == np.float32 and f.A["relu1_1"].dtype == np.float32
    loss, grad = f(x.astype(np.float64))
    assert isinstance(loss, float) and grad.dtype == np.float64 and np.all(np.isfinite(grad))


@pytest.mark.parametrize("pre", ["caffe", "torchvision"])
def test_pixel_bounds_map_0_and_255_for_every_preprocessing(pre):
    net = VGG19.random(seed=0) if pre == "caffe" else VGG19(VGG19.random(seed=0).params, preprocessing=TORCHVISION)
    lo, hi = pixel_bounds(net)
    black = net.deprocess(np.broadcast_to(lo, (1, 1, 3)).astype(np.float32))
    white = net.deprocess(np.broadcast_to(hi, (1, 1, 3)).astype(np.float32))
    assert np.allclose(black, 0, atol=1e-3) and np.allclose(white, 255, atol=1e-3)
    assert np.all(lo < hi)


def test_tv_term_is_the_same_for_every_preprocessing():
    """TV is measured on RGB pixels, so the preprocessing must not change it."""
    rng = np.random.default_rng(5)
    rgb = rng.uniform(0, 255, (16, 16, 3))
    style_rgb = rng.uniform(0, 255, (16, 16, 3))
    values = []
    for pre in (None, TORCHVISION):
        base = VGG19.random(seed=0, dtype=np.float64)
        net = base if pre is None else VGG19(base.params, preprocessing=pre, dtype=np.float64)
        cfg = Config(tv_weight=1.0, content_layers=("relu1_1",), style_layers=("relu1_1",))
        f = make_objective(net, net.preprocess(rgb), [(net.preprocess(style_rgb), 1.0)], cfg)
        f(net.preprocess(rgb[::-1]).reshape(-1))
        values.append(f.parts["tv"])
    assert values[0] == pytest.approx(values[1], rel=1e-9)
    assert values[0] > 0


def test_texture_synthesis_objective_has_no_content_term(net64):
    rng = np.random.default_rng(6)
    _, style, x = _images(net64, rng)
    f = make_objective(net64, None, [(style, 1.0)], Config(), shape=(16, 16, 3))
    f(x)
    assert abs(f.parts["content"]) < 1e-30 and f.parts["style"] > 0
    with pytest.raises(ValueError, match="shape"):
        make_objective(net64, None, [(style, 1.0)], Config())


def test_bad_config_is_rejected(net64):
    rng = np.random.default_rng(7)
    content, style, _ = _images(net64, rng)
    for bad, says in ((dict(style_weight=-1.0), "style-weight must be"), (dict(content_weight=float("nan")),
                      "content-weight must be"), (dict(iterations=0), "iterations must be"),
                      (dict(style_layer_weights=(1.0, 2.0)), "expected 4 values, got 2"),
                      (dict(lbfgs_memory=0), "lbfgs-memory must be"), (dict(lbfgs_memory=2.5), "lbfgs-memory must be")):
        with pytest.raises(ValueError, match=says):   # this field's complaint, not any ValueError
            make_objective(net64, content, [(style, 1.0)], dataclasses.replace(Config(), **bad))
    with pytest.raises(ValueError, match="blend"):
        make_objective(net64, content, [(style, 0.0)], Config())
    with pytest.raises(ValueError, match="too small for layer.*relu5_1"):
        make_objective(net64, content[:15], [(style, 1.0)], Config(style_layers=STYLE_LAYERS))   # the paper's five
    with pytest.raises(ValueError, match="at least one style image"):
        make_objective(net64, content, [], Config())
    with pytest.raises(ValueError, match="a style image of 4x4 px is too small for relu4_1"):   # pools to 0x0 there
        make_objective(net64, content, [(style, 1.0), (style[:4, :4], 1.0)], Config())
    # weighted out of the blend, the same tiny image is never run: the targets are the first style's
    alone, blended = (make_objective(net64, content, styles, Config()).A
                      for styles in ([(style, 1.0)], [(style, 1.0), (style[:4, :4], 0.0)]))
    assert all(np.array_equal(alone[n], blended[n]) for n in alone)


@pytest.mark.parametrize("bad, message", [
    (dict(style_weight=1e31), r"style-weight must be at most 1e\+30"),
    (dict(style_weight=1e30, style_layer_weights=(1e30, 1.0, 1.0, 1.0)), "style-weight times the largest style layer"),
    (dict(style_scale=0.0), "style-scale and learning-rate must be > 0"),
    (dict(learning_rate=0.0), "style-scale and learning-rate must be > 0"),
    (dict(optimizer="sgd"), "optimizer must be one of"),
    (dict(preserve_colors="sepia"), "preserve-colors must be one of"),
    (dict(style_layers=()), "at least one style layer"),
])
def test_config_names_the_bad_field(bad, message):
    """Config.validate's one-line messages, for callers of the API (the CLI stops these earlier)."""
    Config().validate()   # control: the defaults pass
    with pytest.raises(ValueError, match=message):
        Config(**bad).validate()


def test_30_lbfgs_iterations_at_128_px_reduce_the_loss_10x(net32):
    """The acceptance check of issue 4, on a random-weight network with that issue's default configuration."""
    net = net32
    content, style = landscape(96, 128), swirls(128, 128)
    cfg = Config(size=128, iterations=30, scales=1, min_improvement=0.0,   # issue 4 ran one scale,
                 style_weight=100.0, style_layers=STYLE_LAYERS)             # with beta 100 and five style layers
    out = stylize(net, content, [style], cfg)
    assert out.shape == (96, 128, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 255
    # Score start and result with an independently built objective (float64 at the boundary).
    f = make_objective(net, net.preprocess(content), [(net.preprocess(style), 1.0)], cfg)
    start, _ = f(net.preprocess(content).astype(np.float64).reshape(-1))
    end, _ = f(net.preprocess(out).astype(np.float64).reshape(-1))
    assert start > 10 * end, (start, end)


def test_lbfgs_memory_reaches_scipy(net32, monkeypatch):
    """Config.lbfgs_memory is the maxcor scipy's L-BFGS-B runs with (it sets the optimiser's memory);
    unset, 5 with the stopping rule and 10 without it."""
    import nst_numpy.lbfgs as O
    seen = []
    real = O.fmin_l_bfgs_b

    def spy(*args, **kwargs):
        seen.append(kwargs["m"])
        return real(*args, **kwargs)

    monkeypatch.setattr(O, "fmin_l_bfgs_b", spy)
    for m, rule in ((3, 5e-4), (10, 5e-4), (None, 5e-4), (None, 0.0)):
        stylize(net32, landscape(32, 32), [swirls(32, 32)],
                Config(size=32, iterations=2, scales=1, lbfgs_memory=m, min_improvement=rule))
    assert seen == [3, 10, 5, 10]


def test_lbfgs_runs_every_openblas_on_one_thread(monkeypatch):
    """Inside run_lbfgs every OpenBLAS in the process (numpy's and SciPy's) is on one thread, so
    none is left spinning during the evaluations; the counts are restored afterwards."""
    import nst_numpy.lbfgs as O
    from nst_numpy.fast import threads
    libs = threads._find_all()
    if not libs:
        pytest.skip("no OpenBLAS found in this process; blas_threads is a no-op")
    before = [get() for _, get in libs]
    seen = []

    def f(x):
        seen.append([get() for _, get in threads._find_all()])
        return float(np.sum(x * x)), 2 * x

    O.run_lbfgs(f, np.linspace(-1, 1, 50), np.full(50, -2.0), np.full(50, 2.0), 3)
    assert seen and all(counts == [1] * len(counts) for counts in seen), seen
    assert [get() for _, get in libs] == before


def test_bound_pairs_share_one_tuple_per_distinct_pair():
    """_bound_pairs gives scipy the same bounds as zip(lo, hi), with a tuple object per distinct pair."""
    from nst_numpy.lbfgs import _bound_pairs
    lo = np.tile([-1.5, -2.0, -1.5], 5)
    hi = np.tile([3.0, 3.5, 4.25], 5)    # 3 distinct values against lo's 2: a pair code that mixed up
    pairs = _bound_pairs(lo, hi)         # the two counts would give some values another channel's box
    assert pairs == list(zip(lo.tolist(), hi.tolist()))
    assert len({id(p) for p in pairs}) == 3
    assert _bound_pairs(-hi, -lo) == list(zip((-hi).tolist(), (-lo).tolist()))   # and the other way round


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_every_point_evaluated_stays_in_the_pixel_box(net64, monkeypatch, optimizer):
    """Both optimisers descend, and every point the objective sees lies in 0..255 RGB (the network's
    box, objective.pixel_bounds), before the final clip could hide anything. Adam takes 10-level
    steps, L-BFGS-B restarts in step sizes after 3 iterations (the other path to the box)."""
    from nst_numpy.objective import Objective
    rng = np.random.default_rng(8)
    content, style = rng.uniform(0, 255, (16, 16, 3)), rng.uniform(0, 255, (16, 16, 3))
    lo, hi = pixel_bounds(net64)
    plain, seen, losses = Objective.__call__, [], []

    def spy(self, x):
        seen.append(x.reshape(-1, 3).copy())
        return plain(self, x)
    monkeypatch.setattr(Objective, "__call__", spy)
    cfg = Config(size=16, iterations=8, optimizer=optimizer, learning_rate=10.0, init="noise",
                 precondition_after=3, min_improvement=0.0,
                 style_layers=("relu1_1", "relu2_1"), content_layers=("relu2_2",))
    stylize(net64, content, [style], cfg, callback=lambda st: losses.append(st.loss))
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert len(seen) >= 9
    for x in seen:
        assert np.all(x >= lo) and np.all(x <= hi)


def test_run_adam_in_place_equals_textbook_adam():
    """optimize.run_adam updates in place with per-channel bounds and steps; here the textbook
    form (Kingma & Ba 2015, Algorithm 1, plus projection) on a bounded quadratic."""
    from nst_numpy.optimize import run_adam
    rng = np.random.default_rng(0)
    c, w = rng.uniform(-3, 3, 30), rng.uniform(0.5, 2.0, 30)
    lo, hi, lr = np.array([-1.0, -2.0, -0.5]), np.array([1.0, 2.0, 0.5]), np.array([0.1, 0.2, 0.05])
    seen = []

    def f(x):
        seen.append(x.copy())
        return float(np.sum(w * (x - c) ** 2)), 2 * w * (x - c)
    x0 = rng.uniform(-0.5, 0.5, 30)
    run_adam(f, x0, lo, hi, 20, lr, lambda t: None)
    ours = seen[-1]
    x, m, v = x0.copy(), np.zeros(30), np.zeros(30)
    LO, HI, LR = np.tile(lo, 10), np.tile(hi, 10), np.tile(lr, 10)
    for t in range(1, 21):
        g = 2 * w * (x - c)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = np.clip(x - LR * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8), LO, HI)
    assert np.max(np.abs(ours - x)) < 1e-12
    assert np.max(np.abs(ours - x0)) > 0.1   # it moved: the comparison is not of two starting points


def test_config_boundaries():
    """The edges of Config.validate's ranges: a margin as wide as --size, tiles that are multiples of 8
    but not 16, blend and layer weights all zero."""
    Config(size=32, margin=32).validate()            # "from 0 to --size": --size itself is allowed
    for tile in (24, 40, 8 * 13):                    # multiples of 8, not of 16: 4 poolings need 16
        with pytest.raises(ValueError, match="multiple of 16"):
            Config(tile_size=tile).validate()
    with pytest.raises(ValueError, match="not all zero"):
        Config(style_blend=(0.0, 0.0)).validate()
    with pytest.raises(ValueError, match="not all zero"):
        Config(style_layer_weights=(0.0, 0.0, 0.0, 0.0)).validate()
