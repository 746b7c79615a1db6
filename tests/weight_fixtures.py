"""Write synthetic VGG19 weight files in the exact public layouts, without Keras, MATLAB or torch.

Used by the weight tests only. Every writer takes params in our convention,
{"conv1_1": (kernel (3, 3, C_in, C_out) HWIO, bias (C_out,)), ...}, and stores them the way
the public file does (Keras: HWIO as is; MatConvNet: HWIO; torchvision: OIHW).
"""
import pickle
import struct
import zipfile

import h5py
import numpy as np
from scipy.io import savemat

from nst_numpy.torch_reader import LEGACY_MAGIC, LEGACY_PROTOCOL
from nst_numpy.vgg_spec import CONV_NAMES, CONV_SPECS
from nst_numpy.weights import TORCH_CONV_INDICES, keras_layer_name


def random_params(seed=0, dtype=np.float32):
    """Real VGG19 shapes, He-initialised, so activations stay O(1) through 16 layers."""
    rng = np.random.default_rng(seed)
    return {name: ((rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))).astype(dtype),
                   (0.1 * rng.standard_normal(c_out)).astype(dtype))
            for name, c_in, c_out in CONV_SPECS}


# ---------------------------------------------------------------------------
# Keras legacy HDF5
# ---------------------------------------------------------------------------

def keras_layer_list():
    """Layer names in the order keras.applications.VGG19(include_top=False) lists them."""
    names = ["input_1"]
    for name in CONV_NAMES:
        names.append(keras_layer_name(name))
        if name in ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"):
            names.append(f"block{name[4]}_pool")
    return names


def _set_string_list(group, name, values, chunks=1):
    """Store a list of strings as Keras does; chunks > 1 splits it into name0, name1, ..."""
    arr = np.array([v.encode("utf8") for v in values])
    if chunks == 1:
        group.attrs[name] = arr
    else:
        for i, part in enumerate(np.array_split(arr, chunks)):
            group.attrs[f"{name}{i}"] = part


def write_keras(path, params, style="legacy", chunks=1, skip=(), shapes=None, rename=None):
    """Keras weights file. style "legacy": block1_conv1_W_1:0 (the notop file); "keras2": kernel:0
    in a sub-group. skip: paper names to leave out entirely; shapes: {name: kernel shape} to corrupt;
    rename: {Keras layer name: other name}, as a model built with other layer names would save."""
    rename = rename or {}
    with h5py.File(path, "w") as f:
        layers = [n for n in keras_layer_list() if n not in {keras_layer_name(s) for s in skip}]
        _set_string_list(f, "layer_names", [rename.get(n, n) for n in layers], chunks)
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        by_keras = {keras_layer_name(n): n for n in CONV_NAMES}
        for layer in layers:
            g = f.create_group(rename.get(layer, layer))
            if layer not in by_keras:
                _set_string_list(g, "weight_names", [])
                continue
            kernel, bias = params[by_keras[layer]]
            if shapes and by_keras[layer] in shapes:
                kernel = np.zeros(shapes[by_keras[layer]], np.float32)
            saved = rename.get(layer, layer)
            if style == "legacy":
                names = [f"{saved}_W_1:0", f"{saved}_b_1:0"]
            else:
                names = [f"{saved}/kernel:0", f"{saved}/bias:0"]
            _set_string_list(g, "weight_names", names)
            g.create_dataset(names[0], data=kernel)
            g.create_dataset(names[1], data=bias)


# ---------------------------------------------------------------------------
# MatConvNet .mat (as written by its import-caffe.py, read by scipy.io.loadmat)
# ---------------------------------------------------------------------------

def mat_cell(*items):
    """A MATLAB cell array of one row, as savemat writes one: a (1, n) object array."""
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def write_matconvnet(path, params, version="new", mean_rgb=(123.68, 116.779, 103.939)):
    """version "new": struct fields name, type, weights, ... and meta.normalization.averageImage;
    "old": fields weights first, normalization at the top level, a full average image.
    mean_rgb None: no normalization recorded."""
    layers = []
    for name in CONV_NAMES:
        kernel, bias = params[name]
        weights = mat_cell(kernel, bias.reshape(1, -1))  # MatConvNet stores the bias as a row
        if version == "new":
            layers.append({"name": name, "type": "conv", "weights": weights, "size": np.array(kernel.shape, float),
                           "pad": np.ones((1, 4)), "stride": np.ones((1, 2))})
        else:
            layers.append({"weights": weights, "pad": np.ones((1, 4)), "type": "conv", "name": name,
                           "stride": np.ones((1, 2))})
        layers.append({"name": "relu" + name[4:], "type": "relu"})
        if name in ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"):
            layers.append({"name": "pool" + name[4], "type": "pool", "method": "max"})
    cell = mat_cell(*layers)
    mean = None if mean_rgb is None else np.asarray(mean_rgb, np.float32)
    if mean is None:   # a file that records no normalization at all
        data = {"layers": cell}
    elif version == "new":
        data = {"layers": cell, "meta": {"normalization": {"averageImage": mean.reshape(1, 1, 3)}}}
    else:
        data = {"layers": cell, "normalization": {"averageImage": np.tile(mean, (224, 224, 1))}}
    savemat(path, data)


# ---------------------------------------------------------------------------
# torch.save files, written opcode by opcode (no torch needed)
# ---------------------------------------------------------------------------

class Global:
    """A pickle GLOBAL opcode: module.name, looked up by the unpickler's find_class."""
    def __init__(self, module, name):
        self.module, self.name = module, name


class Call:
    """callable(*args) via the REDUCE opcode."""
    def __init__(self, func, args):
        self.func, self.args = func, tuple(args)


class PersId:
    """A persistent id (BINPERSID): how torch refers to a storage from inside the pickle."""
    def __init__(self, pid):
        self.pid = pid


def _emit(obj, out):
    if isinstance(obj, Global):
        out += b"c" + f"{obj.module}\n{obj.name}\n".encode()
    elif isinstance(obj, Call):
        _emit(obj.func, out)
        _emit(obj.args, out)
        out += b"R"
    elif isinstance(obj, PersId):
        _emit(obj.pid, out)
        out += b"Q"
    elif isinstance(obj, dict):  # as torch pickles a state dict: OrderedDict() then SETITEM per key
        _emit(Call(Global("collections", "OrderedDict"), ()), out)
        for k, v in obj.items():
            _emit(k, out)
            _emit(v, out)
            out += b"s"
    elif isinstance(obj, tuple):
        out += b"("
        for item in obj:
            _emit(item, out)
        out += b"t"
    elif obj is None:
        out += b"N"
    elif isinstance(obj, bool):
        out += b"\x88" if obj else b"\x89"
    elif isinstance(obj, int):
        out += b"J" + struct.pack("<i", obj)
    elif isinstance(obj, str):
        raw = obj.encode("utf8")
        out += b"X" + struct.pack("<I", len(raw)) + raw
    else:
        raise TypeError(type(obj))


def dumps(obj):
    """Protocol-2 pickle of obj (built from Global/Call/PersId, dicts, tuples, str, int, bool, None)."""
    out = bytearray(b"\x80\x02")
    _emit(obj, out)
    return bytes(out + b".")


def torch_state_dict(params):
    """torchvision's keys and layout: features.N.weight (C_out, C_in, 3, 3), features.N.bias."""
    state = {}
    for name, i in zip(CONV_NAMES, TORCH_CONV_INDICES):
        kernel, bias = params[name]
        state[f"features.{i}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        state[f"features.{i}.bias"] = np.ascontiguousarray(bias)
    return state


_STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage"}


def _tensor_pickles(state, legacy):
    """(pickled state dict, [(key, raw little-endian bytes, numel)]) with one storage per tensor."""
    tree, storages = {}, []
    for i, (k, arr) in enumerate(state.items()):
        arr = np.ascontiguousarray(arr)
        key = str(i)
        stride = tuple(s // arr.itemsize for s in arr.strides)
        storage_type = Global("torch", _STORAGE_NAMES[arr.dtype])
        if legacy:  # torch < 0.4: 6-item persistent id (with view_metadata), 4-argument _rebuild_tensor
            pid = PersId(("storage", storage_type, key, "cpu", arr.size, None))
            tree[k] = Call(Global("torch._utils", "_rebuild_tensor"), (pid, 0, arr.shape, stride))
        else:
            pid = PersId(("storage", storage_type, key, "cpu", arr.size))
            hooks = Call(Global("collections", "OrderedDict"), ())
            tree[k] = Call(Global("torch._utils", "_rebuild_tensor_v2"), (pid, 0, arr.shape, stride, False, hooks))
        storages.append((key, arr.astype(arr.dtype.newbyteorder("<")).tobytes(), arr.size))
    return dumps(tree), storages


def write_torch_zip(path, state, data_pkl=None, prefix="archive"):
    """torch >= 1.6 zip layout. data_pkl replaces the pickle (for forged files)."""
    pkl, storages = _tensor_pickles(state, legacy=False)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", data_pkl if data_pkl is not None else pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, raw, _ in storages:
            z.writestr(f"{prefix}/data/{key}", raw)
        z.writestr(f"{prefix}/version", "3\n")


def write_torch_legacy(path, state, object_pkl=None):
    """torch < 1.6 layout: magic, protocol, sys info, object, storage keys, then the raw storages."""
    pkl, storages = _tensor_pickles(state, legacy=True)
    sys_info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 8}}
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, sys_info):
            f.write(pickle.dumps(header, protocol=2))
        f.write(object_pkl if object_pkl is not None else pkl)
        f.write(pickle.dumps([key for key, _, _ in storages], protocol=2))
        for _, raw, numel in storages:
            f.write(struct.pack("<q", numel) + raw)


def forged_pickle(module, name, *args):
    """A pickle that calls module.name(*args) when loaded with plain pickle.load."""
    return dumps(Call(Global(module, name), args))
