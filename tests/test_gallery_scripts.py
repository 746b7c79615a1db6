"""The gallery scripts: scripts/make_readme_images.py, scripts/make_tuning_images.py and gallery.py behind them.

At tiny sizes with random weights, and mostly one iteration: what is under test is the grids' assembly, the run
cache and the exit codes, not the pictures (those are looked at, with real weights; README, "What it makes").
"""
import importlib
import io
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from nst_numpy.reconstruct import grid, to_uint8
import script_helpers
from script_helpers import SCRIPTS, load_script, write_random_weights

ROOT = SCRIPTS.parent


one_blas_thread = script_helpers.one_blas_thread   # autouse: every test here runs on one BLAS thread


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """make_tuning_images reads a weight file, not `random`."""
    return write_random_weights(tmp_path_factory.mktemp("weights") / "vgg19.h5")[0]


def _gallery():
    """scripts/gallery.py, imported as the gallery scripts do."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("gallery")
    finally:
        sys.path.remove(str(SCRIPTS))


def test_make_readme_images_random_weights(tmp_path, monkeypatch):
    script = load_script("make_readme_images")
    # figure1 itself is covered by test_reconstruct_script_random_weights; a stand-in keeps this test fast.
    monkeypatch.setattr(script, "figure1", lambda net, c, s, it, seed, title, progress: grid([[to_uint8(c)]], [["c"]], title))
    out, cache = tmp_path / "out", tmp_path / "cache"
    out.mkdir()
    args = ["--weights", "random", "--size", "384", "--iterations", "1", "--outdir", str(out), "--cache", str(cache)]
    parts = ("figure1", "texture", "blend")   # the other pictures' runs differ only in their Config
    assert script.main(args + [a for part in parts for a in ("--only", part)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{part}_random.jpg" for part in parts)
    for name in names:
        with Image.open(out / name) as im:
            assert im.format == "JPEG" and im.width > 128
    runs = len(list(cache.glob("*.npy")))
    assert runs == 2 + 3   # two textures; the blend and its two single styles
    assert script.main(args + ["--only", "blend"]) == 0 and len(list(cache.glob("*.npy"))) == runs   # all cached


def test_make_readme_images_other_pictures_assemble(tmp_path, monkeypatch, capsys):
    """The four pictures the test above leaves out (their runs would take minutes), with every run
    stood in for: each picture's file and the Config of each run it asks for."""
    script = load_script("make_readme_images")
    asked = []

    class FakeRunner:
        def __init__(self, weights, cache):
            self.seconds = {}

        def run(self, content, styles, config, label=""):
            asked.append((label, content, tuple(styles), config))
            return np.full(config.size * np.array([3, 4]) // 4, 128, np.uint8)[..., None].repeat(3, axis=2)
    monkeypatch.setattr(script, "Runner", FakeRunner)
    out = tmp_path / "out"
    out.mkdir()
    parts = ("default", "grid", "colors", "scale")
    assert script.main(["--weights", "random", "--outdir", str(out)] + [a for p in parts for a in ("--only", p)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["colors_random.jpg", "default_run_random.jpg",
                                                     "grid_random.jpg", "style_scale_random.jpg"]
    by_label = {label: (content, styles, config) for label, content, styles, config in asked}
    assert len(asked) == 1 + 12 + 3 + 3 and by_label["default run"][:2] == ("chelsea_cat", ("starry_night",))
    assert by_label["default run"][2] == script.Config(size=512)   # no flags but the README's size
    assert {by_label[f"colors/{m}"][2].preserve_colors for m in ("none", "luminance", "histogram")} == {
        "none", "luminance", "histogram"}
    assert [by_label[f"scale/{s}"][2].style_scale for s in (0.5, 1.0, 2.0)] == [0.5, 1.0, 2.0]
    assert all(by_label[f"scale/{s}"][2].size == 256 for s in (0.5, 1.0, 2.0))   # the option pictures: half size
    for bad, message in ((["--size", "100"], "--size must be at least 384"),
                         (["--size", "383", "--outdir", str(tmp_path / "none")], "--size must be at least 384"),
                         (["--outdir", str(tmp_path / "none")], "no such folder")):
        assert script.main(["--weights", "random"] + bad) == 2
        assert message in capsys.readouterr().err


def test_make_readme_images_overrides_reach_every_run(tmp_path, monkeypatch):
    """--size and --iterations (how the tests stay fast) reach each run's Config, at the full-size and the
    coarse scales, and Figure 1; each picture keeps its own changes. Every run is stood in for."""
    script = load_script("make_readme_images")
    asked, figure_iterations = {}, []

    class FakeRunner:
        def __init__(self, weights, cache):
            self.seconds = {}

        def net(self, pooling):
            return None

        def run(self, content, styles, config, label=""):
            asked[label] = config
            return np.full((config.size * 3 // 4, config.size, 3), 128, np.uint8)

    def figure1(net, content, style, iterations, seed, title, progress):
        figure_iterations.append(iterations)
        return grid([[to_uint8(content)]], [["c"]], title)
    monkeypatch.setattr(script, "Runner", FakeRunner)
    monkeypatch.setattr(script, "figure1", figure1)
    args = ["--weights", "random", "--size", "384", "--iterations", "2", "--outdir", str(tmp_path)]
    assert script.main(args + ["--only", "default", "--only", "texture", "--only", "figure1"]) == 0
    assert figure_iterations == [2]
    assert asked["default run"] == script.Config(size=384, iterations=2, coarse_iterations=2)
    assert asked["texture/starry_night"] == script.Config(size=192, iterations=2, coarse_iterations=2,
                                                          content_weight=0.0, init="noise")


def test_make_readme_images_missing_weights(tmp_path, capsys):
    script = load_script("make_readme_images")
    assert script.main(["--weights", str(tmp_path / "none.h5"), "--outdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error:") and list(tmp_path.iterdir()) == []


def test_make_tuning_images_writes_grids_and_caches_runs(weights_file, tmp_path, monkeypatch):
    """Two grids (a Config field varied; the sizes), each a JPEG, every run cached once."""
    script = load_script("make_tuning_images")
    configs, asked, make_config = [], [], script.Config

    def one_iteration(**changes):   # the grids' assembly is under test, not the pictures: 1 scale, 1 iteration
        asked.append(changes)
        configs.append(make_config(**dict(changes, iterations=1, scales=1)))
        return configs[-1]

    monkeypatch.setattr(script, "Config", one_iteration)
    out, cache = tmp_path / "out", tmp_path / "cache"
    # The least sizes these grids' schedule runs at (test_script_guards.py)
    args = ["--weights", weights_file, "--size", "83", "--sizes", "110,112", "--outdir", str(out),
            "--cache", str(cache)]
    assert script.main(args + ["--only", "tv", "--only", "sizes"]) == 0
    assert [c.tv_weight for c in configs[:3]] == [0.0, 1.0, 10.0] and {c.size for c in configs[:3]} == {83}
    assert [c.size for c in configs[3:]] == [110, 112]
    assert all(a["scales"] == 3 and a["precondition_after"] == 0 for a in asked)   # the pictures' schedule
    assert sorted(p.name for p in out.iterdir()) == ["sizes.jpg", "tv.jpg"]
    for name, columns, side in (("tv.jpg", 5, 83), ("sizes.jpg", 4, 400)):   # one row: photo, painting, variants
        with Image.open(out / name) as im:
            assert im.format == "JPEG" and im.width > columns * side * 0.6 and im.height < 2 * side
    assert len(list(cache.glob("*.npy"))) == 5
    assert script.main(args + ["--only", "tv"]) == 0 and len(list(cache.glob("*.npy"))) == 5   # all cached


def test_make_tuning_images_runs_what_the_grids_and_docs_say(weights_file, tmp_path, monkeypatch):
    """Each run's Config and pooling, with every run stood in for: the pooling grid's "max pooling" column runs
    with max pooling; in 'sizes' only the run above 512 px gets --big-iterations; and every run has the
    schedule docs/tuning.md says the grids were made with (3 scales, plain L-BFGS-B, 10 correction pairs)."""
    script = load_script("make_tuning_images")
    asked = {}

    class FakeRunner:
        def __init__(self, weights, cache):
            pass

        def run(self, content, styles, config, pooling, label=""):
            asked[label] = (config, pooling)
            return np.full((8, 8, 3), 128, np.uint8)
    monkeypatch.setattr(script, "Runner", FakeRunner)
    args = ["--weights", weights_file, "--size", "96", "--sizes", "256,1024", "--big-iterations", "7",
            "--outdir", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    assert script.main(args + ["--only", "pooling", "--only", "sizes"]) == 0
    assert [(label, pooling) for label, (_, pooling) in asked.items() if label.startswith("pooling/")] == [
        ("pooling/astronaut/avg pooling", "avg"), ("pooling/astronaut/max pooling", "max")]
    scales, iterations, pairs = map(int, re.search(
        r"\((\d+) scales, at most (\d+) iterations at the last, plain L-BFGS-B with (\d+) correction pairs",
        (ROOT / "docs" / "tuning.md").read_text()).groups())
    assert asked["sizes/256"][0].iterations == iterations and asked["sizes/1024"][0].iterations == 7
    for config, _ in asked.values():
        assert (config.scales, config.correction_pairs(), config.restart_with_step_sizes_at()) == (scales, pairs, 0)


@pytest.mark.parametrize("args, message", [
    (["--size", "32"], "--size"),
    (["--sizes", "64,big"], "--sizes"),
    (["--sizes", "64,32"], "--sizes"),
    (["--big-iterations", "0"], "--big-iterations"),
    ([], "missing.h5: no such weight file"),
])
def test_make_tuning_images_bad_input(tmp_path, capsys, monkeypatch, args, message):
    """A one-line error and exit status 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    script = load_script("make_tuning_images")
    assert script.main(["--weights", "missing.h5", "--outdir", "out", "--cache", "cache"] + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_gallery_scripts_exit_codes(capsys):
    """run_guarded, the body of both gallery scripts: 0, a one-line error with 2, Ctrl-C with 130."""
    gallery = _gallery()

    def fails(exc):
        def work():
            raise exc
        return work
    assert gallery.run_guarded(lambda: None) == 0
    assert gallery.run_guarded(fails(OSError("out: No space\nleft"))) == 2
    assert capsys.readouterr().err == "error: out: No space left\n"
    assert gallery.run_guarded(fails(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err.startswith("interrupted")
    with pytest.raises(RuntimeError):   # a bug is not bad input: it keeps its traceback
        gallery.run_guarded(fails(RuntimeError("bug")))


def test_gallery_cache_key_holds_the_weights_and_the_pooling(tmp_path, monkeypatch):
    """A run cached with other weights (another file, even of the same name) or the other pooling is not
    returned for this one; the same run again comes from the cache, and so does the same file copied
    elsewhere. stylize and the networks are stood in for."""
    gallery = _gallery()
    made = []

    def stylize(net, content, styles, config):
        made.append(net)
        return np.full((4, 4, 3), 10.0 * len(made))
    monkeypatch.setattr(gallery, "load_network",
                        lambda weights, pooling, seed: ((os.path.basename(weights), pooling), ""))
    monkeypatch.setattr(gallery, "stylize", stylize)
    monkeypatch.setattr(gallery, "sample", lambda name: np.zeros((4, 4, 3), np.float32))
    config, log = gallery.Config(size=64), io.StringIO()
    for folder, name, data in [("a", "vgg19_q8.h5", b"q8"), ("a", "vgg19.h5", b"full"), ("b", "vgg19.h5", b"other"),
                               ("c", "copy.h5", b"q8")]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(data)
    q8, full, other, copy = (gallery.Runner(str(tmp_path / name), str(tmp_path / "cache"), log)
                             for name in ("a/vgg19_q8.h5", "a/vgg19.h5", "b/vgg19.h5", "c/copy.h5"))
    first = q8.run("cat", ["starry"], config, "avg")
    q8.run("cat", ["starry"], config, "max")
    full.run("cat", ["starry"], config, "avg")
    other.run("cat", ["starry"], config, "avg")   # the same name, other weights: a run of its own
    assert made == [("vgg19_q8.h5", "avg"), ("vgg19_q8.h5", "max"), ("vgg19.h5", "avg"), ("vgg19.h5", "avg")]
    assert np.array_equal(q8.run("cat", ["starry"], config, "avg"), first) and len(made) == 4
    assert np.array_equal(copy.run("cat", ["starry"], config, "avg"), first) and len(made) == 4


@pytest.mark.parametrize("which, message", [("weights", "not a recognised VGG19 weight file"),
                                            ("outdir", "not a folder"), ("cache", "not a folder")])
def test_make_tuning_images_bad_files(tmp_path, capsys, monkeypatch, weights_file, which, message):
    """A text file as the weights, the output folder or the cache: one line and exit 2, before any run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not weights, not a folder")
    paths = {"weights": weights_file, "outdir": "out", "cache": "cache", which: "notes.txt"}
    script = load_script("make_tuning_images")
    args = [a for k in ("weights", "outdir", "cache") for a in (f"--{k}", paths[k])]
    assert script.main(args + ["--only", "tv", "--size", "96"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
