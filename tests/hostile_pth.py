"""Builders of hostile .pth files for tests/test_torch_reader_hostile.py: a tiny pickle writer
(Python values -> opcodes, so a test can emit what pickle.dumps never would), zip and legacy
containers, header surgery on zip members, and the two checks every hostile file must pass."""
import pickle as P
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from nst_numpy.torch_reader import LEGACY_MAGIC, LEGACY_PROTOCOL, TorchFormatError, read_state_dict
from nst_numpy.weights import WeightsError, read_weights

# ---------------------------------------------------------------------------
# A tiny pickle writer: Python values -> opcodes; Raw passes opcodes through
# ---------------------------------------------------------------------------


class Raw(bytes):
    """Opcodes already encoded."""


def emit(x):
    if isinstance(x, Raw):
        return bytes(x)
    if x is None:
        return P.NONE
    if isinstance(x, bool):
        return P.NEWTRUE if x else P.NEWFALSE
    if isinstance(x, int):  # LONG1: any size, so geometry can hold 2**70
        b = x.to_bytes(x.bit_length() // 8 + 1, "little", signed=True)
        return P.LONG1 + bytes([len(b)]) + b
    if isinstance(x, float):
        return P.BINFLOAT + struct.pack(">d", x)
    if isinstance(x, str):
        raw = x.encode()
        return P.BINUNICODE + struct.pack("<I", len(raw)) + raw
    if isinstance(x, tuple):
        return P.MARK + b"".join(emit(v) for v in x) + P.TUPLE
    if isinstance(x, dict):  # as torch writes a state dict: OrderedDict() then SETITEM per key
        return emit(call(glob("collections", "OrderedDict"))) + b"".join(emit(k) + emit(v) + P.SETITEM
                                                                         for k, v in x.items())
    raise TypeError(type(x))


def glob(module, name):
    return Raw(P.GLOBAL + f"{module}\n{name}\n".encode())


def call(func, *args):
    return Raw(emit(func) + emit(args) + P.REDUCE)


def storage(key="0", numel=4, stype="FloatStorage"):
    return Raw(emit(("storage", glob("torch", stype), key, "cpu", numel)) + P.BINPERSID)


def tensor(size=(4,), stride=(1,), offset=0, key="0", numel=4, stype="FloatStorage"):
    return call(glob("torch._utils", "_rebuild_tensor_v2"), storage(key, numel, stype), offset, size, stride,
                False, None)


def pkl(obj, proto=2):
    return P.PROTO + bytes([proto]) + emit(obj) + P.STOP


def laughs(levels, memo=0):
    """Pushes a tuple whose repr is 100 * 10**(levels - 1) characters ("billion laughs"); memo slots used."""
    out = emit("a" * 100) + P.BINPUT + bytes([memo]) + P.POP
    for i in range(memo + 1, memo + levels):
        out += P.MARK + (P.BINGET + bytes([i - 1])) * 10 + P.TUPLE + P.BINPUT + bytes([i]) + P.POP
    return Raw(out + P.BINGET + bytes([memo + levels - 1]))


F4 = np.arange(4, dtype="<f4").tobytes()


def write_zip(path, data_pkl, storages=None, byteorder=b"little", compression=zipfile.ZIP_STORED):
    storages = {"0": F4} if storages is None else storages
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", byteorder)
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
    return path


def write_legacy(path, obj_pkl, keys=("0",), storages=((4, F4),), magic_pkl=None, sys_info=None):
    with open(path, "wb") as f:
        f.write(magic_pkl or P.dumps(LEGACY_MAGIC, protocol=2))
        f.write(P.dumps(LEGACY_PROTOCOL, protocol=2))
        f.write(P.dumps(sys_info or {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}, protocol=2))
        f.write(obj_pkl)
        f.write(P.dumps(list(keys), protocol=2))
        for numel, raw in storages:
            f.write(struct.pack("<q", numel) + raw)
    return path


def patch_member(path, name, flags=0, method=None, size=None):
    """Edit a member's local header and central-directory entry: OR flag bits, set the method or the sizes."""
    b = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(name).header_offset
    i = b.find(b"PK\x01\x02")
    while i != -1:
        if b[i + 46:i + 46 + struct.unpack_from("<H", b, i + 28)[0]] == name.encode():
            for flag_at, method_at, size_at in ((i + 8, i + 10, i + 20), (local + 6, local + 8, local + 18)):
                struct.pack_into("<H", b, flag_at, struct.unpack_from("<H", b, flag_at)[0] | flags)
                if method is not None:
                    struct.pack_into("<H", b, method_at, method)
                if size is not None:
                    struct.pack_into("<II", b, size_at, size, size)
        i = b.find(b"PK\x01\x02", i + 4)
    path.write_bytes(bytes(b))
    return path


def assert_refused(path, match=None):
    """The reader raises a one-line TorchFormatError, read_weights a one-line WeightsError."""
    with pytest.raises(TorchFormatError, match=match) as e:
        read_state_dict(path)
    assert "\n" not in str(e.value)
    with pytest.raises(WeightsError) as e:
        read_weights(path)
    assert "\n" not in str(e.value)


def refused_within(path, limit_mb, match=None):
    """A TorchFormatError, and the reader's peak traced memory (Python objects, NumPy arrays) under limit_mb."""
    tracemalloc.start()
    try:
        with pytest.raises(TorchFormatError, match=match):
            read_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit_mb * 2**20, f"the reader peaked at {peak / 2**20:.0f} MB"
