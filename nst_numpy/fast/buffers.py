"""Reusable memory for the network's activations, masks and gradients.

Why not one array per layer: the forward and backward passes need a different
set of large arrays at each step (at 1024 px, each of block 1's activations is
269 MB) but only a few of them at the same time, so one array per layer costs
about twice the memory that is ever in use at once.

Why not fresh arrays on every call: a freshly allocated array is page-faulted in
by the kernel the first time it is written, which costs about 10x as much as
rewriting memory that is already mapped (measured: 207 ms against 20 ms for
269 MB). Every L-BFGS evaluation would pay that for every buffer.

So the arena plans. An *episode* (begin() to the next begin(): one forward pass
and the backward pass after it) asks for buffers in the same order, with the
same sizes and the same lifetimes, every time. The first time, each take() gets
a fresh array and the arena records when it was taken and given back. At the next
begin(), the recorded buffers are packed into one flat arena, largest first,
each at the lowest offset where it overlaps no buffer alive at the same time
("greedy by size", the planner TensorFlow Lite uses for the same problem). From
then on the k-th take() of an episode returns its planned slice of the arena.

Why replaying is safe: before handing out a planned slice, take() checks that no
buffer still in use overlaps it in memory. If the episode differs from the
recorded one (another size, a buffer kept longer), that check or the size check
fails, the request gets a fresh array instead, and the episode is recorded and
planned again. So a wrong plan costs memory, never correctness.
"""
import numpy as np

ALIGN_BYTES = 64   # byte alignment of planned slices (a cache line)


def _pack(record):
    """Offsets for recorded buffers [(nbytes, taken, given)]: greedy by size, lowest free offset.

    Two buffers may share memory only if their lifetimes [taken, given) do not intersect.
    Returns (offsets in record order, arena bytes).
    """
    order = sorted(range(len(record)), key=lambda i: -record[i][0])
    offsets = [None] * len(record)
    placed = []   # (offset, end, taken, given)
    for i in order:
        n, t0, t1 = record[i]
        busy = sorted((o, e) for o, e, s0, s1 in placed if s0 < t1 and t0 < s1)   # alive at the same time
        at = 0
        for o, e in busy:
            if at + n <= o:
                break          # the gap before this buffer is large enough
            at = max(at, -(-e // ALIGN_BYTES) * ALIGN_BYTES)
        offsets[i] = at
        placed.append((at, at + n, t0, t1))
    return offsets, max((e for _, e, _, _ in placed), default=0)


class BufferArena:
    """Arrays of any shape and dtype, from a planned arena once an episode has been seen.

        arena.begin()                           # each forward pass starts an episode
        a = arena.take((H, W, C), np.float32)   # contents undefined: whatever the last user left
        ...
        arena.give(a)                           # a (and every view of it) must not be used after this
    """

    def __init__(self):
        self.clear()

    def clear(self):
        """Forget the plan, the arena and the record (their memory goes once no array refers to them)."""
        self._block = None     # flat uint8 array the plan's offsets point into
        self._plan = []        # [(offset, nbytes)] by request index within an episode
        self._record = []      # this episode: [nbytes, taken, given] by request index
        self._live = {}        # id(base array) -> (start address, nbytes, base array, request index), in use
        self._clock = 0        # counts take() and give() events within the episode
        self._missed = False   # True when this episode did not follow the plan

    def begin(self):
        """Start an episode. Plans from the last episode if that one did not follow the current plan.

        Buffers still in use here were abandoned (an exception ended the last episode): they
        are forgotten, and so is the arena they may point into, so nothing new can alias them.
        """
        if self._live:
            self._live, self._block, self._missed = {}, None, True
        # An episode that followed the plan and stopped early (a forward pass with no backward,
        # as tiling.py's first pass makes) keeps the longer plan: its takes were the plan's prefix.
        # (A take beyond the plan's end is a miss too, in take.)
        if self._record and self._missed:
            offsets, size = _pack(self._record)
            self._plan = [(o, r[0]) for o, r in zip(offsets, self._record)]
            self._block = None                      # free the old arena before making the new one
            self._block = np.empty(max(size, 1), np.uint8)
        self._record, self._clock, self._missed = [], 0, False

    def take(self, shape, dtype):
        """An uninitialised array of this shape and dtype."""
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        k = len(self._record)
        self._clock += 1
        self._record.append([n, self._clock, np.inf])
        raw = None
        if k < len(self._plan) and self._plan[k][1] == n and self._block is not None:
            at = self._plan[k][0]
            start = self._block.ctypes.data + at
            if all(s + m <= start or start + n <= s for s, m, _, _ in self._live.values()):
                # frombuffer gives each take its own base object, so give() can tell buffers apart
                # even when one reuses the memory of another that was given back.
                raw = np.frombuffer(memoryview(self._block)[at:at + n], np.uint8)
        if raw is None:
            self._missed = True
            raw = np.empty(n, np.uint8)
        self._live[id(raw)] = (raw.ctypes.data, n, raw, k)
        return raw.view(dtype).reshape(shape)

    def owner(self, arr):
        """A key naming the buffer in use that arr is (a view of), or None if arr is not one."""
        key = id(arr.base if arr.base is not None else arr)   # numpy's .base is the take's own array
        return key if key in self._live else None

    def may_share_memory(self, arr):
        """True if arr may overlap the arena or a buffer in use (numpy's bounds test: no false negatives)."""
        if self._block is not None and np.may_share_memory(arr, self._block):
            return True
        return any(np.may_share_memory(arr, base) for _, _, base, _ in self._live.values())

    def give(self, arr):
        """Hand back an array from take(), or any view of it."""
        key = self.owner(arr)
        if key is None:
            raise ValueError("give(): this array is not in use from this arena")
        k = self._live.pop(key)[3]
        self._clock += 1
        self._record[k][2] = self._clock

    @property
    def nbytes(self):
        """Bytes of the arena plus those of the buffers in use outside it."""
        arena = 0 if self._block is None else self._block.size
        base = 0 if self._block is None else self._block.ctypes.data
        outside = sum(m for s, m, _, _ in self._live.values() if not (base <= s < base + arena))
        return arena + outside
