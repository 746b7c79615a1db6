"""The learner-facing scripts (gradcheck, reconstruct) and the guide's references to the code."""
import ast
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nst_numpy import VGG19, gradcheck, reconstruct
from nst_numpy.gradcheck import CheckResult, numerical_gradient, rel_error
from nst_numpy.losses import content_loss
from nst_numpy.reconstruct import (CONTENT_LAYERS, STYLE_SETS, ContentObjective, grid, load_network, minimise_in_box,
                                   reconstruct_content, style_objective, to_uint8, white_noise)
import script_helpers
from test_layers import _Doubler   # a one-tap stand-in network, out = 2 x
from script_helpers import load_script, write_random_weights

ROOT = Path(__file__).resolve().parents[1]


one_blas_thread = script_helpers.one_blas_thread   # autouse: every test here runs on one BLAS thread


def test_check_result_pass_logic():
    assert CheckResult("ok", 1e-10, 1e-8, False).passed
    assert not CheckResult("bad gradient", 1e-3, 1e-8, False).passed
    assert CheckResult("control caught", 0.5, 1e-2, True).passed
    assert not CheckResult("control missed", 1e-9, 1e-2, True).passed
    # The table prints "<bound" and ">bound": an error exactly at the bound is neither a pass nor a catch.
    assert not CheckResult("at the bound", 1e-8, 1e-8, False).passed
    assert not CheckResult("control at the bound", 1e-2, 1e-2, True).passed


def test_checks_use_the_guides_step(monkeypatch):
    """docs/guide.md (section 1) gives the steps of the checks: h for check_layer, check_conv_params (dw and
    db) and check_scalar, h_net for check_network; each finite difference must use its step."""
    guide = (ROOT / "docs" / "guide.md").read_text()
    h, h_net = (10.0 ** int(re.search(r"\$%s = 10\^\{(-\d+)\}\$" % re.escape(name), guide).group(1))
                for name in ("h", "h_{net}"))
    steps, real = [], gradcheck.numerical_gradient

    def spy(f, x, step=1e-5, indices=None):
        steps.append(step)
        return real(f, x, step, indices)
    monkeypatch.setattr(gradcheck, "numerical_gradient", spy)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3, 2)), rng.standard_normal((3, 3, 2, 2)), rng.standard_normal(2)
    gradcheck.check_layer(lambda z: (2 * z, None), lambda d, c: 2 * d, x, rng)
    gradcheck.check_conv_params(x, w, b, rng)
    gradcheck.check_scalar(lambda z: (float(np.sum(z ** 2)), 2 * z), x)
    gradcheck.check_network(_Doubler(lambda ups: 2 * ups["t"]), x, ["t"], rng, n_samples=3)
    assert len(steps) == 5 and all(abs(s / want - 1) < 1e-12 for s, want in zip(steps, [h] * 4 + [h_net])), steps


def test_gradcheck_script_all_rows_pass(capsys):
    script = load_script("gradcheck")
    assert script.main(["--samples", "4"]) == 0  # the default, 12, is for learners; 4 still exercises every row
    out = capsys.readouterr().out
    for name in ["conv dx", "conv dw", "conv db", "relu dx", "avg pool dx", "max pool dx", "(7x9x2)",
                 "content loss dF", "style loss dF", "total variation dx", "VGG19 dx", "objective dx", "control:"]:
        assert name in out
    controls = out.count("control:")   # every negative control row, each caught, and all after the checks
    is_control = ["control:" in line for line in out.splitlines() if re.search(r"\d\.\d\de[-+]\d\d", line)]
    assert is_control == sorted(is_control) and sum(is_control) == controls
    assert "FAIL" not in out and controls >= 9 and out.count("expected to fail: caught") == controls
    # The guide's excerpt of this table (section 1) shows the bounds (one layer, the network, the controls):
    # each of its rows must have the same bound here.
    row = re.compile(r"^(\S.*?)\s+\d\.\d\de[-+]\d\d\s+([<>]1e-\d\d)\s+pass", re.M)
    excerpt = (ROOT / "docs" / "guide.md").read_text().split("An excerpt:")[1].split("```")[1]
    documented, printed = dict(row.findall(excerpt)), dict(row.findall(out))
    assert len(documented) >= 6 and {"<1e-08", "<1e-06", ">1e-02"} <= set(documented.values())
    assert {name: printed.get(name) for name in documented} == documented


def test_gradcheck_script_reports_a_failure(capsys, monkeypatch):
    script = load_script("gradcheck")
    rows = [CheckResult("good", 1e-11, 1e-8, False), CheckResult("broken backward", 0.3, 1e-8, False),
            CheckResult("control: missed", 1e-12, 1e-2, True)]
    monkeypatch.setattr(script, "run_all_checks", lambda seed, n_samples: rows)
    assert script.main([]) == 1
    out = capsys.readouterr().out
    assert "broken backward" in out and "NOT caught" in out and "2 FAILED" in out
    # A negative control that is not caught fails the run on its own: the check could not fail.
    monkeypatch.setattr(script, "run_all_checks", lambda seed, n_samples: [rows[0], rows[2]])
    assert script.main([]) == 1 and "1 FAILED" in capsys.readouterr().out


def test_the_readme_states_the_defaults():
    """The README's table of flags gives each default; the code must have the same (the parser takes
    its defaults from Config). A default changed in one place only fails here."""
    from nst_numpy.config import Config
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `--")]
    c, plain = Config(), Config(min_improvement=0)

    def row(flag):
        return next(r for r in rows if r.startswith(f"| `{flag}"))
    assert f"({c.size})" in row("--size")
    assert f"({c.iterations})" in row("--iterations")
    assert f"({c.coarse_iterations})" in row("--coarse-iterations")
    assert f"({c.min_improvement:g})" in row("--min-improvement")
    assert f"α ({c.content_weight:g}), β ({c.style_weight:g}), γ ({c.tv_weight:g})" in row("--content-weight")
    assert f"({','.join(c.content_layers)}; {','.join(c.style_layers)})" in row("--content-layers")
    assert f"step in 0..255 units, {c.learning_rate})" in row("--optimizer")
    assert f"({c.correction_pairs()}; {plain.correction_pairs()} with `--min-improvement 0`" in row("--lbfgs-memory")
    assert (f"({c.restart_with_step_sizes_at()}; {plain.restart_with_step_sizes_at()} with `--min-improvement 0`"
            in row("--precondition-after"))
    assert f"({c.style_scale})" in row("--style-scale")
    assert f"({c.seed})" in row("--seed")


# ---------------------------------------------------------------------------
# README.md, docs/*.md and the engine's table (fast/__init__.py): every `path::name` they cite must exist
# ---------------------------------------------------------------------------

# `tests/test_x.py::test_y`, `nst_numpy/vgg.py`, and the short form `fast/buffers.py::BufferArena`,
# which the README's tables use for files inside nst_numpy/.
REFERENCE = re.compile(r"`((?:[\w.-]+/)*[\w-]+\.(?:py|md|cfg))(?:::([\w.]+))?`")


def _defined_names(path):
    """Top-level functions and classes of a Python file, plus 'Class.method' for their methods."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{item.name}" for item in node.body if isinstance(item, ast.FunctionDef))
    return names


def missing_references(text, root=ROOT):
    """The `path` and `path::name` references in text whose file or name does not exist."""
    missing = []
    for path, name in REFERENCE.findall(text):
        file = next((f for f in (root / path, root / "nst_numpy" / path) if f.is_file()), root / path)
        if not file.is_file():
            missing.append(path)
        elif name and name not in _defined_names(file):
            missing.append(f"{path}::{name}")
        elif name and path.startswith("tests/") and not name.split(".")[-1].startswith("test_"):
            missing.append(f"{path}::{name} (not a test)")
    return missing


def test_guide_references_exist():
    text = (ROOT / "docs" / "guide.md").read_text()
    refs = REFERENCE.findall(text)
    assert len(refs) > 40  # the guide cites code and tests throughout
    assert missing_references(text) == []
    # Every section that gives an equation also names a test for it.
    assert sum(1 for path, name in refs if path.startswith("tests/") and name) > 20


@pytest.mark.parametrize("doc", ["README.md", "docs/tuning.md", "docs/performance.md", "nst_numpy/fast/__init__.py"])
def test_readme_tuning_and_engine_table_references_exist(doc):
    text = (ROOT / doc).read_text()
    assert REFERENCE.findall(text)
    assert missing_references(text) == []


def test_guide_reference_check_can_fail():
    fake = ("`nst_numpy/layers.py::conv_backward` `nst_numpy/layers.py::conv_backwards` "
            "`tests/test_layers.py::rng` `nst_numpy/nope.py` `nst_numpy/vgg.py::VGG19.backward` "
            "`fast/buffers.py::BufferArena` `fast/buffers.py::BufferArenas` `fast/nope.py`")
    assert missing_references(fake) == ["nst_numpy/layers.py::conv_backwards", "tests/test_layers.py::rng (not a test)",
                                        "nst_numpy/nope.py", "fast/buffers.py::BufferArenas", "fast/nope.py"]


def test_guide_maths_is_balanced():
    """GitHub renders $...$ and $$...$$: an odd count would turn the rest of the page into maths."""
    text = (ROOT / "docs" / "guide.md").read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no maths
    assert prose.count("$$") % 2 == 0
    for line in prose.replace("$$", "").splitlines():
        assert line.count("$") % 2 == 0, line


# ---------------------------------------------------------------------------
# Figure 1: the reconstruction objectives, L-BFGS, and scripts/reconstruct.py
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def net64():
    net = VGG19.random(seed=3, dtype=np.float64)   # the reference network: gradient checks run on it
    return net


def _sampled_error(f, x, rng, n=4, h=1e-4):
    """rel_error of f's gradient at n random input values; x is network-space (~100), and h = 1e-4
    rarely straddles a ReLU's kink (gradcheck.py's objective row)."""
    idx = rng.choice(x.size, size=n, replace=False)
    numeric = numerical_gradient(lambda z: f(z)[0], x.copy(), h, idx)
    return rel_error(f(x)[1][idx], numeric), numeric, idx


def test_content_objective_gradient(net64):
    rng = np.random.default_rng(0)
    content, x = (net64.preprocess(rng.uniform(0, 255, (16, 16, 3))) for _ in range(2))
    f = ContentObjective(net64, content, "relu5_2")
    err, numeric, idx = _sampled_error(f, x.reshape(-1), rng)
    assert err < 1e-6
    assert f(content.reshape(-1))[0] < 1e-20  # zero at the target itself
    # Negative control: the gradient of another layer's objective does not pass for this one.
    other = ContentObjective(net64, content, "relu3_2")(x.reshape(-1))[1]
    assert rel_error(other[idx], numeric) > 1e-2
    # The loss is relative to that of an all-zero response (1/2 sum P^2): it reads the same at every layer.
    F = net64.forward(x, ["relu5_2"])["relu5_2"]
    relative = content_loss(F, f.P)[0] / content_loss(np.zeros_like(f.P), f.P)[0]
    assert abs(f(x.reshape(-1))[0] / relative - 1) < 1e-9


def test_style_objective_gradient(net64):
    rng = np.random.default_rng(1)
    style = net64.preprocess(rng.uniform(0, 255, (20, 18, 3)))
    x = net64.preprocess(rng.uniform(0, 255, (16, 16, 3))).reshape(-1)
    f = style_objective(net64, style, STYLE_SETS[2], (16, 16, 3))
    err, numeric, idx = _sampled_error(f, x, rng)
    assert err < 1e-6
    # Negative control: dropping one layer of the set changes the gradient enough to be caught.
    other = style_objective(net64, style, STYLE_SETS[1], (16, 16, 3))(x)[1]
    assert rel_error(other[idx], numeric) > 1e-2


def test_style_objective_is_the_style_loss_alone(net64):
    """Zero at the style image itself (no TV or content term), and over a set of layers the mean of each
    layer's objective (equal weights w_l = 1/len(layers), eq. 5)."""
    rng = np.random.default_rng(2)
    style, x = (net64.preprocess(rng.uniform(0, 255, (16, 16, 3))).reshape(-1) for _ in range(2))

    def loss(layers, z):
        return style_objective(net64, style.reshape(16, 16, 3), layers, (16, 16, 3))(z)[0]
    assert loss(STYLE_SETS[1], style) < 1e-12
    mean = (loss(STYLE_SETS[1][:1], x) + loss(STYLE_SETS[1][1:], x)) / 2
    assert abs(loss(STYLE_SETS[1], x) / mean - 1) < 1e-9


def test_reconstructions_start_from_white_noise():
    """The starting point spans 0..255, and a content reconstruction starts there, not at the content image
    (from which it would return the content unchanged, whatever the layer)."""
    net = VGG19.random(seed=0)
    noise = net.deprocess(white_noise(net, (32, 32, 3), seed=0))
    assert noise.min() < 5 and noise.max() > 250 and abs(noise.mean() - 127.5) < 10
    content = np.broadcast_to(np.linspace(60, 200, 32)[None, :, None], (32, 32, 3))   # a smooth ramp
    rebuilt = reconstruct_content(net, content, "relu5_2", iterations=1)
    assert np.abs(rebuilt - content).mean() > 20


def test_to_uint8_rounds_and_clips():
    """Rounded, not truncated (that would darken every cell by half a level on average), and clipped."""
    assert to_uint8(np.array([-3.0, 0.6, 1.4, 254.7, 300.0])).tolist() == [0, 1, 1, 255, 255]


def test_figure1_cells(monkeypatch):
    """Row 1 rebuilds the content from each content layer in turn; row 2 the style from each growing set,
    every one at the content image's size (docs: each style reconstruction has the content's size)."""
    asked = []

    def content_cell(net, rgb, layer, iterations, seed):
        asked.append((layer, rgb.shape))
        return np.zeros(rgb.shape, np.uint8)

    def style_cell(net, rgb, layers, shape, iterations, seed):
        asked.append((layers, shape))
        return np.zeros(shape, np.uint8)
    monkeypatch.setattr(reconstruct, "reconstruct_content", content_cell)
    monkeypatch.setattr(reconstruct, "reconstruct_style", style_cell)
    reconstruct.figure1(None, np.full((16, 24, 3), 100.0), np.full((20, 20, 3), 50.0), iterations=1)
    assert asked == [(layer, (16, 24, 3)) for layer in CONTENT_LAYERS] + [(s, (16, 24, 3)) for s in STYLE_SETS]


@pytest.mark.parametrize("loss_scale", [1.0, 1e-6])
def test_lbfgs_lowers_the_content_loss(loss_scale):
    """Also when the gradient is tiny: L-BFGS-B's first step is x0 - grad, lost in float32 rounding
    unless minimise_in_box rescales the objective (without that, a 96 px relu4_2 reconstruction never moved)."""
    net = VGG19.random(seed=0)  # float32, as in real runs
    content = net.preprocess(np.random.default_rng(2).uniform(0, 255, (20, 20, 3)))
    f = ContentObjective(net, content, "relu2_2")
    x0 = white_noise(net, content.shape, seed=0)
    x = minimise_in_box(lambda z: tuple(loss_scale * v for v in f(z)), x0, net, iterations=15)
    assert f(x.reshape(-1))[0] < 0.2 * f(x0.reshape(-1))[0]
    rgb = net.deprocess(x.astype(np.float32))
    assert rgb.min() > -0.01 and rgb.max() < 255.01  # L-BFGS-B kept every pixel in range


def test_grid_layout_and_labels():
    cells = [[np.zeros((10, 12, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)]] * 2
    image = grid(cells, [["a", "a much longer label"], ["b", "c"]], title="title")
    pixels = np.asarray(image)
    width = 4 + 2 * (max(12, int(ImageDraw.Draw(image).textlength("a much longer label")) + 4) + 4)
    assert image.size == (width, (14 + 4) + 4 + 2 * (14 + 10 + 4))
    assert (pixels[4:14, :40] < 128).any()  # the title was drawn
    # Row 1 starts below the title (4 + 14 px) and a gap (4 px); its label takes 14 px, then the first cell.
    assert (pixels[36:46, 4:16] == 0).all() and (pixels[46, 4:16] == 255).all()
    # Every row is as tall as the tallest cell, in whichever row it is.
    tall = grid([[np.zeros((8, 8, 3), np.uint8)], [np.zeros((20, 8, 3), np.uint8)]], [["a"], ["b"]])
    assert tall.size[1] == 4 + 2 * (14 + 20 + 4)


def test_reconstruct_script_random_weights(tmp_path, capsys):
    """The built-in landscape as content, a user's file as style."""
    script = load_script("reconstruct")
    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 45, 3), dtype=np.uint8)).save(style)
    out = tmp_path / "figure1.png"
    args = ["--weights", "random", "--style", str(style), "--size", "24", "--iterations", "1", "--output", str(out)]
    assert script.main(args) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert "random weights" in im.text["title"] and "--style" in im.text["arguments"]
        pixels = np.asarray(im)
    # 2 rows of 6 cells: landscape 18x24, style resized to 24x18, reconstructions 18x24.
    assert pixels.shape[0] > 2 * 24 and pixels.shape[1] > 6 * 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure1.png", "style.png"]  # no temporary file left


def test_load_network_from_a_weights_file(tmp_path):
    _, net = write_random_weights(tmp_path / "vgg19.h5", seed=4)
    loaded, title = load_network(str(tmp_path / "vgg19.h5"), "max", seed=0)
    assert loaded.pooling == "max" and title == "VGG19 weights: vgg19.h5"
    assert type(loaded).__name__ == "FastVGG19"   # the engine by default
    assert np.array_equal(loaded.params["conv5_4"][0], net.params["conv5_4"][0])
    reference, _ = load_network(str(tmp_path / "vgg19.h5"), "avg", seed=0, engine="reference")
    assert type(reference) is VGG19 and np.array_equal(reference.params["conv1_1"][0], net.params["conv1_1"][0])
    assert load_network("random", "max", seed=0)[0].pooling == "max"   # --weights random honours --pooling too


@pytest.mark.parametrize("args, message", [
    (["--content", "missing.png"], "no such file"),
    (["--size", "8"], "--size"),
    (["--size", "30000"], "at most 1024"),
    (["--iterations", "0"], "--iterations"),
    (["--output", "figure.unknownext"], "output format"),
    (["--weights", "missing.h5"], "missing.h5"),
    (["--seed", "-1"], "--seed must be at least 0"),
])
def test_reconstruct_script_bad_input(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    script = load_script("reconstruct")
    assert script.main(["--iterations", "1"] + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("name, args, message", [
    ("gradcheck", ["--samples", "2"], "--samples must be at least 3"),
    ("gradcheck", ["--seed", "-1"], "--seed must be >= 0"),
    ("convert_weights", [], "give either SOURCE or --download"),
    ("convert_weights", ["w.h5", "--download"], "give either SOURCE or --download"),
    ("normalize_weights", ["--images", ".", "-o", "n.h5", "--size", "8"], "--size must be at least 16"),
    ("reconstruct", ["--size", "many"], "argument --size: invalid int value: 'many'"),
    ("convert_weights", ["w.h5", "--bogus"], "unrecognized arguments: --bogus"),
    ("benchmark", ["--sizes", "big"], "argument --sizes: invalid int value: 'big'"),
    ("bench_precision", ["--size", "160"], "argument --size: expected 2 arguments"),
    ("make_readme_images", ["--only", "bogus"], "argument --only: invalid choice: 'bogus'"),
    ("make_tuning_images", ["--only", "bogus"], "argument --only: invalid choice: 'bogus'"),
])
def test_script_argument_errors_exit_2(tmp_path, monkeypatch, capsys, name, args, message):
    """argparse's error path (console.OneLineParser): one line naming the problem, status 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        load_script(name).main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, args, step", [
    ("convert_weights", ["w.h5", "-o", "out.h5"], "convert"),
    ("normalize_weights", ["--images", ".", "-o", "n.h5"], "load_images"),
])
def test_weight_scripts_ctrl_c_is_one_line_and_status_130(tmp_path, monkeypatch, capsys, name, args, step):
    monkeypatch.chdir(tmp_path)
    script = load_script(name)

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(script, step, ctrl_c)
    assert script.main(args) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "nothing" in err and list(tmp_path.iterdir()) == []


def test_content_reconstruction_noise_follows_the_seed():
    from nst_numpy.reconstruct import reconstruct_content
    net = VGG19.random(seed=0)
    content = np.random.default_rng(0).uniform(0, 255, (16, 16, 3))
    a, b = (reconstruct_content(net, content, "relu2_2", iterations=1, seed=s) for s in (0, 1))
    assert not np.array_equal(a, b)


def test_style_reconstruction_starts_from_seeded_noise():
    from nst_numpy.reconstruct import reconstruct_style
    net = VGG19.random(seed=0)
    style = np.random.default_rng(0).uniform(0, 255, (16, 16, 3))
    a, b = (reconstruct_style(net, style, ("relu1_1",), (16, 16, 3), iterations=1, seed=s) for s in (0, 1))
    assert not np.array_equal(a, b)


def test_figure1_style_row_grows_to_all_five_layers():
    from nst_numpy.reconstruct import STYLE_SETS
    names = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert STYLE_SETS == tuple(names[:k] for k in range(1, 6))


def test_load_network_never_downloads(tmp_path, monkeypatch):
    from nst_numpy import weights
    from nst_numpy.reconstruct import load_network
    monkeypatch.setenv("NST_NUMPY_WEIGHTS", str(tmp_path / "vgg19.h5"))

    def no(*a, **k):
        raise AssertionError("downloaded")
    monkeypatch.setattr(weights, "download", no)
    with pytest.raises(weights.WeightsError, match="no VGG19 weights"):
        load_network(None, "avg", 0)


def test_figure1_labels_every_cell_with_its_layers(monkeypatch):
    """The style row has 6 cells; its labels are style, relu1_1, +relu2_1, ..., +relu5_1."""
    from nst_numpy import reconstruct as R
    cell = np.zeros((16, 16, 3), np.uint8)
    monkeypatch.setattr(R, "reconstruct_content", lambda *a, **k: cell)
    monkeypatch.setattr(R, "reconstruct_style", lambda *a, **k: cell)
    seen = {}
    monkeypatch.setattr(R, "grid", lambda rows, labels, title: seen.update(rows=rows, labels=labels))
    R.figure1(None, np.zeros((16, 16, 3)), np.zeros((16, 16, 3)), 1)
    assert [len(r) for r in seen["rows"]] == [len(n) for n in seen["labels"]] == [6, 6]
    assert seen["labels"][1] == ["style", "relu1_1", "+relu2_1", "+relu3_1", "+relu4_1", "+relu5_1"]
