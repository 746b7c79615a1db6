"""Weight loaders: every public layout round-trips, sources agree on activations, bad files fail cleanly.

All files are synthetic, written by weight_fixtures in the exact public layouts with the real VGG19
shapes (the loaders check those shapes), once per module to keep the suite fast.
"""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import weight_fixtures as wf
from nst_numpy import weights as weights_module
from nst_numpy.fileio import default_file_mode
from nst_numpy.gradcheck import rel_error
from nst_numpy.vgg import VGG19
from nst_numpy.vgg_spec import CAFFE, CONV_NAMES, LAYER_NAMES, MATCONVNET, TORCHVISION
from nst_numpy.weights import (WeightsError, default_weights_path, detect_format, file_sha256, get_vgg19,
                               keras_layer_name, load_vgg19, read_weights, save_converted)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def params():
    return wf.random_params(seed=0)


@pytest.fixture(scope="module")
def files(params, tmp_path_factory):
    """One file per public layout, all holding `params` (Keras/BGR convention)."""
    d = tmp_path_factory.mktemp("weights")
    rgb = dict(params, conv1_1=(params["conv1_1"][0][:, :, ::-1, :], params["conv1_1"][1]))  # BGR -> RGB inputs
    out = {"keras": d / "keras_notop.h5", "keras2": d / "keras2.h5", "mat_new": d / "new.mat",
           "mat_old": d / "old.mat", "pth_zip": d / "zip.pth", "pth_legacy": d / "legacy.pth"}
    wf.write_keras(out["keras"], params)
    wf.write_keras(out["keras2"], params, style="keras2", chunks=3)
    wf.write_matconvnet(out["mat_new"], rgb)
    wf.write_matconvnet(out["mat_old"], rgb, version="old")
    state = wf.torch_state_dict(params)
    wf.write_torch_zip(out["pth_zip"], state)
    wf.write_torch_legacy(out["pth_legacy"], state)
    return out


def assert_params_equal(got, expected):
    for name in CONV_NAMES:
        assert np.array_equal(got[name][0], expected[name][0]), name
        assert np.array_equal(got[name][1], expected[name][1]), name


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("which, fmt", [("keras", "keras"), ("keras2", "keras"), ("mat_new", "matconvnet"),
                                        ("mat_old", "matconvnet"), ("pth_zip", "torch"), ("pth_legacy", "torch")])
def test_detect_format_from_content_not_name(files, tmp_path, which, fmt):
    misnamed = tmp_path / "weights.bin"
    os.symlink(files[which], misnamed)
    assert detect_format(misnamed) == fmt


def test_keras_round_trip(files, params):
    for which in ("keras", "keras2"):  # the notop file's names, and Keras 2's kernel:0 with chunked layer_names
        got, prep, info = read_weights(files[which])
        assert_params_equal(got, params)
        assert prep == CAFFE and info["normalized"] is False
        assert info["source_sha256"] == file_sha256(files[which])


def test_keras_read_by_order_when_layer_names_differ(params, tmp_path):
    """Keras loads these files by order; a model saved with other layer names still loads."""
    rename = {keras_layer_name(n): f"conv2d_{i + 1}" for i, n in enumerate(CONV_NAMES)}
    wf.write_keras(tmp_path / "renamed.h5", params, rename=rename)
    assert_params_equal(read_weights(tmp_path / "renamed.h5")[0], params)
    # ... but only if the order fits VGG19: with a layer left out, the shapes no longer line up
    wf.write_keras(tmp_path / "short.h5", params, rename=rename, skip=("conv2_1",))
    with pytest.raises(WeightsError, match="missing layer"):
        load_vgg19(tmp_path / "short.h5")


def test_matconvnet_round_trip_both_versions(files, params):
    for which in ("mat_new", "mat_old"):
        got, prep, _ = read_weights(files[which])
        assert np.array_equal(got["conv1_1"][0], params["conv1_1"][0][:, :, ::-1, :])  # stored for RGB input
        assert_params_equal(dict(got, conv1_1=params["conv1_1"]), params)
        assert prep.channel_order == "RGB" and prep.scale == 1.0
        np.testing.assert_allclose(prep.mean, (123.68, 116.779, 103.939), atol=1e-4)


def test_matconvnet_preprocessing_is_caffes_in_rgb_order():
    """The MatConvNet files hold the Caffe VGG19 for RGB input: the same network input as CAFFE's,
    channels reversed (the mean a .mat file without one gets: VGG's published RGB mean)."""
    rgb = np.random.default_rng(0).uniform(0, 255, (4, 5, 3))
    np.testing.assert_allclose(MATCONVNET.preprocess(rgb, np.float64), CAFFE.preprocess(rgb, np.float64)[..., ::-1])
    assert MATCONVNET.mean == pytest.approx((123.68, 116.779, 103.939))


def test_torch_round_trip_zip_and_legacy(files, params):
    for which in ("pth_zip", "pth_legacy"):
        got, prep, _ = read_weights(files[which])
        assert_params_equal(got, params)  # OIHW on disk -> HWIO
        assert prep == TORCHVISION


def test_converted_round_trip_keeps_preprocessing_and_source(files, params, tmp_path):
    script = REPO / "scripts" / "convert_weights.py"
    for which, prep in (("keras", CAFFE), ("pth_legacy", TORCHVISION)):
        out = tmp_path / f"{which}.h5"
        r = subprocess.run([sys.executable, str(script), str(files[which]), "-o", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        got, got_prep, info = read_weights(out)
        assert_params_equal(got, params)
        assert got_prep == prep
        assert info == {"source_name": files[which].name, "source_sha256": file_sha256(files[which]),
                        "normalized": False, "format": "converted"}
        with h5py.File(out, "r") as f:
            assert f["conv3_2/kernel"].shape == (3, 3, 256, 256) and f["conv3_2/bias"].shape == (256,)
            assert f.attrs["format_version"] == 1
        assert out.stat().st_mode & 0o777 == default_file_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keras.h5", "pth_legacy.h5"]  # no temp files left


def test_save_converted_accepts_a_net_and_records_normalized(tmp_path, params):
    net = VGG19.from_arrays(params, preprocessing=TORCHVISION)
    save_converted(net, tmp_path / "n.h5", net.preprocessing, "src.pth", "ab" * 32, normalized=True)
    loaded = load_vgg19(tmp_path / "n.h5", pooling="max", dtype=np.float64)
    assert loaded.pooling == "max" and loaded.dtype == np.float64 and loaded.preprocessing == TORCHVISION
    assert read_weights(tmp_path / "n.h5")[2]["normalized"] is True


def test_load_vgg19_engine_picks_the_network_class(tmp_path, params):
    """engine="fast" (default) gives the engine, "reference" the readable VGG19; anything else is an error."""
    save_converted(params, tmp_path / "n.h5", CAFFE, "src.h5", "ab" * 32)
    assert type(load_vgg19(tmp_path / "n.h5")).__name__ == "FastVGG19"
    assert type(load_vgg19(tmp_path / "n.h5", engine="reference")) is VGG19
    with pytest.raises(ValueError, match="engine must be one of"):
        load_vgg19(tmp_path / "n.h5", engine="torch")


def test_save_converted_disk_full_leaves_nothing(params, tmp_path, monkeypatch):
    class FullDisk(h5py.File):
        def create_group(self, name):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights_module.h5py, "File", FullDisk)
    with pytest.raises(WeightsError, match="cannot write .*No space left on device"):
        save_converted(params, tmp_path / "out.h5", CAFFE, "k.h5", "0" * 64)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# Cross-check: the same network stored by different sources computes the same activations
# ---------------------------------------------------------------------------

def _torchvision_equivalent(params):
    """Torch-style weights computing what the Keras (BGR, Caffe mean) weights compute, from
    TORCHVISION input x_t = (rgb / 255 - m) / s. The Caffe input is bgr(rgb) - caffe_mean, i.e. per RGB
    channel c: 255 s_c x_t[c] + 255 m_c - caffe_mean_c; fold the scale into conv1_1's kernel and the
    offset into its bias."""
    k_bgr, b = (np.asarray(a, np.float64) for a in params["conv1_1"])
    k_rgb = k_bgr[:, :, ::-1, :]                                          # (3, 3, 3, 64), RGB inputs
    a = 255.0 * np.asarray(TORCHVISION.std)                               # (3,)
    d = 255.0 * np.asarray(TORCHVISION.mean) - np.asarray(CAFFE.mean)[::-1]  # (3,), RGB order
    kernel = k_rgb * a[:, None]
    bias = b + np.einsum("hwco,c->o", k_rgb, d)
    return dict(params, conv1_1=(kernel, bias))


def _margin(layer):
    """Pixels at the border of `layer` that zero padding reaches (conv +1, pool halves, rounded up)."""
    m = 0
    for name in LAYER_NAMES[:LAYER_NAMES.index(layer) + 1]:
        if name.startswith("conv"):
            m += 1
        elif name.startswith("pool"):
            m = -(-m // 2)
    return m


def test_cross_check_keras_torchvision_matconvnet_same_activations(files, params, tmp_path):
    # Keras and MatConvNet files from the module fixture; a torch file of the equivalent weights,
    # computed and stored in float64 (DoubleStorage). The nets run in float32, as real runs do.
    params64 = {n: tuple(np.asarray(a, np.float64) for a in p) for n, p in params.items()}
    wf.write_torch_legacy(tmp_path / "t.pth", wf.torch_state_dict(_torchvision_equivalent(params64)))
    nets = {fmt: load_vgg19(f, pooling="max", dtype=np.float32)
            for fmt, f in (("keras", files["keras"]), ("torch", tmp_path / "t.pth"), ("mat", files["mat_new"]))}
    rng = np.random.default_rng(1)
    rgb = np.clip(128 + 60 * rng.standard_normal((64, 64, 3)).cumsum(axis=1) / 10, 0, 255)
    # The sources differ only in conv1_1 and the preprocessing; the deeper layers are the same arrays.
    # (Forward stops at relu3_1: beyond it, a 64 px image has no pixels the torch padding cannot reach,
    # and each net transforms only the kernels it uses, which keeps this test fast.)
    for name in CONV_NAMES[1:]:
        for fmt in ("torch", "mat"):
            assert rel_error(nets[fmt].params[name][0], nets["keras"].params[name][0]) < 1e-7, (fmt, name)
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    acts = {fmt: net.forward(net.preprocess(rgb), layers) for fmt, net in nets.items()}
    for layer in layers:
        a = acts["keras"][layer]
        # MatConvNet differs only in channel order and mean order: identical everywhere.
        assert rel_error(acts["mat"][layer], a) < 1e-5, layer
        # Torchvision's mean differs from Caffe's, so the zero padding means a different pixel:
        # equal away from the border that padding reaches.
        m = _margin(layer)
        inner = (slice(m, a.shape[0] - m), slice(m, a.shape[1] - m))
        assert rel_error(acts["torch"][layer][inner], a[inner]) < 1e-5, layer
    # negative control: the border does differ, so the interior comparison is a real restriction
    assert rel_error(acts["torch"]["relu1_1"], acts["keras"]["relu1_1"]) > 1e-3


# ---------------------------------------------------------------------------
# Bad files: one clear WeightsError, never code execution
# ---------------------------------------------------------------------------

def test_not_a_weight_file(tmp_path):
    (tmp_path / "x.h5").write_text("hello, not HDF5\n")
    with pytest.raises(WeightsError, match="not a recognised VGG19 weight file"):
        load_vgg19(tmp_path / "x.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(WeightsError, match="neither a Keras"):
        load_vgg19(tmp_path / "other.h5")
    with pytest.raises(WeightsError, match="does not exist.*--weights PATH"):
        load_vgg19(tmp_path / "absent.h5")
    with pytest.raises(WeightsError, match="is not a file"):
        load_vgg19(tmp_path)
    (tmp_path / "v73.mat").write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" "))
    with pytest.raises(WeightsError, match="v7.3 .*save -v7"):
        load_vgg19(tmp_path / "v73.mat")


def test_an_unreadable_file_is_a_weights_error(tmp_path, monkeypatch):
    """Reading the first bytes or hashing a file the user may not read: WeightsError (one line, which
    convert_weights.py prints), not PermissionError. Root reads every file, so open() is made to refuse."""
    (tmp_path / "w.h5").write_bytes(b"\x89HDF\r\n\x1a\n".ljust(512, b"\0"))

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(weights_module, "open", refused, raising=False)   # found before the builtin
    with pytest.raises(WeightsError, match="w.h5: cannot read it .*Permission denied"):
        read_weights(tmp_path / "w.h5")
    with pytest.raises(WeightsError, match="w.h5: cannot read it .*Permission denied"):
        file_sha256(tmp_path / "w.h5")


@pytest.mark.parametrize("which", ["keras", "mat_new", "pth_zip", "pth_legacy"])
def test_truncated_files(files, tmp_path, which):
    data = files[which].read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        bad = tmp_path / f"cut{cut}"
        bad.write_bytes(data[:cut])
        with pytest.raises(WeightsError) as e:
            load_vgg19(bad)
        assert "\n" not in str(e.value)


def test_missing_layer_and_wrong_shapes(files, params, tmp_path):
    wf.write_keras(tmp_path / "missing.h5", params, skip=("conv3_2",))
    with pytest.raises(WeightsError, match="missing layer.*block3_conv2"):
        load_vgg19(tmp_path / "missing.h5")
    wf.write_keras(tmp_path / "shape.h5", params, shapes={"conv2_1": (3, 3, 64, 127)})
    with pytest.raises(WeightsError, match=r"conv2_1 has kernel \(3, 3, 64, 127\)"):
        load_vgg19(tmp_path / "shape.h5")
    state = wf.torch_state_dict(params)
    del state["features.21.bias"]
    wf.write_torch_zip(tmp_path / "missing.pth", state)
    with pytest.raises(WeightsError, match="missing layer conv4_2"):
        load_vgg19(tmp_path / "missing.pth")
    save_converted(params, tmp_path / "conv.h5", CAFFE, "k.h5", "0" * 64)
    with h5py.File(tmp_path / "conv.h5", "a") as f:
        del f["conv5_4"]
    with pytest.raises(WeightsError, match="missing layer conv5_4"):
        load_vgg19(tmp_path / "conv.h5")


def test_weights_that_are_not_finite_floats_are_refused(params, tmp_path):
    """A NaN kernel would surface only as a NaN loss mid-run, and integers would lose their scale:
    refused when read, and when converted, naming the layer."""
    nan = dict(params, conv2_1=(params["conv2_1"][0].copy(), params["conv2_1"][1]))
    nan["conv2_1"][0][0, 0, 0, 0] = np.nan
    wf.write_keras(tmp_path / "nan.h5", nan)
    with pytest.raises(WeightsError, match="conv2_1's kernel holds NaN or infinite values"):
        load_vgg19(tmp_path / "nan.h5")
    with pytest.raises(WeightsError, match="conv2_1's kernel holds NaN"):
        save_converted(nan, tmp_path / "nan_converted.h5", CAFFE, "k.h5", "0" * 64)
    assert not (tmp_path / "nan_converted.h5").exists()
    save_converted(params, tmp_path / "int.h5", CAFFE, "k.h5", "0" * 64)
    load_vgg19(tmp_path / "int.h5")   # the control: as written, it loads
    with h5py.File(tmp_path / "int.h5", "a") as f:
        bias = f["conv3_1"]["bias"][...]
        del f["conv3_1"]["bias"]
        f["conv3_1"]["bias"] = bias.astype(np.int8)
    with pytest.raises(WeightsError, match="conv3_1's bias holds int8 values, not floating point"):
        load_vgg19(tmp_path / "int.h5")


def test_a_huge_declared_array_or_corrupt_compression_is_a_one_line_error(params, tmp_path):
    """A small HDF5 file whose kernel declares 4 * 10^11 bytes is refused before reading it; a compressed
    .mat with damaged bytes is a WeightsError, not zlib's traceback."""
    from scipy.io import savemat
    save_converted(params, tmp_path / "huge.h5", CAFFE, "k.h5", "0" * 64)
    with h5py.File(tmp_path / "huge.h5", "a") as f:
        del f["conv1_1"]["kernel"]
        f["conv1_1"].create_dataset("kernel", shape=(10 ** 11,), dtype="f4")   # declared, never written
    with pytest.raises(WeightsError, match=r"conv1_1/kernel declares shape \(100000000000,\), larger than any VGG19"):
        load_vgg19(tmp_path / "huge.h5")
    savemat(tmp_path / "z.mat", {"layers": np.arange(50000.0)}, do_compression=True)
    data = bytearray((tmp_path / "z.mat").read_bytes())
    data[300:400] = bytes(100)
    (tmp_path / "z.mat").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="z.mat: cannot read this matconvnet file") as e:
        load_vgg19(tmp_path / "z.mat")
    assert "\n" not in str(e.value)


def test_malformed_files_name_what_is_wrong(files, params, tmp_path):
    """Each reader's structural checks: one WeightsError naming the file and the problem."""
    from scipy.io import savemat
    cases = []

    def mat_layers(name, *layers):   # a .mat file whose 'layers' cell holds these structs (dicts)
        savemat(tmp_path / name, {"layers": wf.mat_cell(*layers)})
    wf.write_keras(tmp_path / "nogroup.h5", params)
    with h5py.File(tmp_path / "nogroup.h5", "a") as f:
        del f["block2_conv1"]   # still listed in layer_names
    cases.append(("nogroup.h5", "layer block2_conv1 is listed in layer_names but has no group"))
    wf.write_keras(tmp_path / "three.h5", params)
    with h5py.File(tmp_path / "three.h5", "a") as f:
        g = f["block1_conv1"]
        g.create_dataset("extra:0", data=np.zeros(3, np.float32))
        wf._set_string_list(g, "weight_names", ["block1_conv1_W_1:0", "block1_conv1_b_1:0", "extra:0"])
    cases.append(("three.h5", r"layer block1_conv1 should hold a 4-D kernel and a bias, found shapes "
                              r"\[\(3, 3, 3, 64\), \(64,\), \(3,\)\]"))
    savemat(tmp_path / "nolayers.mat", {"net": np.arange(3.0)})
    cases.append(("nolayers.mat", "a .mat file without a 'layers' variable"))
    savemat(tmp_path / "numbers.mat", {"layers": np.arange(3.0)})
    cases.append(("numbers.mat", "'layers' does not hold MatConvNet layer structs"))
    mat_layers("fields.mat", {"name": "conv1_1", "type": "conv", "filters": np.zeros(3)})
    cases.append(("fields.mat", r"conv layer struct with fields \[.*'filters'.*\]: expected 'name' and 'weights'"))
    mat_layers("one.mat", {"name": "conv1_1", "type": "conv", "weights": wf.mat_cell(np.zeros((3, 3, 3, 64)))})
    cases.append(("one.mat", "conv layer conv1_1 has 1 weight arrays, expected 2"))
    k, b = params["conv1_1"]
    mat_layers("short.mat", {"name": "conv1_1", "type": "conv", "weights": wf.mat_cell(k, b[None])},
               {"name": "relu1_1", "type": "relu"})
    cases.append(("short.mat", "missing layer.*conv1_2.*in this MatConvNet file"))
    wf.write_matconvnet(tmp_path / "nomean.mat", params, mean_rgb=None)   # no normalization recorded: VGG's mean
    assert read_weights(tmp_path / "nomean.mat")[1] == MATCONVNET
    wf.write_matconvnet(tmp_path / "mean.mat", params, mean_rgb=(-5.0, 116.0, 104.0))
    cases.append(("mean.mat", r"implausible mean pixel \[ *-5\. +116\. +104\.\]"))
    state = wf.torch_state_dict(params)
    state["features.0.weight"] = state["features.0.weight"].reshape(64, -1)
    wf.write_torch_zip(tmp_path / "flat.pth", state)
    cases.append(("flat.pth", r"features.0.weight has shape \(64, 27\), expected \(C_out, C_in, 3, 3\)"))
    save_converted(params, tmp_path / "future.h5", CAFFE, "k.h5", "0" * 64)
    with h5py.File(tmp_path / "future.h5", "a") as f:
        f.attrs["format_version"] = 99
    cases.append(("future.h5", "converted file format version 99, this code reads"))
    for name, message in cases:
        with pytest.raises(WeightsError, match=f"{name}: {message}"):
            load_vgg19(tmp_path / name)
    read_weights(files["mat_new"])   # control: a well-formed file of each kind these came from loads
    read_weights(files["keras"])
    partial = {n: params[n] for n in CONV_NAMES if n != "conv5_4"}
    with pytest.raises(WeightsError, match="partial.h5: missing layer\\(s\\) conv5_4$"):   # and nothing written
        save_converted(partial, tmp_path / "partial.h5", CAFFE, "k.h5", "0" * 64)
    assert not (tmp_path / "partial.h5").exists()


@pytest.mark.parametrize("container", ["zip", "legacy"])
@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"),
                                          ("posix", "system")])
def test_forged_pth_is_refused_without_running(params, tmp_path, container, module, name):
    sentinel = tmp_path / "pwned"
    payload = {"eval": f"open({str(sentinel)!r}, 'w')", "Popen": ("touch", str(sentinel))}.get(name,
                                                                                            f"touch {sentinel}")
    evil = wf.forged_pickle(module, name, payload)
    # negative control: plain pickle runs such a file (shown with a harmless global of the same shape)
    assert pickle.loads(wf.forged_pickle("builtins", "len", "abc")) == 3
    state = {"features.0.bias": params["conv1_1"][1]}
    path = tmp_path / "evil.pth"
    if container == "zip":
        wf.write_torch_zip(path, state, data_pkl=evil)
    else:
        wf.write_torch_legacy(path, state, object_pkl=evil)
    with pytest.raises(WeightsError, match=f"refused to load global {module}.{name}"):
        load_vgg19(path)
    assert not sentinel.exists()


def test_forged_tensor_geometry_is_refused(params, tmp_path):
    """A storage offset/stride pointing outside the storage must not read foreign memory."""
    pid = wf.PersId(("storage", wf.Global("torch", "FloatStorage"), "0", "cpu", 4))
    tensor = wf.Call(wf.Global("torch._utils", "_rebuild_tensor_v2"), (pid, 0, (2, 2), (1000, 1), False, None))
    pkl = wf.dumps({"features.0.bias": tensor})
    wf.write_torch_zip(tmp_path / "geom.pth", {"x": np.zeros(4, np.float32)}, data_pkl=pkl)
    with pytest.raises(WeightsError, match="reads past the end"):
        load_vgg19(tmp_path / "geom.pth")


def test_convert_script_bad_input_exits_2_without_output(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out.h5"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_weights.py"), str(tmp_path / "junk.pth"),
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pth"]


# ---------------------------------------------------------------------------
# Where weights live
# ---------------------------------------------------------------------------

def test_default_weights_path(monkeypatch, tmp_path):
    monkeypatch.setenv("NST_NUMPY_WEIGHTS", str(tmp_path / "mine.h5"))
    assert default_weights_path() == tmp_path / "mine.h5"
    monkeypatch.delenv("NST_NUMPY_WEIGHTS")
    assert default_weights_path() == REPO / "weights" / "vgg19.h5"  # the tests run from a checkout
    # installed elsewhere (no setup.cfg beside the package): the user's cache folder
    monkeypatch.setattr(weights_module, "__file__", str(tmp_path / "site-packages" / "nst_numpy" / "weights.py"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_weights_path() == tmp_path / "xdg" / "nst_numpy" / "vgg19.h5"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_weights_path() == tmp_path / "home" / ".cache" / "nst_numpy" / "vgg19.h5"


def test_get_vgg19_path_and_missing_default(files, monkeypatch, tmp_path):
    net = get_vgg19(files["pth_zip"], pooling="max")
    assert net.preprocessing == TORCHVISION and net.pooling == "max"
    monkeypatch.setenv("NST_NUMPY_WEIGHTS", str(tmp_path / "none.h5"))
    with pytest.raises(WeightsError, match=r"no VGG19 weights at .*--weights PATH"):
        get_vgg19(download=False)
