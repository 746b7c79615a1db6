"""Gatys et al.'s normalised VGG19: mean activations become 1, features are unchanged up to per-channel scales."""
import runpy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_numpy.vgg import VGG19
from nst_numpy.vgg_spec import CONV_NAMES, TORCHVISION
from nst_numpy.normalize import load_images, mean_activations, normalize_vgg19
from nst_numpy.weights import WeightsError, read_weights, save_converted

REPO = Path(__file__).resolve().parent.parent
RELUS = ["relu" + n[4:] for n in CONV_NAMES]


def make_images(seed=0, n=2, size=32):
    """Smooth random RGB images in 0..255 (cumulative noise, so neighbouring pixels correlate like a photo)."""
    rng = np.random.default_rng(seed)
    return [np.clip(128 + 8 * rng.standard_normal((size, size, 3)).cumsum(0).cumsum(1) / size, 0, 255)
            for _ in range(n)]


@pytest.fixture(scope="module")
def case():
    """A float32 net (as real runs) with one dead filter, normalised once for all tests here.

    Filter 5 of conv1_1 never fires: zero kernel, negative bias. (Each new network transforms its
    kernels on first use, so the module builds only two.)
    """
    net = VGG19.random(seed=4, pooling="avg", dtype=np.float32)
    k, b = (a.copy() for a in net.params["conv1_1"])
    k[..., 5], b[5] = 0.0, -1.0
    net = VGG19.from_arrays(dict(net.params, conv1_1=(k, b)), pooling="avg", dtype=np.float32)
    images = make_images()
    before = mean_activations(net, images)
    normed = normalize_vgg19(net, images)
    return net, images, before, normed, mean_activations(normed, images)


def test_mean_activations_become_one_and_features_only_rescale(case):
    net, images, before, normed, after = case
    assert normed.pooling == "avg" and normed.dtype == np.float32
    for r in RELUS:
        # float32: a channel that barely fires (mean < 1e-3 of the layer's largest) is mostly float32
        # rounding noise after a 1000x rescale, so the tight check covers the others, at least half.
        firing = before[r] > 1e-3 * before[r].max()
        assert firing.mean() > 0.5, r
        np.testing.assert_allclose(after[r][firing], 1.0, rtol=1e-3, err_msg=r)
        assert np.all(after[r][before[r] > 0] > 0), r
    # same features up to a positive per-channel scale
    for rgb in images:
        a = net.forward(net.preprocess(rgb), RELUS)
        b = normed.forward(normed.preprocess(rgb), RELUS)
        for r in RELUS:
            scale = np.where(before[r] > 0, before[r], 1.0)
            np.testing.assert_allclose(b[r] * scale, a[r], rtol=1e-3, atol=1e-5 * np.abs(a[r]).max(), err_msg=r)
    # negative control: the raw activations do differ (the scales are not all 1)
    assert not np.allclose(before["relu3_1"], 1.0, rtol=1e-2)


def test_mean_activations_weigh_images_equally_with_average_pooling():
    """The mean over images is the mean of the per-image means, and a max-pooling network is measured
    through average pooling, as Gatys et al. did (negative control: max pooling's own means differ)."""
    net = VGG19.random(seed=6, pooling="avg", dtype=np.float64)
    a, b = make_images(seed=1, n=2, size=24)
    means = {key: mean_activations(net, imgs) for key, imgs in (("a", [a]), ("b", [b]), ("aa", [a, a]), ("ab", [a, b]))}
    max_net = VGG19.from_arrays(net.params, pooling="max", dtype=np.float64)
    through_max = mean_activations(max_net, [a, b])
    for r in RELUS:
        np.testing.assert_allclose(means["aa"][r], means["a"][r], rtol=1e-12, err_msg=r)
        np.testing.assert_allclose(means["ab"][r], (means["a"][r] + means["b"][r]) / 2, rtol=1e-12, err_msg=r)
        np.testing.assert_allclose(through_max[r], means["ab"][r], rtol=1e-12, err_msg=r)
    own = max_net.forward(max_net.preprocess(a), ["relu2_1"])["relu2_1"].mean(axis=(0, 1))
    assert not np.allclose(own, means["a"]["relu2_1"], rtol=1e-3)


def test_dead_filters_are_left_unscaled(case):
    net, _, before, normed, _ = case
    assert 5 in normed.dead_filters["relu1_1"]
    k, b = normed.params["conv1_1"]
    assert np.all(np.isfinite(k)) and np.all(np.isfinite(b)) and b[5] == -1.0
    # the next layer's input weights for the dead channel are not multiplied, only divided by conv1_2's own scales
    s12 = np.where(before["relu1_2"] > 0, before["relu1_2"], 1.0)
    np.testing.assert_allclose(normed.params["conv1_2"][0][:, :, 5, :] * s12, net.params["conv1_2"][0][:, :, 5, :],
                               rtol=1e-6)
    with pytest.raises(WeightsError, match="at least one image"):
        normalize_vgg19(net, [])


def test_load_images_converts_modes_and_resizes(tmp_path):
    Image.fromarray(np.zeros((40, 80), np.uint8), "L").save(tmp_path / "grey.png")
    Image.fromarray(np.zeros((20, 10, 4), np.uint8), "RGBA").save(tmp_path / "rgba.png")
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(tmp_path, max_side=32)
    assert [im.shape for im in images] == [(16, 32, 3), (20, 10, 3)]
    assert np.all(images[1] == 255)   # transparent: on white, as stylize's inputs
    Image.fromarray(np.full((8, 8), 30000, np.uint16)).save(tmp_path / "deep.png")   # 16-bit: 30000 -> 116.7
    assert np.allclose(load_images(tmp_path, max_side=32)[0], 30000 / 257, atol=0.01)
    exif = Image.Exif()
    exif[0x0112] = 6   # "rotate 90 CW to display": a 10x20 file shows as 20x10
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(tmp_path / "a_turned.png", exif=exif)
    assert load_images(tmp_path, max_side=32)[0].shape == (20, 10, 3)
    (tmp_path / "a_turned.png").unlink()
    Image.fromarray(np.zeros((40, 80, 3), np.uint8)).save(tmp_path / "cut.png")   # half a file: named, not skipped
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    with pytest.raises(WeightsError, match="cut.png: cannot read image"):
        load_images(tmp_path, max_side=32)
    (tmp_path / "cut.png").unlink()
    with pytest.MonkeyPatch.context() as m:   # a decompression bomb is one line, not Pillow's traceback
        m.setattr(Image, "MAX_IMAGE_PIXELS", 100)   # Pillow refuses images over twice this
        with pytest.raises(WeightsError, match="grey.png: too many pixels"):
            load_images(tmp_path, max_side=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no readable images"):
        load_images(tmp_path / "empty")
    with pytest.raises(WeightsError, match="does not exist"):
        load_images(tmp_path / "absent")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(WeightsError, match="a.png is not a directory"):
        load_images(tmp_path / "a.png")


def test_normalize_script_writes_a_normalised_file(case, tmp_path, capsys):
    """The script's plumbing: images, source info, `normalized` flag, dead-filter notes, exit codes.
    (The algorithm itself is checked above; here it is replaced by the fixture's result, because
    every new network costs a kernel transform, and that dominates this file's run time.)"""
    net, _, _, normed, _ = case
    src = tmp_path / "vgg19.h5"
    save_converted(net, src, TORCHVISION, "vgg19-dcbb9e9d.pth", "cd" * 32)
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for i, rgb in enumerate(make_images(seed=2, n=2, size=48)):
        Image.fromarray(rgb.astype(np.uint8)).save(img_dir / f"{i}.png")
    script = runpy.run_path(str(REPO / "scripts" / "normalize_weights.py"))
    seen = []

    def fake_normalize(loaded, images):
        seen.append((loaded.pooling, [im.shape for im in images]))
        return normed

    # run_path returned a copy of the script's globals; main is script_guard's wrapper around its own main
    script["main"].__wrapped__.__globals__["normalize_vgg19"] = fake_normalize
    out = tmp_path / "normalized.h5"
    args = ["--images", str(img_dir), "-o", str(out), "--weights", str(src), "--size", "32"]
    assert script["main"](args) == 0
    assert seen == [("avg", [(32, 32, 3), (32, 32, 3)])]
    assert f"relu1_1 has {len(normed.dead_filters['relu1_1'])} filter(s) that never fire" in capsys.readouterr().err
    params, prep, info = read_weights(out)
    assert info["normalized"] is True and info["source_name"] == "vgg19-dcbb9e9d.pth" and prep == TORCHVISION
    assert np.array_equal(params["conv2_1"][0], normed.params["conv2_1"][0])
    # normalising a normalised file is refused with one line and exit 2, and writes nothing
    assert script["main"](args[:3] + [str(tmp_path / "again.h5"), "--weights", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already normalised" in err and err.count("\n") == 1
    assert not (tmp_path / "again.h5").exists()
    # an image too small for the poolings (the real normalize_vgg19 refuses it): one line, exit 2
    script["main"].__wrapped__.__globals__["normalize_vgg19"] = normalize_vgg19
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tiny / "small.png")
    assert script["main"](["--images", str(tiny), "-o", str(tmp_path / "tiny.h5"), "--weights", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("error: a 12x12 image is too small for layer relu5_4 (4 poolings need at "
                                    "least 16 pixels per side)") and not (tmp_path / "tiny.h5").exists()


def test_load_images_skips_hidden_files(tmp_path):
    from nst_numpy.normalize import load_images
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / ".thumb.png")
    assert [im.shape for im in load_images(tmp_path)] == [(20, 20, 3)]
