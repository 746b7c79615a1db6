"""Read the conv weights of a MatConvNet network (imagenet-vgg-verydeep-19.mat) with scipy.io.loadmat.

    params, prep = read_matconvnet(path, shapes)   # raises MatFormatError; weights.py makes it a WeightsError

Only the variables a network needs are decompressed: loadmat inflates every variable it is asked
for, and a 0.5 MB file can hold a variable of gigabytes.
"""
import reprlib

import numpy as np

from .console import one_line
from .vgg_spec import MATCONVNET, Preprocessing

VARIABLES = ["layers", "meta", "normalization"]   # newer files keep normalization in meta, older ones at top level

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother = 40, 40


class MatFormatError(Exception):
    """The file is not a readable MatConvNet network (the message is one line)."""


def _short(x):
    return one_line(_REPR.repr(x))   # a numeric matrix's repr spans lines


def read_matconvnet(path, shapes):
    """-> ({conv name: (kernel (H, W, C_in, C_out), bias (C_out,))} for the names in shapes, Preprocessing)."""
    from scipy.io import loadmat  # imported here: loading scipy.io costs time the other formats do not need
    from scipy.io.matlab import MatReadError
    try:   # variable_names: the others are skipped unread (whosmat inflates them all)
        data = loadmat(str(path), squeeze_me=True, struct_as_record=False, variable_names=VARIABLES,
                       verify_compressed_data_integrity=False)   # True inflates every variable to check it
    except MatReadError as e:   # an Exception of scipy's own, not among read_weights' (OSError, ValueError, ...)
        raise MatFormatError(f"cannot read this matconvnet file ({one_line(e)})") from None
    if "layers" not in data:
        raise MatFormatError("a .mat file without a 'layers' variable: not a MatConvNet network")
    convs = []  # (name, kernel, bias) in network order
    for layer in np.atleast_1d(data["layers"]):
        fields = getattr(layer, "_fieldnames", None)
        if fields is None:
            raise MatFormatError("'layers' does not hold MatConvNet layer structs")
        if getattr(layer, "type", "conv") != "conv":
            continue
        # Both known versions name the fields (by name, whatever their position): read them by name.
        if "weights" not in fields or "name" not in fields:
            raise MatFormatError(f"conv layer struct with fields {fields}: expected 'name' and 'weights'")
        if not isinstance(layer.name, str):
            raise MatFormatError(f"conv layer name {_short(layer.name)} is not a string")
        pair = layer.weights   # a cell: an object array, unless squeeze_me unwrapped a cell of one
        pair = pair if isinstance(pair, np.ndarray) and pair.dtype == object else [pair]
        if len(pair) != 2:
            raise MatFormatError(f"conv layer {layer.name} has {len(pair)} weight arrays, expected 2")
        kernel, bias = pair
        # MatConvNet's kernel is (H, W, C_in, C_out): its Caffe importer transposes Caffe's (O, I, H, W)
        # fully and then swaps the first two axes back, so no spatial transpose is needed here.
        convs.append((layer.name, np.asarray(kernel), np.asarray(bias).reshape(-1)))
    params = {n: (k, b) for n, k, b in convs if n in shapes}
    missing = [n for n in shapes if n not in params]
    if missing:
        raise MatFormatError(f"missing layer(s) {', '.join(missing)} in this MatConvNet file")
    return params, _preprocessing(data)


def _preprocessing(data):
    """The mean pixel from meta.normalization (newer file) or normalization (older), in RGB."""
    norm = getattr(data["meta"], "normalization", None) if "meta" in data else data.get("normalization")
    average = getattr(norm, "averageImage", None)
    if average is None or np.size(average) < 3:
        return MATCONVNET  # not recorded: the published VGG mean, which MATCONVNET holds
    mean = np.asarray(average, np.float64).reshape(-1, 3).mean(axis=0)  # an average image or one pixel
    if not np.all((mean > 0) & (mean < 255)):
        raise MatFormatError(f"implausible mean pixel {mean} in normalization.averageImage")
    return Preprocessing("RGB", 1.0, tuple(round(float(m), 4) for m in mean), (1.0, 1.0, 1.0))  # float32 noise off
