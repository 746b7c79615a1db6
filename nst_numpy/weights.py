"""Real VGG19 weights: load the public Keras, MatConvNet and torchvision files, and convert them.

    net = load_vgg19("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", pooling="max")
    net = get_vgg19()          # the converted file in weights/ (downloaded and converted on first use)
    ref = load_vgg19(path, engine="reference")   # the readable network instead of the engine
    x = net.preprocess(rgb)    # whatever the source, rgb is (H, W, 3) RGB in 0..255

The format is detected from the file's content, never its name. Each source's input
preprocessing (channel order, scale, mean, std) travels with the weights, so callers never
need to know where the weights came from. Every failure raises WeightsError with a one-line
message. See weights/README.md for the sources and the converted format; normalize.py
builds the papers' normalised network from them.
"""
import hashlib
import os
import pathlib
import tempfile
import zlib

import h5py
import numpy as np

from . import torch_reader
from .download import DownloadError, download
from .console import one_line
from .fileio import atomic_path, remove_stale_temps, temp_files, temp_prefix
from .fast import FastVGG19
from .matconvnet import MatFormatError, read_matconvnet
from .vgg import VGG19
from .vgg_spec import CAFFE, CONV_NAMES, CONV_SPECS, TORCHVISION, Preprocessing

KERAS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
             "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
KERAS_MD5 = "253f8cb515780f3b799900260a226db6"  # pinned by keras.applications.vgg19
FORMAT_NAME = "nst_numpy.vgg19"
FORMAT_VERSION = 1
PLACE_HINT = ("If you have a VGG19 weight file (Keras .h5, MatConvNet .mat or torchvision .pth), pass "
              "--weights PATH or run `python scripts/convert_weights.py PATH` (see weights/README.md).")

# torchvision: features.N is the N-th module of vgg19().features; these N are its 16 convs.
TORCH_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
SHAPES = {name: (3, 3, c_in, c_out) for name, c_in, c_out in CONV_SPECS}


class WeightsError(Exception):
    """Any failure to find, download, read, check or write weights; the message is one line for the user."""


def keras_layer_name(name):
    """conv3_2 -> block3_conv2 (Keras' names for the paper's layers)."""
    block, k = name[4:].split("_")
    return f"block{block}_conv{k}"


# ---------------------------------------------------------------------------
# Format detection and the common entry point
# ---------------------------------------------------------------------------

def detect_format(path):
    """'converted', 'keras', 'matconvnet' or 'torch', from the file's first bytes and structure."""
    path = pathlib.Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise WeightsError(f"weight file {path} {problem}. {PLACE_HINT}")
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError as e:   # e.g. no permission to read it
        raise WeightsError(f"{path}: cannot read it ({one_line(e)})") from None
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return "matconvnet"
    if head.startswith(b"MATLAB 7.3 MAT-file"):  # HDF5 inside; scipy.io.loadmat cannot read it
        raise WeightsError(f"{path}: a MATLAB v7.3 .mat file; re-save it in MATLAB with save -v7 to load it")
    if head.startswith(b"PK\x03\x04") or head.startswith(torch_reader.LEGACY_PREFIX):
        return "torch"
    if h5py.is_hdf5(str(path)):
        try:
            with h5py.File(path, "r") as f:
                fmt = f.attrs.get("format")   # may be an array, or of a type h5py cannot read (TypeError)
                if isinstance(fmt, str) and fmt == FORMAT_NAME:
                    return "converted"
                if "layer_names" in f.attrs or "layer_names0" in f.attrs:
                    return "keras"
        except (OSError, ValueError, TypeError) as e:
            raise WeightsError(f"{path}: unreadable HDF5 file ({one_line(e)})") from None
        raise WeightsError(f"{path}: an HDF5 file, but neither a Keras weight file (no layer_names) "
                           "nor a converted nst_numpy file")
    raise WeightsError(f"{path}: not a recognised VGG19 weight file (expected Keras .h5, MatConvNet .mat, "
                       "torchvision .pth or a converted .h5)")


def read_weights(path):
    """Read any supported file -> (params, preprocessing, info).

    params: {"conv1_1": (kernel (3, 3, C_in, C_out), bias (C_out,)), ...} for the 16 convs, floats in
    the file's own precision (the networks convert them to theirs).
    preprocessing: the Preprocessing these weights expect.
    info: {"source_name", "source_sha256", "normalized", "format"}.
    """
    path = pathlib.Path(path)
    fmt = detect_format(path)
    readers = {"converted": _read_converted, "keras": _read_keras,
               "matconvnet": _read_matconvnet, "torch": _read_torch}
    try:
        params, prep, info = readers[fmt](path)
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, zlib.error, MemoryError) as e:
        # h5py/scipy raise these on truncated or malformed files (zlib.error: a corrupt compressed .mat;
        # MemoryError: a .mat declaring a huge array); keep the message to one line.
        msg = one_line(e)
        raise WeightsError(f"{path}: cannot read this {fmt} file ({type(e).__name__}: {msg})") from None
    _check_shapes(params, path)
    if info.get("source_sha256") is None:  # an original file: record what it was
        info["source_name"], info["source_sha256"] = path.name, file_sha256(path)
    info["format"] = fmt
    return params, prep, info


ENGINES = {"fast": FastVGG19, "reference": VGG19}   # --engine: which network class runs the weights


def network_class(engine):
    """"fast" -> FastVGG19 (the engine), "reference" -> VGG19 (the readable network); ValueError otherwise."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}")
    return ENGINES[engine]


def load_vgg19(path, pooling="avg", dtype=np.float32, engine="fast"):
    """Build a network from any supported weight file. pooling: "avg" (Gatys) or "max" (as trained);
    engine: "fast" (FastVGG19) or "reference" (VGG19), the same numbers either way."""
    cls = network_class(engine)
    params, prep, _ = read_weights(path)
    return cls.from_arrays(params, pooling=pooling, preprocessing=prep, dtype=dtype)


def _check_shapes(params, path):
    """params: {conv name: (kernel (3, 3, C_in, C_out), bias (C_out,))}; WeightsError unless every conv
    of VGG19 is there with its shapes and finite float values."""
    missing = [n for n in CONV_NAMES if n not in params]
    if missing:
        raise WeightsError(f"{path}: missing layer(s) {', '.join(missing)}")
    for name, shape in SHAPES.items():
        kernel, bias = params[name]
        if kernel.shape != shape or bias.shape != (shape[3],):
            raise WeightsError(f"{path}: {name} has kernel {kernel.shape} and bias {bias.shape}, "
                               f"expected {shape} and ({shape[3]},) for VGG19")
        for what, a in (("kernel", kernel), ("bias", bias)):
            # Integers would be cast to floats without their scale, and a NaN would surface only
            # as a NaN loss, far from its cause.
            if np.asarray(a).dtype.kind != "f":
                raise WeightsError(f"{path}: {name}'s {what} holds {np.asarray(a).dtype} values, not floating point")
            if not np.all(np.isfinite(a)):
                raise WeightsError(f"{path}: {name}'s {what} holds NaN or infinite values")


def file_sha256(path):
    return _file_hash(path, hashlib.sha256)


def _file_hash(path, kind):
    """The hex digest of the file at path by hashlib's `kind`; WeightsError if it cannot be read."""
    h = kind()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read it ({one_line(e)})") from None
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Keras (legacy HDF5 weights: layer_names / weight_names attributes)
# ---------------------------------------------------------------------------

MAX_ARRAY_BYTES = 64 << 20   # VGG19's largest array, a 512x512 kernel, is 9.4 MB in float32 (19 MB in float64)


def _child(group, name, path):
    """group[name] through hard links only, at every step of a name like block1_conv1/kernel:0 (HDF5
    follows a link in the middle of a path unasked): a soft or external link can point at another file."""
    for part in name.split("/"):
        link = group.get(part, getlink=True) if part else None
        if link is None:
            raise WeightsError(f"{path}: {group.name}/{name} is missing")
        if not isinstance(link, h5py.HardLink):
            raise WeightsError(f"{path}: {group.name}/{part} is a link ({type(link).__name__}); only plain datasets "
                               f"are read")
        group = group[part]
    return group


def _dataset(group, name, path):
    """A dataset whose bytes are in this file: external storage and virtual datasets name other files
    (any local file, or a FIFO that blocks the read)."""
    dataset = _child(group, name, path)
    if not isinstance(dataset, h5py.Dataset) or dataset.external or dataset.is_virtual:
        raise WeightsError(f"{path}: {dataset.name} is not a dataset stored in this file")
    return dataset


def _read_dataset(dataset, path):
    """An HDF5 dataset as an array, refused before reading when its header declares more than any
    VGG19 array holds (a 7 KB file may declare terabytes)."""
    if dataset.size * dataset.dtype.itemsize > MAX_ARRAY_BYTES:
        raise WeightsError(f"{path}: {dataset.name} declares shape {dataset.shape}, larger than any VGG19 array")
    return np.asarray(dataset)


def _string_list_attr(group, name):
    """A list-of-strings attribute, joining the chunks name0, name1, ... Keras uses for long lists."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_keras(path):
    with h5py.File(path, "r") as root:
        weighted = []  # (layer name, [datasets]) in network order, layers with weights only; nothing read yet
        seen = set()   # each dataset once: one compressed dataset listed N times would be read N times
        for layer in _string_list_attr(root, "layer_names"):
            if layer not in root:
                raise WeightsError(f"{path}: layer {layer} is listed in layer_names but has no group")
            group = _child(root, layer, path)
            names = _string_list_attr(group, "weight_names")
            datasets = [_dataset(group, n, path) for n in names]
            if any(d.id in seen or seen.add(d.id) for d in datasets):
                raise WeightsError(f"{path}: layer {layer} lists a dataset that is already listed")
            if datasets:
                weighted.append((layer, datasets))
        params = _keras_params(dict(weighted), weighted, path)
    return params, CAFFE, {"normalized": False}


def _keras_params(by_name, weighted, path):
    """The 16 convs' (kernel, bias) from {layer: [datasets]}, shapes checked before any data is read."""
    params = {}
    if all(keras_layer_name(n) in by_name for n in CONV_NAMES):
        chosen = [(n, by_name[keras_layer_name(n)]) for n in CONV_NAMES]
    else:
        # Keras itself loads these files by order; accept other layer names if the order fits.
        missing = [keras_layer_name(n) for n in CONV_NAMES if keras_layer_name(n) not in by_name]
        if len(weighted) < len(CONV_NAMES) or any(a[0].shape != SHAPES[n] for n, (_, a) in
                                                  zip(CONV_NAMES, weighted) if len(a) == 2):
            raise WeightsError(f"{path}: missing layer(s) {', '.join(missing)} in this Keras file")
        chosen = [(n, arrays) for n, (_, arrays) in zip(CONV_NAMES, weighted)]
    for name, arrays in chosen:
        kernels = [a for a in arrays if a.ndim == 4]
        biases = [a for a in arrays if a.ndim == 1]
        if len(arrays) != 2 or len(kernels) != 1 or len(biases) != 1:
            raise WeightsError(f"{path}: layer {keras_layer_name(name)} should hold a 4-D kernel and a bias, "
                               f"found shapes {[a.shape for a in arrays]}")
        if kernels[0].shape != SHAPES[name] or biases[0].shape != SHAPES[name][3:]:   # before reading anything
            raise WeightsError(f"{path}: {name} has kernel {kernels[0].shape} and bias {biases[0].shape}, "
                               f"expected {SHAPES[name]} and {SHAPES[name][3:]} for VGG19")
        params[name] = (kernels[0], biases[0])  # HWIO, cross-correlation: exactly our convention
    return {n: (_read_dataset(k, path), _read_dataset(b, path)) for n, (k, b) in params.items()}


# ---------------------------------------------------------------------------
# MatConvNet (imagenet-vgg-verydeep-19.mat: matconvnet.py)
# ---------------------------------------------------------------------------

def _read_matconvnet(path):
    try:
        params, prep = read_matconvnet(path, SHAPES)
    except MatFormatError as e:
        raise WeightsError(f"{path}: {e}") from None
    return params, prep, {"normalized": False}


# ---------------------------------------------------------------------------
# torchvision (vgg19-dcbb9e9d.pth, through the restricted reader)
# ---------------------------------------------------------------------------

def _read_torch(path):
    try:
        state = torch_reader.read_state_dict(path)
    except torch_reader.TorchFormatError as e:
        raise WeightsError(f"{path}: {e}") from None
    params = {}
    for name, i in zip(CONV_NAMES, TORCH_CONV_INDICES):
        w, b = state.get(f"features.{i}.weight"), state.get(f"features.{i}.bias")
        if w is None or b is None:
            raise WeightsError(f"{path}: missing layer {name} (features.{i}.weight / .bias) in this state dict")
        if w.ndim != 4:
            raise WeightsError(f"{path}: features.{i}.weight has shape {w.shape}, expected (C_out, C_in, 3, 3)")
        params[name] = (w.transpose(2, 3, 1, 0), b)  # OIHW -> HWIO
    return params, TORCHVISION, {"normalized": False}


# ---------------------------------------------------------------------------
# The converted format (one HDF5 file, written atomically)
# ---------------------------------------------------------------------------

def _read_converted(path):
    with h5py.File(path, "r") as f:
        version = int(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise WeightsError(f"{path}: converted file format version {version}, this code reads {FORMAT_VERSION}")
        params = {}
        for name in CONV_NAMES:
            if name not in f:
                raise WeightsError(f"{path}: missing layer {name}")
            group = _child(f, name, path)
            params[name] = (_read_dataset(_dataset(group, "kernel", path), path),
                            _read_dataset(_dataset(group, "bias", path), path))
        a = f.attrs
        prep = Preprocessing(str(a["channel_order"]), float(a["scale"]), tuple(float(v) for v in a["mean"]),
                             tuple(float(v) for v in a["std"]))
        info = {"source_name": str(a["source_name"]), "source_sha256": str(a["source_sha256"]),
                "normalized": bool(a["normalized"])}
    return params, prep, info


def _atomic_write(path, write):
    """Call write(tmp_path) on a temp file next to path, then rename it into place (fileio.atomic_path)."""
    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write(tmp)
    except OSError as e:
        raise WeightsError(f"cannot write {path}: {e}") from None


def save_converted(net_or_params, path, preprocessing, source_name, source_sha256, normalized=False):
    """Write the converted format: groups conv1_1 ... conv5_4 with kernel (3, 3, C_in, C_out) and bias,
    root attributes for the preprocessing, the source, the format version and `normalized`."""
    params = net_or_params.params if isinstance(net_or_params, VGG19) else net_or_params
    _check_shapes({n: tuple(np.asarray(a) for a in params[n]) for n in params}, path)

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            for name in CONV_NAMES:
                kernel, bias = params[name]
                g = f.create_group(name)
                g.create_dataset("kernel", data=np.asarray(kernel, np.float32))
                g.create_dataset("bias", data=np.asarray(bias, np.float32).reshape(-1))
            f.attrs.update({
                "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "channel_order": preprocessing.channel_order, "scale": float(preprocessing.scale),
                "mean": np.asarray(preprocessing.mean, np.float64), "std": np.asarray(preprocessing.std, np.float64),
                "source_name": str(source_name), "source_sha256": str(source_sha256), "normalized": bool(normalized),
            })
    _atomic_write(path, write)


def convert(source, dest, source_name=None):
    """Read any supported file and write it in the converted format. Returns the info dict.
    source_name: the name to record for the source (default: its file name)."""
    params, prep, info = read_weights(source)
    if source_name is not None:
        info = dict(info, source_name=source_name)
    save_converted(params, dest, prep, info["source_name"], info["source_sha256"], info["normalized"])
    return info


# ---------------------------------------------------------------------------
# Default location, download on first use
# ---------------------------------------------------------------------------

def default_weights_path():
    """$NST_NUMPY_WEIGHTS if set; else <checkout>/weights/vgg19.h5 when running from a source checkout
    (the README's editable install); else ~/.cache/nst_numpy/vgg19.h5 ($XDG_CACHE_HOME respected)."""
    env = os.environ.get("NST_NUMPY_WEIGHTS")
    if env:
        return pathlib.Path(env).expanduser()
    repo = pathlib.Path(__file__).resolve().parent.parent
    if (repo / "setup.cfg").is_file() and (repo / "weights").is_dir():
        return repo / "weights" / "vgg19.h5"
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    return cache / "nst_numpy" / "vgg19.h5"


def fetch_and_convert(dest, url=None, md5=None, progress=True):
    """Download the Keras notop file (default KERAS_URL, KERAS_MD5) next to dest, verify its MD5,
    convert it to dest, delete the download. A file of that name already next to dest with that
    MD5 (placed there by hand) is converted instead, and kept; any other file there is left alone."""
    dest = pathlib.Path(dest)
    url, md5 = url or KERAS_URL, md5 or KERAS_MD5
    name = url.rsplit("/", 1)[-1]
    placed = dest.parent / name
    if placed != dest and placed.is_file() and _file_hash(placed, hashlib.md5) == md5:
        return convert(placed, dest, source_name=name)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_killed_downloads(dest.parent, name)
        fd, raw = tempfile.mkstemp(dir=dest.parent, prefix=temp_prefix(name), suffix=".download")   # a name of its own
        os.close(fd)
    except OSError as e:
        raise WeightsError(f"cannot write in {dest.parent}: {e}") from None
    raw = pathlib.Path(raw)
    try:
        try:
            download(url, raw, md5=md5, progress=progress)
        except DownloadError as e:
            raise WeightsError(f"{e}. {PLACE_HINT}") from None
        return convert(raw, dest, source_name=name)   # not the temporary name
    finally:
        raw.unlink(missing_ok=True)  # keep only the converted file


def _remove_killed_downloads(folder, name):
    """What a download killed outright left in folder (fileio.temp_files): the .download file, and the
    .part that download.py writes under that file's name (hundreds of MB); the .download goes once no
    .part of it is left, so a live one is never orphaned."""
    for raw in temp_files(folder / name, ".download", stale=True):
        remove_stale_temps(folder / raw, ".part")
        if not temp_files(folder / raw, ".part"):
            try:
                (folder / raw).unlink(missing_ok=True)
            except OSError:   # not ours to delete (a shared folder): leave it, and download anyway
                pass


def get_vgg19(path=None, pooling="avg", dtype=np.float32, download=True, progress=True, engine="fast"):
    """The network stylize.py uses: path if given, else the default converted file, downloading the
    Keras weights and converting them on first use (if download is True). engine: as load_vgg19."""
    network_class(engine)   # a bad engine fails before any download
    if path is not None:
        return load_vgg19(path, pooling=pooling, dtype=dtype, engine=engine)
    dest = default_weights_path()
    if not dest.is_file():
        if not download:
            raise WeightsError(f"no VGG19 weights at {dest}. {PLACE_HINT}")
        fetch_and_convert(dest, progress=progress)
    return load_vgg19(dest, pooling=pooling, dtype=dtype, engine=engine)
