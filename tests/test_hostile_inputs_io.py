"""Hostile weight files, images and download replies (review of the readers): each is refused with one
clean error, without reading other files, running tools or spending memory/CPU out of proportion."""
import io
import os
import time

import h5py
import numpy as np
import pytest

import weight_fixtures as wf
from nst_numpy.download import DownloadProgress
from nst_numpy.image import ImageError, load_image
from nst_numpy.vgg_spec import CAFFE
from nst_numpy.weights import WeightsError, read_weights, save_converted
from nst_numpy import weights as W


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "ok.h5"
    save_converted(wf.random_params(seed=0), path, CAFFE, "x", "0" * 64)
    return path


def variant(converted, tmp_path, edit):
    path = tmp_path / "v.h5"
    path.write_bytes(converted.read_bytes())
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def refused(path, match):
    with pytest.raises(WeightsError, match=match) as e:
        read_weights(path)
    assert "\n" not in str(e.value)


def test_control_converted_file_reads(converted):
    assert read_weights(converted)[0]["conv1_1"][1].shape == (64,)


@pytest.mark.parametrize("kind", ["external", "soft", "external-link"])
def test_datasets_stored_outside_the_file_are_refused(converted, tmp_path, kind):
    """External storage, a soft link or an external link read another file (any local file, a FIFO)."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)))

    def edit(f):
        del f["conv1_1/bias"]
        if kind == "external":
            f["conv1_1"].create_dataset("bias", shape=(64,), dtype="<f4", external=[(str(secret), 0, 256)])
        elif kind == "soft":
            f["conv1_1/bias"] = h5py.SoftLink("/conv1_2/bias")
        else:
            f["conv1_1/bias"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/b")
    refused(variant(converted, tmp_path, edit), r"conv1_1/bias is (not a dataset stored|a link \((SoftLink|ExternalLink)\))")


@pytest.mark.parametrize("attr", ["mean", "std", "scale"])
def test_nan_or_infinite_preprocessing_is_refused(converted, tmp_path, attr):
    bad = {"mean": [np.nan, 1, 2], "std": [np.inf, 1, 1], "scale": np.inf}[attr]
    refused(variant(converted, tmp_path, lambda f: f.attrs.__setitem__(attr, bad)), "invalid preprocessing")


def test_array_format_attribute_is_a_weights_error(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.attrs["format"] = np.array([b"a", b"b"])
    refused(tmp_path / "a.h5", "neither a Keras weight file")


def test_keras_dataset_listed_twice_is_refused_unread(tmp_path):
    """One compressed dataset named N times in weight_names was read N times (76 KB -> +526 MB)."""
    wf.write_keras(tmp_path / "k.h5", wf.random_params(seed=0))
    assert read_weights(tmp_path / "k.h5")[0]   # control
    with h5py.File(tmp_path / "k.h5", "a") as f:
        g = f["block1_conv1"]
        names = list(g.attrs["weight_names"])
        g.attrs["weight_names"] = names + [names[0]]
    refused(tmp_path / "k.h5", "already listed")


def test_a_link_in_the_middle_of_a_keras_weight_name_is_refused(tmp_path):
    """keras2 names are paths (block1_conv1/kernel:0): HDF5 follows a link at any step of one unasked,
    so the sub-group itself as an external link read another file's data."""
    params = wf.random_params(seed=0)
    wf.write_keras(tmp_path / "k.h5", params, style="keras2")
    assert read_weights(tmp_path / "k.h5")[0]   # control
    wf.write_keras(tmp_path / "other.h5", {n: (np.full_like(k, 42), b) for n, (k, b) in params.items()}, style="keras2")
    with h5py.File(tmp_path / "k.h5", "a") as f:
        del f["block1_conv1/block1_conv1"]
        f["block1_conv1/block1_conv1"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/block1_conv1/block1_conv1")
    refused(tmp_path / "k.h5", r"block1_conv1 is a link \(ExternalLink\)")


def test_numeric_matrix_layer_name_is_a_one_line_error(tmp_path):
    from scipy.io import savemat
    layer = {"name": np.arange(60.0).reshape(20, 3), "type": "conv", "weights": wf.mat_cell(1.0, 2.0)}
    savemat(tmp_path / "n.mat", {"layers": wf.mat_cell(layer)})
    refused(tmp_path / "n.mat", "is not a string")


def test_eps_named_png_is_never_handed_to_ghostscript(tmp_path, monkeypatch):
    """Pillow picks the plugin by content: an EPS named .png ran `gs`. A stand-in gs records any run."""
    bin_dir, ran = tmp_path / "bin", tmp_path / "gs_ran"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\necho ran > {ran}\nexit 1\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "style.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n%%EOF\n")
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "style.png")
    assert "\n" not in str(e.value) and not ran.exists()


def test_progress_far_past_its_total_is_cheap():
    """done >> total (a chunked reply announcing 1 byte) stepped next_fraction 0.1 at a time: ~1 s per MB
    (here ~15 s before the fix)."""
    bar = DownloadProgress(1, stream=io.StringIO())
    start = time.monotonic()
    bar.update(16 << 20)
    assert time.monotonic() - start < 1.0 and bar.stream.getvalue().count("\n") == 1


def test_a_bias_of_the_wrong_shape_is_refused():
    """Only the Keras reader checks bias shapes itself; converted and .pth files
    rely on _check_shapes."""
    params = wf.random_params(seed=0)
    k, b = params["conv2_1"]
    params["conv2_1"] = (k, np.concatenate([b, b[:1]]))
    with pytest.raises(W.WeightsError, match="conv2_1 has kernel .* and bias"):
        W._check_shapes(params, "x.h5")
    params["conv2_1"] = (k, b.reshape(1, -1))
    with pytest.raises(W.WeightsError, match="conv2_1 has kernel .* and bias"):
        W._check_shapes(params, "x.h5")


def test_a_virtual_dataset_is_refused(converted, tmp_path):
    """A virtual dataset reads its bytes from another file (any file the user can read, or a FIFO)."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["b"] = np.arange(64, dtype="<f4")

    def virtual_bias(f):
        del f["conv1_1/bias"]
        layout = h5py.VirtualLayout(shape=(64,), dtype="<f4")
        layout[:] = h5py.VirtualSource(str(other), "b", shape=(64,))
        f["conv1_1"].create_virtual_dataset("bias", layout)
    with pytest.raises(W.WeightsError, match="conv1_1/bias is not a dataset stored in this file"):
        W.read_weights(variant(converted, tmp_path, virtual_bias))


@pytest.mark.parametrize("version", [0, None])
def test_an_older_or_unversioned_converted_file_is_refused(converted, tmp_path, version):
    """Version 0, or no version attribute at all, is not this format (not only a newer version)."""
    def edit(f):
        if version is None:
            del f.attrs["format_version"]
        else:
            f.attrs["format_version"] = version
    with pytest.raises(W.WeightsError, match=f"format version {-1 if version is None else version}, this code reads 1"):
        W.read_weights(variant(converted, tmp_path, edit))


def test_a_float64_array_over_the_byte_limit_is_refused_unread(tmp_path):
    """9.4 M float64 values are 75 MB > 64 MB."""
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("k", shape=(3, 3, 512, 2048), dtype="<f8", chunks=(3, 3, 64, 64))   # nothing written
        with pytest.raises(W.WeightsError, match="larger than any VGG19 array"):
            W._read_dataset(f["k"], path)
