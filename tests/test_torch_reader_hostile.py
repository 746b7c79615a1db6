"""Hostile .pth files against the restricted reader (torch_reader.py) and weights.read_weights.

Every file is built here opcode by opcode (pickle's opcode constants) and with zipfile: no torch.
The contract checked: a hostile file never runs code, never leaves the reader with anything but a
one-line TorchFormatError (a WeightsError from read_weights), never takes memory out of proportion
to the file, and never changes the reader for the files read after it.
"""
import pickle as P
import zipfile

import numpy as np
import pytest

from hostile_pth import (F4, Raw, assert_refused, call, emit, glob, laughs, patch_member, pkl, refused_within,
                         storage, tensor, write_legacy, write_zip)
from nst_numpy import torch_reader
from nst_numpy.torch_reader import LEGACY_MAGIC, LEGACY_PREFIX, TorchFormatError, read_state_dict
from nst_numpy.weights import WeightsError, read_weights

# ---------------------------------------------------------------------------
# Controls: hostile_pth's writer makes files the reader accepts
# ---------------------------------------------------------------------------

def test_control_well_formed_zip_and_legacy_files_read(tmp_path):
    """Control: the opcode writer's well-formed files read, so the refusals below are the reader's doing."""
    zipped = read_state_dict(write_zip(tmp_path / "z.pth", pkl({"w": tensor((2, 2), (2, 1))})))
    legacy = read_state_dict(write_legacy(tmp_path / "l.pth", pkl({"w": tensor((2, 2), (1, 2))})))
    assert np.array_equal(zipped["w"], [[0, 1], [2, 3]]) and np.array_equal(legacy["w"], [[0, 2], [1, 3]])


def test_control_build_on_an_ordereddict_instance_is_still_allowed(tmp_path):
    """Control: torch BUILDs a state dict's _metadata onto the OrderedDict; a fix must keep that readable."""
    body = emit({"w": tensor()}) + P.EMPTY_DICT + emit("_metadata") + emit({"": {"version": 1}}) + P.SETITEM
    got = read_state_dict(write_zip(tmp_path / "m.pth", P.PROTO + b"\x02" + body + P.BUILD + P.STOP))
    assert list(got) == ["w"]


# ---------------------------------------------------------------------------
# Code execution: globals outside the allow-list, however they are reached
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"),
    ("builtins", "__import__"), ("subprocess", "Popen"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "frombuffer"), ("torch", "load"), ("torch._utils", "_rebuild_parameter"), ("torch", "Tensor"),
    ("collections", "OrderedDict.fromkeys"), ("torch._utils", "_rebuild_tensor_v2.__globals__"),
    ("__main__", "OrderedDict"), ("copyreg", "_reconstructor")])
def test_global_outside_allow_list_is_refused(tmp_path, module, name):
    """GLOBAL+REDUCE of os.system, eval, getattr, subprocess, numpy internals, dotted paths: refused before the call."""
    sentinel = tmp_path / "pwned"
    path = write_zip(tmp_path / "evil.pth", pkl(call(glob(module, name), f"touch {sentinel}")))
    assert_refused(path, match=f"refused to load global {module}.{name}")
    assert not sentinel.exists()


@pytest.mark.parametrize("opcodes", [
    b"\x80\x04" + P.SHORT_BINUNICODE + b"\x02os" + P.SHORT_BINUNICODE + b"\x06system" + P.STACK_GLOBAL
    + P.SHORT_BINUNICODE + b"\x04true" + P.TUPLE1 + P.REDUCE + P.STOP,           # STACK_GLOBAL (protocol 4)
    b"(S'true'\nios\nsystem\n.",                                                   # INST (protocol 0)
    b"\x80\x02(cos\nsystem\nX\x04\x00\x00\x00trueo.",                              # OBJ
    b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85\x81.",                        # NEWOBJ
    b"\x80\x02cos\nsystem\n}b.",                                                   # BUILD onto a forbidden global
], ids=["STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "BUILD"])
def test_every_opcode_that_loads_a_global_goes_through_the_allow_list(tmp_path, opcodes):
    """STACK_GLOBAL, INST, OBJ, NEWOBJ and BUILD cannot reach os.system around find_class."""
    assert_refused(write_zip(tmp_path / "evil.pth", opcodes), match="refused to load global os.system")


def test_extension_registry_opcode_is_refused(tmp_path):
    """EXT1 (copyreg's extension registry) cannot smuggle a global in: registered or not, and even once
    an ordinary unpickle has put it in copyreg's process-wide cache, which the unpickler reads before
    asking find_class, the opcode is refused."""
    import copyreg
    import pickle
    ext = write_zip(tmp_path / "ext.pth", b"\x80\x02" + P.EXT1 + b"\x01" + P.STOP)
    assert_refused(ext, match="copyreg extension code")
    copyreg.add_extension("os", "getpid", 1)
    try:
        pickle.loads(b"\x80\x02" + P.EXT1 + b"\x01.")   # fills the cache, as any earlier unpickle might
        assert_refused(ext, match="copyreg extension code")
    finally:
        copyreg.remove_extension("os", "getpid", 1)


@pytest.mark.parametrize("opcodes, match", [
    (pkl(call(glob("torch", "FloatStorage"))), "corrupt pickle"),                           # REDUCE on a storage type
    (b"\x80\x02ctorch._utils\n_rebuild_tensor\n)\x81.", "corrupt pickle"),                   # NEWOBJ on a function
    (b"\x80\x02(ctorch._utils\n_rebuild_tensor\nK\x01K\x02K\x03K\x04o.", "not a storage"),  # OBJ, non-storage args
    (b"\x80\x02ctorch\nFloatStorage\n}b.", "BUILD on a storage type"),                      # BUILD on a storage type
    (P.PROTO + b"\x02" + emit(tensor()) + P.EMPTY_DICT + P.BUILD + P.STOP, "BUILD on a tensor"),
    (P.PROTO + b"\x02" + emit(storage()) + P.EMPTY_DICT + P.BUILD + P.STOP, "BUILD on a storage"),
    (b"\x80\x02ccollections\nOrderedDict\nN}X\x01\x00\x00\x00xK\x01s\x86b.", "BUILD on a function"),  # on the class
], ids=["REDUCE-storage-type", "NEWOBJ-function", "OBJ-function", "BUILD-storage-type", "BUILD-tensor",
        "BUILD-storage", "BUILD-OrderedDict-class"])
def test_allowed_globals_cannot_be_misused(tmp_path, opcodes, match):
    """REDUCE/NEWOBJ/OBJ/BUILD aimed at the allow-listed stand-ins fail cleanly."""
    assert_refused(write_zip(tmp_path / "misuse.pth", opcodes), match=match)


@pytest.mark.parametrize("func", ["_rebuild_tensor_v2", "_rebuild_tensor"])
@pytest.mark.parametrize("state", ["slotstate", "dict"])
def test_build_cannot_modify_the_allowed_functions(tmp_path, func, state):
    """BUILD onto an allow-listed function must not rewrite it (__defaults__, __dict__) for the rest of the process."""
    f = getattr(torch_reader, func)
    saved = (f.__defaults__, dict(f.__dict__), f.__name__)
    attrs = (P.EMPTY_DICT + emit("__defaults__") + emit((1, 2, 3)) + P.SETITEM
             + emit("__name__") + emit("pwn") + P.SETITEM)
    build_state = P.NONE + attrs + P.TUPLE2 if state == "slotstate" else attrs
    opcodes = P.PROTO + b"\x02" + emit(glob("torch._utils", func)) + build_state + P.BUILD + P.POP + emit({}) + P.STOP
    try:
        with pytest.raises(TorchFormatError):
            read_state_dict(write_zip(tmp_path / "build.pth", opcodes))
        assert (f.__defaults__, dict(f.__dict__), f.__name__) == saved
    finally:
        f.__defaults__, f.__name__ = saved[0], saved[2]
        f.__dict__.clear()
        f.__dict__.update(saved[1])


def test_build_cannot_rebind_an_allowed_function(tmp_path, monkeypatch):
    """BUILD with slot state {"fn": ...} onto the allow-listed _rebuild_tensor_v2 would swap the function
    it calls for every file read after it: refused, and the next file reads as before."""
    stand_in = torch_reader._ALLOWED[("torch._utils", "_rebuild_tensor_v2")]
    monkeypatch.setattr(stand_in, "fn", stand_in.fn)   # put back after the test, should the BUILD get through
    state = P.NONE + P.EMPTY_DICT + emit("fn") + emit(glob("collections", "OrderedDict")) + P.SETITEM + P.TUPLE2
    opcodes = (P.PROTO + b"\x02" + emit(glob("torch._utils", "_rebuild_tensor_v2")) + state + P.BUILD + P.POP
               + emit({}) + P.STOP)
    assert_refused(write_zip(tmp_path / "rebind.pth", opcodes), match="unexpected BUILD on a function")
    got = read_state_dict(write_zip(tmp_path / "next.pth", pkl({"w": tensor()})))
    assert np.array_equal(got["w"], [0, 1, 2, 3])


# ---------------------------------------------------------------------------
# Tensor geometry, storage ids and dtypes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("size, stride, offset", [((2, 2), (1000, 1), 0), ((4,), (1,), 1), ((5,), (1,), 0),
                                                  ((3, 3), (1, 1), 0), ((1,), (1,), 4)],
                         ids=["stride", "offset", "size", "overlap", "offset-at-end"])
def test_geometry_outside_the_storage_is_refused(tmp_path, size, stride, offset):
    """offset/size/stride that would read past the stored bytes are refused (no foreign memory read)."""
    assert_refused(write_zip(tmp_path / "g.pth", pkl({"w": tensor(size, stride, offset)})), match="past the end")


@pytest.mark.parametrize("size, stride, offset", [((-1,), (1,), 0), ((4,), (-1,), 0), ((4,), (1,), -1),
                                                  ((4.0,), (1,), 0), (("4",), (1,), 0), ((4,), (1, 1), 0),
                                                  ((4,), (1.0,), 0), ((4,), (1,), None)],
                         ids=["neg-size", "neg-stride", "neg-offset", "float-size", "str-size", "rank-mismatch",
                              "float-stride", "none-offset"])
def test_negative_or_non_integer_geometry_is_refused(tmp_path, size, stride, offset):
    """A negative, non-integer or mismatched shape/stride/offset is refused."""
    assert_refused(write_zip(tmp_path / "g.pth", pkl({"w": tensor(size, stride, offset)})), match="geometry")


def test_non_iterable_shape_is_refused(tmp_path):
    """A shape that is an int rather than a tuple is a corrupt pickle, not a TypeError."""
    assert_refused(write_zip(tmp_path / "g.pth", pkl({"w": tensor(4, 1)})), match="corrupt pickle")


@pytest.mark.parametrize("size, stride", [((1,), (2**70,)), ((0, 2**70), (1, 1)), ((2**70,), (0,)),
                                          ((1, 1), (2**62, 1))],
                         ids=["stride-2**70", "empty-with-2**70-axis", "zero-stride-2**70", "stride-2**62"])
def test_huge_geometry_integers_are_a_format_error(tmp_path, size, stride):
    """Geometry ints beyond int64 (allowed where they are never multiplied out) must not escape as OverflowError."""
    assert_refused(write_zip(tmp_path / "g.pth", pkl({"w": tensor(size, stride)})))


def test_zero_stride_tensor_cannot_outgrow_its_storage(tmp_path):
    """A (2048, 2048) tensor with strides (0, 0) over a 4-element storage: 16 MB out of 16 bytes (memory exhaustion)."""
    path = write_zip(tmp_path / "bcast.pth", pkl({"w": tensor((2048, 2048), (0, 0))}))
    with pytest.raises(TorchFormatError):
        read_state_dict(path)


def test_one_storage_shared_by_many_tensors_is_not_amplified(tmp_path):
    """4096 tensors all viewing one 16 KB storage: 64 MB of copies out of a ~100 KB file (memory exhaustion)."""
    n = 4096
    body = P.PROTO + b"\x02" + emit(call(glob("collections", "OrderedDict")))
    body += emit(glob("torch._utils", "_rebuild_tensor_v2")) + P.BINPUT + b"\x01" + P.POP
    body += emit(storage(numel=n)) + P.BINPUT + b"\x02" + P.POP
    for i in range(n):
        body += (emit(f"k{i}") + P.BINGET + b"\x01" + P.MARK + P.BINGET + b"\x02" + emit(0) + emit((n,)) + emit((1,))
                 + P.NEWFALSE + P.NONE + P.TUPLE + P.REDUCE + P.SETITEM)
    path = write_zip(tmp_path / "amp.pth", body + P.STOP, {"0": bytes(4 * n)})
    with pytest.raises(TorchFormatError):
        read_state_dict(path)


@pytest.mark.parametrize("stype", ["BFloat16Storage", "ComplexFloatStorage", "QInt8Storage", "UntypedStorage",
                                   "floatstorage"])
def test_storage_dtype_outside_the_list_is_refused(tmp_path, stype):
    """A storage class that is not in STORAGE_DTYPES is refused at find_class, named as an unsupported type."""
    path = write_zip(tmp_path / "d.pth", pkl({"w": tensor(stype=stype)}))
    known_kind = stype.endswith("Storage")   # a real torch type we do not read, or not a torch type at all
    assert_refused(path, match=f"torch.{stype} are not supported .only BoolStorage, ByteStorage" if known_kind
                   else f"refused to load global torch.{stype}")


def test_one_storage_key_with_two_types_or_sizes_is_refused(tmp_path):
    """Two tensors may share a storage (tied weights) but not read it as two dtypes or two lengths."""
    for other in (tensor(key="0", numel=4, stype="IntStorage"), tensor((2,), key="0", numel=2)):
        path = write_zip(tmp_path / "d.pth", pkl({"a": tensor(), "b": other}))
        assert_refused(path, match="declared with two types or sizes")
    shared = read_state_dict(write_zip(tmp_path / "ok.pth", pkl({"a": tensor((2,)), "b": tensor((2,), offset=2)})))
    assert np.array_equal(shared["b"], [2, 3])   # the same key read consistently is fine


@pytest.mark.parametrize("pid, match", [
    ("storage", "persistent id"), (("storage", glob("torch", "FloatStorage"), "0", "cpu"), "persistent id"),
    (("module", glob("torch", "FloatStorage"), "0", "cpu", 4), "persistent id"),
    (("storage", "FloatStorage", "0", "cpu", 4), "storage id"),
    (("storage", glob("torch", "FloatStorage"), 0, "cpu", 4), "storage id"),
    (("storage", glob("torch", "FloatStorage"), "0", "cpu", 4.0), "storage id"),
    (("storage", glob("torch", "FloatStorage"), "0", "cpu", 4, ("1", 0, 4)), "view_metadata")],
    ids=["not-a-tuple", "short", "wrong-tag", "dtype-as-string", "int-key", "float-numel", "view-metadata"])
def test_malformed_persistent_ids_are_refused(tmp_path, pid, match):
    """persistent_load accepts only ("storage", <allowed storage type>, str key, location, int numel)."""
    t = call(glob("torch._utils", "_rebuild_tensor_v2"), Raw(emit(pid) + P.BINPERSID), 0, (4,), (1,), False, None)
    assert_refused(write_zip(tmp_path / "p.pth", pkl({"w": t})), match=match)


def test_persistent_id_pointing_to_a_missing_member_is_refused(tmp_path):
    """A storage key with no archive member is refused."""
    assert_refused(write_zip(tmp_path / "m.pth", pkl({"w": tensor(key="7")})), match="missing from the archive")


@pytest.mark.parametrize("raw", [F4[:12], F4 + F4], ids=["short", "long"])
def test_storage_length_must_match_numel(tmp_path, raw):
    """A storage member shorter or longer than numel * itemsize is refused."""
    assert_refused(write_zip(tmp_path / "n.pth", pkl({"w": tensor()}), {"0": raw}), match="bytes, expected")


# ---------------------------------------------------------------------------
# Repr bombs and recursion: error messages must not expand attacker data
# ---------------------------------------------------------------------------

def _laughs_in(where):
    bomb = laughs(6, memo=10)  # repr: 10 MB
    if where == "persistent-id":
        return P.PROTO + b"\x02" + bomb + P.BINPERSID + P.STOP
    if where == "geometry":
        t = call(glob("torch._utils", "_rebuild_tensor_v2"), storage(), 0, Raw(P.MARK + bomb + P.TUPLE), (1,))
        return pkl({"w": t})
    if where == "state-dict-key":
        return (P.PROTO + b"\x02" + emit(call(glob("collections", "OrderedDict"))) + bomb
                + emit(tensor((5,))) + P.SETITEM + P.STOP)
    raise ValueError(where)


@pytest.mark.parametrize("where", ["persistent-id", "geometry", "state-dict-key"])
def test_repr_bomb_in_zip_pickle_is_not_expanded(tmp_path, where):
    """A 'billion laughs' tuple (tiny pickle, 10 MB repr) in a persistent id, a shape or a key is not repr'd in full."""
    refused_within(write_zip(tmp_path / "laughs.pth", _laughs_in(where)), limit_mb=4)


def test_repr_bomb_in_legacy_header_is_not_expanded(tmp_path):
    """The legacy magic pickle may continue past the magic number: a repr bomb there is not repr'd in full."""
    magic = LEGACY_PREFIX + P.POP + bytes(laughs(6)) + P.STOP
    refused_within(write_legacy(tmp_path / "laughs.pth", pkl({}), magic_pkl=magic), limit_mb=4)


def test_deeply_nested_legacy_header_is_a_format_error(tmp_path):
    """A 100000-deep list as the legacy 'magic' must not escape as RecursionError from the error message."""
    magic = LEGACY_PREFIX + P.POP + P.EMPTY_LIST * 100000 + P.APPEND * 99999 + P.STOP
    assert_refused(write_legacy(tmp_path / "deep.pth", pkl({}), magic_pkl=magic))


def test_self_referencing_and_deeply_nested_pickles(tmp_path):
    """A state dict containing itself reads (it holds no tensor); a 90000-deep list (under MAX_PICKLE_OPS)
    is refused without a crash."""
    body = P.PROTO + b"\x02" + emit(call(glob("collections", "OrderedDict"))) + P.BINPUT + b"\x00"
    body += emit("self") + P.BINGET + b"\x00" + P.SETITEM + emit("w") + emit(tensor()) + P.SETITEM + P.STOP
    got = read_state_dict(write_zip(tmp_path / "self.pth", body))
    assert list(got) == ["w"]
    deep = b"\x80\x02" + P.EMPTY_LIST * 90000 + P.APPEND * 89999 + P.STOP
    assert_refused(write_zip(tmp_path / "deep.pth", deep), match="found a pickled list")


# ---------------------------------------------------------------------------
# The zip container
# ---------------------------------------------------------------------------

def test_dotdot_and_absolute_storage_keys_never_leave_the_archive(tmp_path):
    """Storage keys like ../../x or /abs/x are looked up inside the archive only: nothing on disk is read or written."""
    secret = tmp_path / "secret"
    secret.write_bytes(F4)
    for key in ["../../../../../../" + str(secret).lstrip("/"), str(secret), "../secret"]:
        path = write_zip(tmp_path / "dd.pth", pkl({"w": tensor(key=key)}))
        assert_refused(path, match="missing from the archive")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dd.pth", "secret"]


@pytest.mark.parametrize("prefix", ["..", "", "/abs"])
def test_dotdot_and_absolute_member_names_are_only_names(tmp_path, prefix):
    """Members named ../data.pkl or /data.pkl are read as names (no extraction), so no file appears anywhere."""
    path = tmp_path / "names.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", pkl({"w": tensor()}))
        z.writestr(f"{prefix}/data/0", F4)
    if prefix == "/abs":  # two slashes: not a <name>/data.pkl layout
        assert_refused(path, match="exactly one")
    else:
        assert list(read_state_dict(path)) == ["w"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.pth"]


def test_two_pickles_and_big_endian_are_refused(tmp_path):
    """An archive with two <name>/data.pkl, or a big-endian byteorder, is refused."""
    path = write_zip(tmp_path / "two.pth", pkl({"w": tensor()}), {"0": F4})
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("other/data.pkl", pkl({}))
    assert_refused(path, match="exactly one")
    assert_refused(write_zip(tmp_path / "be.pth", pkl({"w": tensor()}), byteorder=b"big"), match="big-endian")


def _bomb(path, member, size=32 << 20):
    """A torch-like archive where `member` inflates to `size` bytes (a ~32 KB deflate stream) that a
    reader inflating it would keep: data.pkl starts a BINBYTES8 of them (a valid pickle, read whole
    before it fails), and the storage is declared with as many elements (numel = size / 4)."""
    numel = size // 4
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in (("archive/data.pkl", pkl({"w": tensor(size=(numel,), numel=numel)})),
                           ("archive/byteorder", b"little"), ("archive/data/0", F4)):
            if name != member:
                z.writestr(name, data)
                continue
            with z.open(name, "w") as w:
                if name.endswith("data.pkl"):   # PROTO 4, BINBYTES8 of size - 10 bytes: the rest
                    w.write(b"\x80\x04\x8e" + (size - 11).to_bytes(8, "little"))
                    size -= 11
                w.write(bytes(size % (1 << 20)))
                for _ in range(size >> 20):
                    w.write(bytes(1 << 20))
    return path


@pytest.mark.parametrize("member", ["archive/data/0", "archive/data.pkl", "archive/byteorder"],
                         ids=["storage", "data.pkl", "byteorder"])
def test_zip_bomb_member_is_not_inflated(tmp_path, member):
    """A deflate bomb (32 KB -> 32 MB, GBs with ZIP64) in any member: the reader must not inflate it into memory."""
    refused_within(_bomb(tmp_path / "bomb.pth", member), limit_mb=8)


@pytest.mark.parametrize("damage", ["encrypted", "deflate64", "corrupt-deflate", "corrupt-lzma", "truncated-member"])
def test_damaged_zip_members_are_a_format_error(tmp_path, damage):
    """Encrypted, unsupported-method, corrupt or overlong members: TorchFormatError, not RuntimeError/zlib/EOFError."""
    comp = {"corrupt-deflate": zipfile.ZIP_DEFLATED, "corrupt-lzma": zipfile.ZIP_LZMA}.get(damage, zipfile.ZIP_STORED)
    path = write_zip(tmp_path / "dmg.pth", pkl({"w": tensor(numel=1000)}), {"0": bytes(4000)}, compression=comp)
    if damage == "encrypted":
        patch_member(path, "archive/data.pkl", flags=0x1)
    elif damage == "deflate64":
        patch_member(path, "archive/data/0", method=9)
    elif damage == "truncated-member":
        patch_member(path, "archive/data/0", size=10**6)
    else:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("archive/data/0")
        b = bytearray(path.read_bytes())
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        fill = b"\xff" if damage == "corrupt-deflate" else b"\x00"  # bad block type / bad LZMA properties
        b[start:start + info.compress_size] = fill * info.compress_size
        path.write_bytes(bytes(b))
    assert_refused(path)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04", b"PK\x03\x04 not a zip", LEGACY_PREFIX, LEGACY_PREFIX + b"."],
                         ids=["empty", "pk-magic-only", "junk-zip", "legacy-prefix-only", "legacy-magic-only"])
def test_empty_and_stub_files_are_refused(tmp_path, data):
    """An empty file, a bare zip magic, junk after PK, or a legacy file that stops after the magic."""
    (tmp_path / "stub.pth").write_bytes(data)
    with pytest.raises(TorchFormatError):
        read_state_dict(tmp_path / "stub.pth")
    with pytest.raises(WeightsError):
        read_weights(tmp_path / "stub.pth")


def test_truncated_zip_is_refused(tmp_path):
    """A zip archive cut anywhere (central directory gone, or mid-member) is a format error."""
    data = write_zip(tmp_path / "full.pth", pkl({"w": tensor()})).read_bytes()
    for cut in (len(data) - 1, len(data) - 30, len(data) // 2, 40):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        assert_refused(tmp_path / "cut.pth")


# ---------------------------------------------------------------------------
# The legacy (pre-1.6, non-zip) container
# ---------------------------------------------------------------------------

def test_legacy_header_and_storage_list_are_checked(tmp_path):
    """Wrong protocol, big-endian sys_info, a non-str key list, an unused key, a missing or short storage."""
    obj = pkl({"w": tensor()})
    cases = [
        (dict(magic_pkl=P.dumps(LEGACY_MAGIC, 2)[:-1] + P.POP + emit(7) + P.STOP), "magic 7"),
        (dict(sys_info={"little_endian": False}), "big-endian"),
        (dict(keys=[0]), "bad storage key list"),
        (dict(keys=["0", "9"], storages=((4, F4), (4, F4))), "listed but no tensor uses it"),
        (dict(keys=[], storages=()), "missing"),
        (dict(storages=()), "file ends before all storages were read"),   # no storage after the key list
        (dict(storages=((4, F4[:8]),)), "storage .0."),  # file ends inside the storage
        (dict(storages=((3, F4[:12]),)), "3 elements on disk, 4 expected"),
    ]
    for kwargs, match in cases:
        assert_refused(write_legacy(tmp_path / "l.pth", obj, **kwargs), match=match)
    assert_refused(write_legacy(tmp_path / "tuple.pth", pkl((tensor(),))),
                   match="expected a state dict, found a pickled tuple")


@pytest.mark.parametrize("numel", [-1, 2**40, 2**61], ids=["negative", "2**40", "2**61"])
def test_legacy_declared_storage_size_is_checked_before_reading(tmp_path, numel):
    """A legacy storage declaring -1, 2**40 or 2**61 elements: TorchFormatError, not Value/Memory/OverflowError."""
    path = write_legacy(tmp_path / "big.pth", pkl({"w": tensor((1,), (1,), numel=numel)}), storages=((numel, F4),))
    assert_refused(path)


def test_a_member_name_that_is_not_utf8_is_a_format_error(tmp_path):
    """A name flagged UTF-8 (bit 11) whose bytes are not: zipfile raises UnicodeDecodeError, we a format error."""
    path = tmp_path / "names.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl({"w": tensor()}))
        z.writestr("archive/data/0", F4)
        z.writestr("archive/xx", b"")
    patch_member(path, "archive/xx", flags=0x800)
    assert read_state_dict(path)["w"].shape == (4,)   # the control: a valid name reads
    path.write_bytes(path.read_bytes().replace(b"archive/xx", b"archive/\xff\xfe"))
    assert_refused(path, match="corrupt zip archive")


def test_messages_quote_file_data_briefly(tmp_path):
    """A 100 000-character storage key that no tensor uses: the message quotes it in a bounded repr."""
    key = "k" * 100_000
    path = write_legacy(tmp_path / "longkey.pth", pkl({"w": tensor()}), keys=("0", key), storages=((4, F4), (1, F4[:4])))
    with pytest.raises(TorchFormatError, match="is listed but no tensor uses it") as e:
        read_state_dict(path)
    assert len(str(e.value)) < 200
