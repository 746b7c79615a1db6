"""Pickle structures that attack the unpickler itself rather than the tensors: dict keys whose hashing
recurses or explodes, sets, object floods, and BUILD state that shadows the dict's methods."""
import pickle as P

import numpy as np
import pytest

from hostile_pth import Raw, assert_refused, call, emit, glob, pkl, refused_within, tensor, write_legacy, write_zip
from nst_numpy.torch_reader import read_state_dict
import copyreg

HEAD = P.PROTO + b"\x02"


def with_key(key_opcodes, via="SETITEM"):
    """A state dict {"w": tensor, <key>: None}, the second key set by SETITEM, SETITEMS, DICT or OrderedDict([[k, v]])."""
    pair = key_opcodes + P.NONE
    if via == "SETITEM":
        return HEAD + emit({"w": tensor()}) + pair + P.SETITEM + P.STOP
    if via == "SETITEMS":
        return HEAD + emit({"w": tensor()}) + P.MARK + pair + P.SETITEMS + P.STOP
    if via == "DICT":   # a plain dict as a value (torch's _metadata holds some)
        return HEAD + emit({"w": tensor()}) + emit("m") + P.MARK + pair + P.DICT + P.SETITEM + P.STOP
    items = P.MARK + P.MARK + emit("w") + emit(tensor()) + P.LIST + P.MARK + pair + P.LIST + P.LIST  # Python 2 style
    return HEAD + emit(glob("collections", "OrderedDict")) + items + P.TUPLE1 + P.REDUCE + P.STOP


def dag(levels):
    """A tuple DAG: level i is (level i-1, level i-1) through the memo; hashing it takes 2**levels steps."""
    out = P.EMPTY_TUPLE + P.BINPUT + b"\x00" + P.POP
    for i in range(1, levels):
        out += P.BINGET + bytes([i - 1]) + P.DUP + P.TUPLE2 + P.BINPUT + bytes([i]) + P.POP
    return out + P.BINGET + bytes([levels - 1])


@pytest.mark.parametrize("via", ["SETITEM", "SETITEMS", "DICT", "OrderedDict"])
def test_control_string_and_int_keys_read(tmp_path, via):
    for key in (emit("k"), emit(7)):
        got = read_state_dict(write_zip(tmp_path / "ok.pth", with_key(key, via)))
        assert np.array_equal(got["w"], [0, 1, 2, 3])


@pytest.mark.parametrize("via", ["SETITEM", "SETITEMS", "DICT", "OrderedDict"])
@pytest.mark.parametrize("key", [P.EMPTY_TUPLE + P.TUPLE1 * 10_000, dag(20), emit(1.5), P.EMPTY_TUPLE],
                         ids=["deep-tuple", "tuple-dag", "float", "empty-tuple"])
def test_keys_other_than_str_or_int_are_refused(tmp_path, key, via):
    """A 200,000-deep tuple key crashed the process while being hashed, a 60-level DAG key hashed for
    2**60 steps; any non-str/int key is refused before hashing (shallow versions here, so old code fails
    rather than crashes)."""
    assert_refused(write_zip(tmp_path / "key.pth", with_key(key, via)), match="dict key of type")


@pytest.mark.parametrize("opcodes", [P.EMPTY_SET, P.MARK + emit("a") + P.FROZENSET,
                                     P.EMPTY_LIST + P.EMPTY_SET + P.MARK + emit("a") + P.ADDITEMS + P.APPEND],
                         ids=["EMPTY_SET", "FROZENSET", "ADDITEMS"])
def test_sets_are_refused(tmp_path, opcodes):
    body = b"\x80\x04" + emit({"w": tensor()}) + emit("s") + opcodes + P.SETITEM + P.STOP
    assert_refused(write_zip(tmp_path / "set.pth", body), match="a set in the pickle")


def test_pickle_opcode_flood_is_refused_in_little_memory(tmp_path):
    """A legacy file's pickle has no size cap: 600,000 one-byte EMPTY_DICTs made ~40 MB of dicts; refused
    at MAX_PICKLE_OPS (200,000). Control: a flood under the cap ends in another error."""
    flood = lambda n: write_legacy(tmp_path / "flood.pth", b"\x80\x02(" + P.EMPTY_DICT * n + P.LIST + P.STOP)
    refused_within(flood(600_000), limit_mb=24, match="opcodes")
    refused_within(flood(150_000), limit_mb=24, match="found a pickled list")


def test_build_cannot_shadow_the_dict_methods(tmp_path):
    """BUILD slot state {"values": ...} on the OrderedDict hid its tensors from the storage pass, and the
    reader then failed with a bare KeyError; only {"_metadata": ...} is accepted."""
    slot = P.NONE + P.EMPTY_DICT + emit("values") + emit(call(glob("collections", "OrderedDict"))) + P.SETITEM + P.TUPLE2
    assert_refused(write_zip(tmp_path / "shadow.pth", HEAD + emit({"w": tensor()}) + slot + P.BUILD + P.STOP),
                   match="BUILD on a OrderedDict")
    state = P.EMPTY_DICT + emit("items") + emit(Raw(P.EMPTY_DICT)) + P.SETITEM
    assert_refused(write_zip(tmp_path / "items.pth", HEAD + emit({"w": tensor()}) + state + P.BUILD + P.STOP),
                   match="BUILD on a OrderedDict")
    assert np.array_equal(read_state_dict(write_zip(tmp_path / "ok.pth", pkl({"w": tensor()})))["w"], [0, 1, 2, 3])


@pytest.mark.parametrize("op, arg", [(P.EXT2, (1).to_bytes(2, "little")), (P.EXT4, (1).to_bytes(4, "little"))])
def test_every_extension_code_opcode_is_refused(tmp_path, op, arg):
    """EXT2 and EXT4 as well as EXT1. Registered, EXT4 + REDUCE would call os.getpid past find_class."""
    evil = write_zip(tmp_path / "ext.pth", b"\x80\x02" + op + arg + P.EMPTY_TUPLE + P.REDUCE + P.STOP)
    copyreg.add_extension("os", "getpid", 1)
    try:
        P.loads(b"\x80\x02" + P.EXT1 + b"\x01.")   # copyreg's cache now holds os.getpid
        assert_refused(evil, match="copyreg extension code")
    finally:
        copyreg.remove_extension("os", "getpid", 1)


def test_two_tensors_over_one_storage_may_not_hold_more_than_it(tmp_path):
    """Two (4,) tensors over one 4-element storage would copy out 8 elements."""
    evil = write_zip(tmp_path / "twice.pth", pkl({"a": tensor(), "b": tensor()}))
    assert_refused(evil, match="the tensors hold more elements than the storages")
