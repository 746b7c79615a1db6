"""buffers.BufferArena and its planner _pack: the memory every activation and gradient lives in.

What must hold: a buffer in use is never handed out again, not even partly (no aliasing),
whatever the episode does; an episode that repeats the recorded one is served from one
planned arena; a different episode costs memory (fresh arrays), never correctness.
"""
import numpy as np
import pytest

from nst_numpy.fast.buffers import ALIGN_BYTES, BufferArena, _pack


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _intersect(a0, a1, b0, b1):
    """Half-open intervals [a0, a1) and [b0, b1) intersect."""
    return a0 < b1 and b0 < a1


def _overlaps(record, offsets):
    """Pairs (i, j) of recorded buffers alive at the same time whose address ranges intersect."""
    bad = []
    for i, (n, t0, t1) in enumerate(record):
        for j in range(i + 1, len(record)):
            m, s0, s1 = record[j]
            if n and m and _intersect(t0, t1, s0, s1) and _intersect(offsets[i], offsets[i] + n,
                                                                     offsets[j], offsets[j] + m):
                bad.append((i, j))
    return bad


def _random_record(rng, n_buffers, zero_p=0.05):
    """A valid episode: takes and gives interleaved at random, sizes 1..5000 bytes, a fraction
    zero_p of them 0 bytes.

    Returns [(nbytes, taken, given)] with the arena's clock (one tick per take or give);
    a few buffers are never given back (given = inf, as the arena records them).
    """
    events, live, record = 0, [], []
    while len(record) < n_buffers or live:
        if len(record) < n_buffers and (not live or rng.random() < 0.55):
            events += 1
            size = 0 if rng.random() < zero_p else int(rng.integers(1, 5000))
            record.append([size, events, np.inf])
            live.append(len(record) - 1)
        else:
            events += 1
            k = live.pop(int(rng.integers(len(live))))
            record[k][2] = events if rng.random() > 0.05 else np.inf
    return [tuple(r) for r in record]


def _peak_live_bytes(record):
    """max over time of the bytes alive at once: a lower bound for any arena."""
    takes = {t0 for _, t0, _ in record}   # the live total peaks right after some take
    return max((sum(n for n, t0, t1 in record if t0 <= t < t1) for t in takes), default=0)


def _replay(arena, script):
    """Run one episode. script: list of ("take", name, nbytes) / ("give", name).

    Every buffer taken gets a distinct value written into all of it; whenever a buffer is
    taken or given, every buffer still in use must still hold its own value (nothing
    clobbered it). Returns {name: array} of every buffer taken (for memory checks).
    """
    arena.begin()
    live, seen, value = {}, {}, {}
    for step in script:
        if step[0] == "take":
            _, name, n = step
            arr = arena.take((n // 8,), np.float64)
            live[name] = seen[name] = arr
            value[name] = len(value) + 0.5   # distinct per buffer
            arr[...] = value[name]
        else:
            arena.give(live.pop(step[1]))
        for name, arr in live.items():   # every buffer in use still holds its own value
            # exact: these are stored values, never computed; any change means another buffer wrote here
            np.testing.assert_array_equal(arr, value[name], err_msg=f"{name} was clobbered")
    return seen


def _alive_together(script):
    """{(a, b)} of buffer names in use at the same time in a script."""
    live, pairs = set(), set()
    for step in script:
        if step[0] == "take":
            pairs |= {frozenset((step[1], other)) for other in live}
            live.add(step[1])
        else:
            live.discard(step[1])
    return pairs


# a: 640 B and b: 320 B alive together, then c: 640 B replaces a while b lives on.
# Lifetimes a [1, 3), b [2, 5), c [4, 6): a and c may share, b may share with neither.
# Optimum by hand: 640 + 320 = 960 bytes (all multiples of ALIGN_BYTES, so alignment costs nothing).
SIMPLE = [("take", "a", 640), ("take", "b", 320), ("give", "a"), ("take", "c", 640), ("give", "b"), ("give", "c")]
SIMPLE_OPTIMUM = 960


# ---------------------------------------------------------------------------
# BufferArena basics
# ---------------------------------------------------------------------------

def test_winograd_add_may_be_the_output_itself():
    """WinogradConv.conv's promise: `add` may share memory with `out` (it is copied before a band is
    written). Today's callers never pass such an add (FastVGG19._unaliased copies first), so only this
    test holds the promise."""
    from nst_numpy import layers as L
    from nst_numpy.fast import winograd as Wg
    rng = np.random.default_rng(0)
    H, W, c_in, c_out = 8, 12, 4, 5
    x, w = rng.standard_normal((H, W, c_in)), rng.standard_normal((3, 3, c_in, c_out))
    xp = np.zeros((H + 2, W + 2, c_in))
    xp[1:-1, 1:-1] = x
    out = rng.standard_normal((H, W, c_out))
    expected = L.conv_forward(x, w, np.zeros(c_out))[0] + out
    Wg.WinogradConv(1).conv(xp, Wg.transform_kernel(w), out, add=out, mask_from=np.ones((H, W, c_out), bool))
    np.testing.assert_allclose(out, expected, atol=1e-9)


def test_take_give_round_trip():
    """take() gives an array of the shape and dtype asked for, writable; give() takes it (or a view) back."""
    arena = BufferArena()
    arena.begin()
    a = arena.take((3, 5, 7), np.float32)
    b = arena.take((4, 2), bool)
    assert a.shape == (3, 5, 7) and a.dtype == np.float32
    assert b.shape == (4, 2) and b.dtype == bool
    a[...] = 1.5
    b[...] = True
    assert not np.shares_memory(a, b)
    assert arena.owner(a) is not None and arena.owner(a[1:, 2]) == arena.owner(a)   # a view names its buffer
    assert arena.owner(np.zeros(3)) is None
    arena.give(a[1:])   # a view starting inside the buffer gives back the whole buffer
    arena.give(b)
    assert arena.owner(a) is None
    arena.begin()       # nothing in use: a new episode may start


def test_give_of_foreign_array_or_twice_raises():
    """give() of an array the arena did not hand out, or of one already given back, is an error."""
    arena = BufferArena()
    arena.begin()
    a = arena.take((10,), np.float64)
    with pytest.raises(ValueError):
        arena.give(np.zeros(10))
    arena.give(a)
    with pytest.raises(ValueError):
        arena.give(a)


def test_double_give_raises_in_a_replayed_episode_too():
    """Same as above once the episode is served from the arena (a's slot is free, nothing reused it)."""
    arena = BufferArena()
    for _ in range(3):
        arena.begin()
        a = arena.take((10,), np.float64)
        b = arena.take((10,), np.float64)
        arena.give(a)
        with pytest.raises(ValueError):
            arena.give(a)
        arena.give(b)


def test_double_give_raises_after_the_slot_was_reused():
    """In a replayed episode b gets a's slot once a is given back; giving a back a second time
    must still be an error, not hand back b (which is still in use)."""
    arena = BufferArena()
    for _ in range(2):   # record, then plan: b in a's slot
        arena.begin()
        a = arena.take((10,), np.float64)
        arena.give(a)
        b = arena.take((10,), np.float64)
        arena.give(b)
    arena.begin()
    a = arena.take((10,), np.float64)
    arena.give(a)
    b = arena.take((10,), np.float64)
    assert np.shares_memory(a, b)   # the premise: b was replayed into a's slot
    try:
        with pytest.raises(ValueError):
            arena.give(a)
    finally:
        assert arena.owner(b) is not None, "b (in use) was handed back by give(a)"


def test_begin_abandons_buffers_still_in_use():
    """A buffer still in use at begin() (an exception ended its episode) is forgotten: it can no
    longer be given back, and nothing the next episodes hand out aliases it."""
    arena = BufferArena()
    for _ in range(2):          # record, then replay from an arena
        arena.begin()
        arena.give(arena.take((4, 4), np.float32))
    arena.begin()
    a = arena.take((4, 4), np.float32)   # a slice of the arena, never given back
    a[...] = 7.0
    for _ in range(3):
        arena.begin()
        b = arena.take((4, 4), np.float32)
        assert not np.shares_memory(a, b)
        b[...] = -1.0
        arena.give(b)
    np.testing.assert_array_equal(a, 7.0)
    with pytest.raises(ValueError):
        arena.give(a)


def test_clear_forgets_the_plan():
    """clear(): no arena, nothing in use, and the next episode starts from fresh arrays."""
    arena = BufferArena()
    _replay(arena, SIMPLE)
    _replay(arena, SIMPLE)
    assert arena.nbytes == SIMPLE_OPTIMUM
    arena.clear()
    assert arena.nbytes == 0
    seen = _replay(arena, SIMPLE)
    assert not np.shares_memory(seen["a"], seen["c"])   # no plan any more: fresh arrays


# ---------------------------------------------------------------------------
# Planning and replay
# ---------------------------------------------------------------------------

def test_replayed_episode_uses_one_arena_without_aliasing():
    """After one recorded episode, the same episode gets slices of one arena: buffers whose
    lifetimes do not overlap share memory, buffers alive together never do (and no value is
    clobbered: _replay checks every live buffer after every step)."""
    arena = BufferArena()
    first = _replay(arena, SIMPLE)
    assert not any(np.shares_memory(first[x], first[y]) for x in first for y in first if x < y)  # fresh arrays
    for _ in range(3):
        seen = _replay(arena, SIMPLE)
        assert np.shares_memory(seen["a"], seen["c"])   # lifetimes [1, 3) and [4, 6): one slot
        for pair in _alive_together(SIMPLE):
            x, y = sorted(pair)
            assert not np.shares_memory(seen[x], seen[y]), (x, y)
        base = arena._block
        assert all(np.shares_memory(arr, base) for arr in seen.values())   # all from the one arena


def test_nbytes_after_planning_is_the_hand_computed_optimum():
    """nbytes: 0 before any plan (nothing in use), then the arena: no more than the sum of the
    sizes, and for SIMPLE exactly the optimum 960 computed by hand (greedy by size finds it)."""
    arena = BufferArena()
    assert arena.nbytes == 0
    _replay(arena, SIMPLE)
    assert arena.nbytes == 0   # recorded, nothing planned yet, nothing in use
    _replay(arena, SIMPLE)
    total = sum(step[2] for step in SIMPLE if step[0] == "take")
    assert arena.nbytes <= total
    assert arena.nbytes == SIMPLE_OPTIMUM
    _replay(arena, SIMPLE)
    assert arena.nbytes == SIMPLE_OPTIMUM   # the plan was followed: not planned again


def test_nbytes_counts_buffers_in_use_outside_the_arena():
    """Fresh arrays (no plan, or a miss) in use count towards nbytes until given back."""
    arena = BufferArena()
    arena.begin()
    a = arena.take((100,), np.float64)
    assert arena.nbytes == 800
    arena.give(a)
    assert arena.nbytes == 0


def test_keeping_a_buffer_longer_gets_a_fresh_array_then_replans():
    """The recorded episode gives a back before c is taken (c is planned into a's slot). An
    episode that keeps a longer must get a fresh array for c (no aliasing, a's values intact),
    and the episode after that is planned again, so a and c no longer share memory."""
    arena = BufferArena()
    _replay(arena, SIMPLE)
    _replay(arena, SIMPLE)
    longer = [("take", "a", 640), ("take", "b", 320), ("take", "c", 640), ("give", "b"), ("give", "c"),
              ("give", "a")]
    seen = _replay(arena, longer)   # checks a was not clobbered by c
    assert not np.shares_memory(seen["a"], seen["c"])
    assert not np.shares_memory(seen["c"], arena._block)   # c came from outside the arena
    again = _replay(arena, longer)   # re-planned from the episode above
    assert not any(np.shares_memory(again[x], again[y]) for x, y in map(sorted, _alive_together(longer)))
    assert all(np.shares_memory(arr, arena._block) for arr in again.values())   # and served from the new plan
    assert arena.nbytes == 640 + 320 + 640


@pytest.mark.parametrize("script", [
    # c twice as large as recorded: its slot is too small
    [("take", "a", 640), ("take", "b", 320), ("give", "a"), ("take", "c", 1280), ("give", "b"), ("give", "c")],
    # b half as large, c larger than a's slot
    [("take", "a", 640), ("take", "b", 160), ("give", "a"), ("take", "c", 960), ("give", "b"), ("give", "c")],
    # more takes than recorded, the extra one alive with everything
    [("take", "a", 640), ("take", "b", 320), ("give", "a"), ("take", "c", 640), ("take", "d", 640),
     ("give", "b"), ("give", "c"), ("give", "d")],
    # fewer takes than recorded
    [("take", "a", 640), ("take", "b", 320), ("give", "b"), ("give", "a")],
])
def test_other_sizes_or_counts_fall_back_safely(script):
    """An episode with other sizes (or more or fewer buffers) than the recorded one: nothing
    alive at the same time aliases, values stay intact, and the next episode is planned anew."""
    arena = BufferArena()
    _replay(arena, SIMPLE)
    _replay(arena, SIMPLE)
    for _ in range(3):   # the deviating episode, then twice from its own plan
        seen = _replay(arena, script)
        for x, y in map(sorted, _alive_together(script)):
            assert not np.shares_memory(seen[x], seen[y]), (x, y)
    assert all(np.shares_memory(arr, arena._block) for arr in seen.values())


def test_random_episodes_never_alias_live_buffers():
    """Property test: random episodes through one arena, each repeated (served from the arena),
    then perturbed (one buffer kept to the end): memory in use is never handed out again."""
    rng = np.random.default_rng(0)
    arena = BufferArena()
    for trial in range(40):
        record = _random_record(rng, 12, zero_p=0.1)
        # the record as a script (8-byte multiples: float64 arrays)
        script = []
        for t in range(1, 1 + 2 * len(record)):
            for k, (n, t0, t1) in enumerate(record):
                if t0 == t:
                    script.append(("take", f"b{k}", 8 * (n // 8)))
                elif t1 == t:
                    script.append(("give", f"b{k}"))
        script += [("give", f"b{k}") for k, (_, _, t1) in enumerate(record) if t1 == np.inf]
        for rep in range(2 + trial % 2):
            seen = _replay(arena, script)
            for x, y in map(sorted, _alive_together(script)):
                assert seen[x].size == 0 or seen[y].size == 0 or not np.shares_memory(seen[x], seen[y]), (x, y)
        if trial % 2:   # the third repetition follows a plan made from an identical episode
            assert all(a.size == 0 or np.shares_memory(a, arena._block) for a in seen.values())
        # then the same episode keeping one buffer to the end: the plan must not alias it
        takes = [s for s in script if s[0] == "take"]
        kept = takes[int(rng.integers(len(takes)))][1]
        longer = [s for s in script if s != ("give", kept)] + [("give", kept)]
        seen = _replay(arena, longer)
        for x, y in map(sorted, _alive_together(longer)):
            assert seen[x].size == 0 or seen[y].size == 0 or not np.shares_memory(seen[x], seen[y]), (x, y)


def test_zero_size_buffer_does_not_hide_a_live_buffer():
    """A zero-byte take() is planned at the offset of a live buffer (it overlaps nothing), so its
    slice starts at that buffer's address; give() finds buffers by start address and removes
    the other buffer from the arena's set in use. An episode that then keeps a longer than
    recorded must still not get a's memory for b."""
    arena = BufferArena()
    recorded = [("take", "a", 64), ("take", "z", 0), ("give", "z"), ("give", "a"), ("take", "b", 64), ("give", "b")]
    _replay(arena, recorded)
    _replay(arena, recorded)   # from the plan: b in a's slot, z at a's address
    longer = [("take", "a", 64), ("take", "z", 0), ("give", "z"), ("take", "b", 64), ("give", "b"), ("give", "a")]
    seen = _replay(arena, longer)   # fails inside: b is written over a while a is in use
    assert not np.shares_memory(seen["a"], seen["b"])


# ---------------------------------------------------------------------------
# _pack directly
# ---------------------------------------------------------------------------

def test_overlap_checker_catches_a_broken_packer():
    """Negative control: packing every buffer at offset 0 must be caught by _overlaps."""
    rng = np.random.default_rng(1)
    record = _random_record(rng, 10)
    assert _overlaps(record, [0] * len(record))
    assert not _overlaps(record, _pack(record)[0])


def test_pack_property_random_records():
    """For random records: no two buffers alive together overlap in address range, offsets
    are multiples of ALIGN_BYTES, and the arena lies between the peak live bytes and the sum of
    the (aligned) sizes."""
    rng = np.random.default_rng(2)
    for _ in range(300):
        record = _random_record(rng, int(rng.integers(1, 25)))
        offsets, size = _pack(record)
        assert len(offsets) == len(record)
        assert not _overlaps(record, offsets)
        assert all(o % ALIGN_BYTES == 0 and o >= 0 for o in offsets)
        assert all(o + n <= size for o, (n, _, _) in zip(offsets, record))
        assert _peak_live_bytes(record) <= size <= sum(-(-n // ALIGN_BYTES) * ALIGN_BYTES for n, _, _ in record)


def test_pack_simple_patterns():
    """Hand-computed plans: disjoint lifetimes share offset 0; all alive together stack up."""
    offsets, size = _pack([(640, 1, 3), (320, 2, 5), (640, 4, 6)])
    assert size == SIMPLE_OPTIMUM and offsets[0] == offsets[2] == 0 and offsets[1] == 640
    offsets, size = _pack([(100, 1, 2), (200, 3, 4), (50, 5, 6)])
    assert offsets == [0, 0, 0] and size == 200
    offsets, size = _pack([(100, 1, np.inf), (100, 2, np.inf)])   # never given: alive together
    assert sorted(offsets) == [0, 128] and size == 228              # second one aligned up to 128
    assert _pack([]) == ([], 0)
    # A gap one byte too small: the second 65-byte buffer must not take the 64 bytes between the
    # 129-byte buffer (aligned up to 192) and the 256-byte one at 256, both alive with it.
    record = [(65, 0, 2), (65, 2, 6), (256, 0, 2), (256, 0, 4), (129, 2, 3)]
    offsets, size = _pack(record)
    assert not _overlaps(record, offsets) and offsets == [512, 512, 0, 256, 0] and size == 577


def test_replayed_slices_are_aligned():
    """Planned slices start ALIGN_BYTES bytes apart from the arena start (a cache line)."""
    arena = BufferArena()
    script = [("take", "a", 72), ("take", "b", 24), ("take", "c", 8), ("give", "a"), ("give", "b"), ("give", "c")]
    _replay(arena, script)
    seen = _replay(arena, script)
    base = arena._block.ctypes.data
    for arr in seen.values():
        assert (arr.ctypes.data - base) % ALIGN_BYTES == 0


def test_pack_uses_a_gap_of_exactly_the_right_size():
    from nst_numpy.fast.buffers import _pack
    assert _pack([(128, 1, 3), (128, 1, 10), (128, 4, 10)]) == ([0, 128, 0], 256)


def test_a_smaller_request_is_a_miss_and_replans():
    from nst_numpy.fast.buffers import BufferArena
    arena = BufferArena()
    for n in (256, 256, 128):
        arena.begin()
        arena.give(arena.take((n,), np.uint8))
    arena.begin()
    assert arena.nbytes == 128
