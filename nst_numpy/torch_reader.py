"""Read a PyTorch state dict (``torch.save`` file) without torch and without running its pickle.

A .pth file is a pickle, and unpickling an untrusted pickle can run any code. So this module
never calls ``pickle.load``: it uses an Unpickler whose ``find_class`` knows only the few
globals a state dict of plain tensors needs, maps them to harmless stand-ins defined here,
and refuses every other global (``os.system``, ``builtins.eval``, ...) before it is called.
Nor may a hostile file take memory out of proportion to its size: zip members are inflated
only up to the size their storage needs and at most MAX_INFLATION times their stored bytes,
tensors may hold no more elements than the stored bytes, and error messages quote file data through a bounded repr. tests/test_torch_reader_hostile.py
tries each attack.

Two container formats exist (torch.serialization):
- zip (torch >= 1.6): ``<name>/data.pkl`` (the pickle) and ``<name>/data/<key>`` (one raw
  little-endian storage per key);
- legacy (before 1.6): pickled magic number, protocol version and system info, then the
  pickled object, then a pickled list of storage keys, then for each key an int64 element
  count followed by the raw storage bytes.
In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, backward_hooks[, metadata])`` (or ``_rebuild_tensor(storage, offset,
size, stride)`` before torch 0.4), and a storage is a persistent id
``("storage", storage_type, key, location, numel[, view_metadata])``.

    state = read_state_dict("vgg19-dcbb9e9d.pth")   # {"features.0.weight": ndarray, ...}
"""
import collections
import math
import os
import pickle
import reprlib
import struct
import zipfile
import zlib

import numpy as np

# torch.save stores zip members uncompressed. A file zipped again deflates float weights by ~1.1x,
# and nothing real by more than MAX_INFLATION; zeros deflate ~1000x: that is a bomb, refused unread.
MAX_INFLATION = 4
MAX_PICKLE_BYTES = 16 << 20   # a state dict's pickle holds names and shapes only: a VGG19's is ~3 KB
MAX_PICKLE_OPS = 200_000      # a VGG19's pickle has ~1,000; each opcode may make a ~200-byte object
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# The first bytes of a legacy file: PROTO 2, then LONG1 of 10 bytes holding LEGACY_MAGIC.
LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")

# torch storage class name -> little-endian NumPy dtype of its elements.
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class TorchFormatError(Exception):
    """The file is not a readable state dict; weights.py turns this into a WeightsError."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 40


def _short(x):
    """A bounded repr of file data for messages: repr() of memo-shared tuples can be exponential."""
    try:
        return _REPR.repr(x)
    except Exception:  # e.g. an int too long for str()
        return f"<{type(x).__name__}>"


class _Func:
    """An allow-listed function: callable, but BUILD cannot set its attributes (__defaults__, __dict__)."""
    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def __setstate__(self, state):
        raise TorchFormatError("unexpected BUILD on a function")


class _StorageType:
    """Stand-in for a global such as torch.FloatStorage: only remembers the element dtype."""
    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])

    def __setstate__(self, state):  # a BUILD opcode aimed at a stand-in is not part of a state dict
        raise TorchFormatError("unexpected BUILD on a storage type")


class _StorageRef:
    """What persistent_load returns: which raw storage a tensor reads, and its element dtype."""
    __slots__ = ("dtype", "key", "numel")

    def __init__(self, dtype, key, numel):
        self.dtype, self.key, self.numel = dtype, key, numel

    def __setstate__(self, state):
        raise TorchFormatError("unexpected BUILD on a storage")


class _TensorRef:
    """A tensor to be materialised once the storages are read: storage + offset/size/stride (elements)."""
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _StorageRef):
            raise TorchFormatError("tensor rebuilt from something that is not a storage")
        ints = (offset, *size, *stride)
        if len(size) != len(stride) or not all(isinstance(v, int) and 0 <= v < 1 << 48 for v in ints):
            raise TorchFormatError(f"bad tensor geometry offset={_short(offset)} size={_short(size)} "
                                   f"stride={_short(stride)}")
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __setstate__(self, state):
        raise TorchFormatError("unexpected BUILD on a tensor")


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for torch._utils._rebuild_tensor (torch < 0.4)."""
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2; requires_grad, hooks and metadata do not matter here."""
    return _TensorRef(storage, storage_offset, size, stride)


def _key(k):
    """A dict key from the file: str or int only, since hashing a tuple key can recurse past the C stack
    (a 200,000-deep tuple) or take exponential time (a DAG of memo-shared tuples)."""
    if type(k) not in (str, int):
        raise TorchFormatError(f"dict key of type {type(k).__name__}: a state dict's keys are strings")
    return k


def _ordered_dict(items=()):
    """Stand-in for collections.OrderedDict: OrderedDict() as torch pickles it, or OrderedDict([[k, v], ...])
    as Python 2 did, keys checked first."""
    if not isinstance(items, (list, tuple)) or not all(isinstance(kv, (list, tuple)) and len(kv) == 2 for kv in items):
        raise TorchFormatError("OrderedDict built from something that is not a list of pairs")
    return collections.OrderedDict((_key(k), v) for k, v in items)


# The only globals a state dict of plain tensors needs. Anything else is refused.
_ALLOWED = {
    ("collections", "OrderedDict"): _Func(_ordered_dict),
    ("torch._utils", "_rebuild_tensor"): _Func(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Func(_rebuild_tensor_v2),
}
_ALLOWED.update({("torch", name): _StorageType(name) for name in STORAGE_DTYPES})


def _refuse(what):
    def load(self):
        raise TorchFormatError(f"{what}: a state dict holds none")
    return load


def _set_items(target, items):
    if type(target) not in (dict, collections.OrderedDict):
        raise TorchFormatError(f"corrupt pickle (SETITEM on a {type(target).__name__})")
    for i in range(0, len(items) - 1, 2):
        target[_key(items[i])] = items[i + 1]


def _load_setitem(self):
    value, key = self.stack.pop(), self.stack.pop()
    _set_items(self.stack[-1], [key, value])


def _load_setitems(self):
    items = self.pop_mark()
    _set_items(self.stack[-1], items)


def _load_dict(self):
    items = self.pop_mark()
    self.append({_key(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)})


def _load_build(self):
    """BUILD only sets an OrderedDict's _metadata (as torch does); the stand-ins refuse it themselves."""
    state = self.stack.pop()
    inst = self.stack[-1]
    if isinstance(inst, (_Func, _StorageType, _StorageRef, _TensorRef)):
        inst.__setstate__(state)
    if type(inst) is not collections.OrderedDict or not isinstance(state, dict) or set(state) - {"_metadata"}:
        raise TorchFormatError(f"corrupt pickle (BUILD on a {type(inst).__name__} with state {_short(state)})")
    inst.__dict__.update(state)   # cannot shadow items()/values(): only _metadata gets here


def _counted(load):
    def counted(self):
        self.ops_left -= 1
        if self.ops_left < 0:
            raise TorchFormatError(f"pickle has over {MAX_PICKLE_OPS} opcodes: far more than a state dict needs")
        load(self)
    return counted


_DISPATCH = dict(pickle._Unpickler.dispatch)
_DISPATCH.update({pickle.SETITEM[0]: _load_setitem,
                  pickle.SETITEMS[0]: _load_setitems, pickle.DICT[0]: _load_dict, pickle.BUILD[0]: _load_build})
_DISPATCH.update({op[0]: _refuse("a set in the pickle") for op in (pickle.EMPTY_SET, pickle.ADDITEMS, pickle.FROZENSET)})
# Extension codes name globals through copyreg's process-wide cache, past find_class; torch.save never writes them.
_DISPATCH.update({op[0]: _refuse("a copyreg extension code") for op in (pickle.EXT1, pickle.EXT2, pickle.EXT4)})
_DISPATCH = {op: _counted(load) for op, load in _DISPATCH.items()}


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler for state dicts: allow-listed globals only, storages as _StorageRef, str/int dict keys,
    no sets, BUILD only for _metadata, at most MAX_PICKLE_OPS opcodes. Pure Python (pickle._Unpickler),
    so that these rules are its own dispatch entries: the C unpickler hashes any key it is given."""
    dispatch = _DISPATCH
    ops_left = MAX_PICKLE_OPS

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            if module == "torch" and name.endswith("Storage"):   # a real tensor type, just not one we read
                raise TorchFormatError(f"tensors of type torch.{name} are not supported "
                                       f"(only {', '.join(sorted(STORAGE_DTYPES))})") from None
            raise TorchFormatError(f"refused to load global {module}.{name}: a weight file only needs tensors "
                                   "(this file may try to run code)") from None

    def persistent_load(self, pid):
        # ("storage", storage_type, key, location, numel) in zip files; a 6th item, view_metadata, in legacy ones.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise TorchFormatError(f"unexpected persistent id {_short(pid)}")
        storage_type, key, _location, numel = pid[1:5]
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and isinstance(numel, int)
                and numel >= 0):
            raise TorchFormatError(f"unexpected storage id {_short(pid)}")
        if len(pid) == 6 and pid[5] is not None:  # a view into a shared storage: state dicts never need it
            raise TorchFormatError("storage views (view_metadata) are not supported")
        return _StorageRef(storage_type.dtype, key, numel)


def _unpickle(fileobj):
    try:
        return RestrictedUnpickler(fileobj).load()
    except TorchFormatError:
        raise
    except Exception as e:  # any malformed pickle: EOFError, UnpicklingError, TypeError from bad args, ...
        raise TorchFormatError(f"corrupt pickle ({type(e).__name__}: {e})") from None


def _materialise(obj, storages):
    """Turn {key: _TensorRef} into {key: ndarray}, reading each tensor from its raw storage.
    obj is a dict: both readers passed it through _storage_refs, which refuses anything else."""
    out = {}
    budget = sum(flat.size for flat in storages.values())  # elements copied out, all tensors together
    for key, t in dict.items(obj):
        if not isinstance(t, _TensorRef):
            continue  # e.g. non-tensor metadata; a VGG state dict holds only tensors
        flat = storages[t.storage.key]
        extent = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride)) + 1 if all(t.size) else 0
        if extent > flat.size:
            raise TorchFormatError(f"tensor {_short(key)} reads past the end of its storage")
        budget -= math.prod(t.size)
        if budget < 0:  # zero strides or many tensors over one storage: output out of proportion to the file
            raise TorchFormatError(f"tensor {_short(key)}: the tensors hold more elements than the storages")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[t.offset:], t.size, tuple(s * item for s in t.stride))
        out[key] = np.array(view)  # copy: never keep a view whose strides came from the file
    return out


def _member(z, name, size):
    """Open a member only if it is stored or deflated, unencrypted, inflates to at most size bytes
    (zipfile stops inflating at the declared size) and to at most MAX_INFLATION times its stored bytes:
    memory stays in proportion to the file, whatever sizes the file declares."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise TorchFormatError(f"{_short(name)} is missing from the archive") from None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
        raise TorchFormatError(f"{_short(name)}: encrypted or compressed in a way torch.save never writes")
    if info.file_size > size:
        raise TorchFormatError(f"{_short(name)}: {info.file_size} bytes, expected at most {size}")
    if info.file_size > MAX_INFLATION * info.compress_size + 64:   # + 64: tiny members deflate poorly anyway
        raise TorchFormatError(f"{_short(name)}: {info.compress_size} bytes that inflate to {info.file_size}, "
                               f"a compression ratio torch.save never makes")
    return z.open(info)


def _read_zip(path):
    with zipfile.ZipFile(path) as z:
        pkls = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise TorchFormatError("zip file without exactly one <name>/data.pkl: not a torch.save file")
        prefix = pkls[0][: -len("data.pkl")]
        if prefix + "byteorder" in z.namelist():
            with _member(z, prefix + "byteorder", 16) as f:
                if f.read().strip() != b"little":
                    raise TorchFormatError("big-endian torch files are not supported")
        with _member(z, pkls[0], MAX_PICKLE_BYTES) as f:
            obj = _unpickle(f)
        refs = _storage_refs(obj)
        storages = {}
        for key, ref in refs.items():
            with _member(z, f"{prefix}data/{key}", ref.numel * ref.dtype.itemsize) as f:
                storages[key] = _frombuffer(f.read(), ref, key)
    return _materialise(obj, storages)


def _read_legacy(path):
    with open(path, "rb") as f:
        magic = _unpickle(f)
        protocol = _unpickle(f)
        sys_info = _unpickle(f)
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise TorchFormatError(f"legacy torch header has magic {_short(magic)}, protocol {_short(protocol)}")
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
            raise TorchFormatError("big-endian or unknown legacy torch file")
        obj = _unpickle(f)
        keys = _unpickle(f)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise TorchFormatError("bad storage key list")
        refs = _storage_refs(obj)
        storages = {}
        for key in keys:  # raw storages follow in the order of that list
            head = f.read(8)
            if len(head) != 8:
                raise TorchFormatError("file ends before all storages were read (truncated?)")
            (numel,) = struct.unpack("<q", head)
            if key not in refs:
                raise TorchFormatError(f"storage {_short(key)} is listed but no tensor uses it")
            ref = refs[key]
            if numel != ref.numel:
                raise TorchFormatError(f"storage {_short(key)}: {numel} elements on disk, {ref.numel} expected")
            if numel * ref.dtype.itemsize > os.fstat(f.fileno()).st_size - f.tell():
                raise TorchFormatError(f"storage {_short(key)}: {numel} elements declared, more than the file holds")
            storages[key] = _frombuffer(f.read(numel * ref.dtype.itemsize), ref, key, numel)
    missing = set(refs) - set(storages)
    if missing:
        raise TorchFormatError(f"storages {_short(sorted(missing)[:3])} are missing")
    return _materialise(obj, storages)


def _storage_refs(obj):
    """{storage key: _StorageRef} for every tensor in a state dict."""
    if not isinstance(obj, dict):
        raise TorchFormatError(f"expected a state dict, found a pickled {type(obj).__name__}")
    refs = {}
    for t in dict.values(obj):
        if isinstance(t, _TensorRef):
            first = refs.setdefault(t.storage.key, t.storage)
            if (first.dtype, first.numel) != (t.storage.dtype, t.storage.numel):   # one key, two readings
                raise TorchFormatError(f"storage {_short(t.storage.key)} is declared with two types or sizes")
    return refs


def _frombuffer(raw, ref, key, numel=None):
    """raw bytes -> (numel,) array of ref's dtype (little-endian), numel = ref.numel unless given;
    refused unless the byte count matches exactly."""
    numel = ref.numel if numel is None else numel
    if len(raw) != numel * ref.dtype.itemsize:
        raise TorchFormatError(f"storage {_short(key)} has {len(raw)} bytes, expected {numel * ref.dtype.itemsize} "
                               "(truncated?)")
    return np.frombuffer(raw, ref.dtype)


def read_state_dict(path):
    """Read a torch.save'd state dict (zip or legacy format) -> {key: ndarray}. Raises TorchFormatError."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_PREFIX))
    if head.startswith(b"PK\x03\x04"):
        try:
            return _read_zip(path)
        except (zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError) as e:   # Unicode: a member's name
            raise TorchFormatError(f"corrupt zip archive ({_short(str(e))})") from None
    if head == LEGACY_PREFIX:
        return _read_legacy(path)
    raise TorchFormatError("not a torch.save file (neither a zip archive nor the legacy magic number)")
