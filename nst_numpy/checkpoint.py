"""Checkpoints of a stylize run: written atomically, read without pickle, resumed exactly.

A checkpoint is a .npz file (numpy's zip of .npy arrays) holding the arrays of the resume
point and one JSON text of everything else; np.load(allow_pickle=False) reads it, so a
checkpoint from elsewhere can carry no code. It is written to a temporary file in the same
folder, flushed to disk, then renamed over the old one: a run killed at any moment (kill -9
included) leaves either the previous checkpoint or the new one, never half of one.

Why resuming is exact: with checkpoints on, the optimiser restarts every `every`
iterations from the best point so far (optimize.stylize), whether or not the run is ever
interrupted. L-BFGS-B's memory lives inside scipy and cannot be saved, so the run is cut
where nothing but the image, the stopping rule's history and counters carries over,
and those are exactly what a checkpoint holds.
"""
import json
import math
import os
import zipfile
import zlib

import numpy as np

from .console import one_line
from .fileio import atomic_path

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (one-line message)."""


def save_checkpoint(path, meta, **arrays):
    """Write meta (JSON-able dict) and arrays to path atomically (fileio.atomic_path, plus an fsync:
    a checkpoint must survive a power cut, not only a crash). A failed write (a full disk, a folder
    removed mid-run) is a CheckpointError with a one-line message; the old checkpoint stays."""
    try:
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                text = json.dumps(dict(meta, format=FORMAT)).encode()
                np.savez(f, meta=np.frombuffer(text, np.uint8), **arrays)
                f.flush()
                os.fsync(f.fileno())
        _sync_folder(path)   # the rename itself is in the folder's entry: flush that too
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write the checkpoint ({e.strerror or e})") from None


def _sync_folder(path):
    """fsync the folder holding path, where the OS allows opening a folder (POSIX; not Windows)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path):
    """(meta dict, {name: array}) from a file save_checkpoint wrote. CheckpointError otherwise."""
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):   # a single .npy array: no archive, no meta
            raise CheckpointError(f"{path}: not a checkpoint of this program (one array, not an archive)")
        with z:
            for k in z.files:   # an array's header declares its size: more than the member holds is damage
                if _declared_bytes(z, k) > z.zip.getinfo(k + ".npy").file_size:
                    raise CheckpointError(f"{path}: damaged checkpoint ({k} declares more bytes than it holds)")
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (zipfile.BadZipFile, zlib.error) as e:   # cut short, or bytes changed: its CRC no longer matches
        raise CheckpointError(f"{path}: damaged checkpoint ({one_line(e)})") from None
    except ValueError as e:
        if "pickle" in str(e):   # numpy's advice to load the file unsafely is not for a checkpoint
            raise CheckpointError(f"{path}: not a checkpoint of this program (not a NumPy archive of plain arrays)") from None
        raise CheckpointError(f"{path}: not a checkpoint of this program ({one_line(e)})") from None
    except (OSError, KeyError, UnicodeDecodeError, EOFError) as e:   # EOFError: an empty file
        raise CheckpointError(f"{path}: not a checkpoint of this program ({one_line(e)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format') if isinstance(meta, dict) else '?'}, "
                              f"this version reads format {FORMAT}")
    problem = _structure_problem(meta, arrays)
    if problem:
        raise CheckpointError(f"{path}: damaged checkpoint ({problem})")
    return meta, arrays


def _declared_bytes(z, name):
    """Bytes the .npy header of archive member name declares, read without loading the array."""
    fmt = np.lib.format
    readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    with z.zip.open(name + ".npy") as f:
        read = readers.get(fmt.read_magic(f))
        if read is None:
            return 0   # a header version np.savez does not write: left to np.load's own checks
        shape, _, dtype = read(f)
    return math.prod(shape) * dtype.itemsize


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


NEVER_SAVED = {"--resume", "--dry-run", "--help", "-h"}   # options of a run that cannot write checkpoints
MAX_PIXEL = 1e4   # |x| of a saved image in the network's units (RGB 0..255 less the mean, or scaled to 0..1)


def _structure_problem(meta, arrays):
    """What is wrong with a checkpoint's contents, or "" if they have the shape the run reads back
    (CheckpointError then, not a TypeError deep inside the resumed run)."""
    if "argv" in meta and not (isinstance(meta["argv"], list) and all(isinstance(a, str) for a in meta["argv"])):
        return "argv is not a list of strings"
    if "argv" in meta and set(meta["argv"]) & NEVER_SAVED:   # the saved command was a run that wrote this file
        return f"argv holds {sorted(set(meta['argv']) & NEVER_SAVED)[0]}, which no checkpointed run has"
    if "cwd" in meta and not isinstance(meta["cwd"], str):
        return "cwd is not a path"
    if "inputs" in meta and not (isinstance(meta["inputs"], dict)
                                 and all(isinstance(v, str) for v in meta["inputs"].values())):
        return "inputs is not a table of file hashes"
    if "point" not in meta:
        return ""
    point = meta["point"]
    if not isinstance(point, dict):
        return "the resume point is not a table"
    ints = ("scale", "iteration", "step")
    lists = ("work", "rule")
    if not all(_whole(point.get(k)) and point[k] >= 0 for k in ints):
        return f"the resume point needs whole numbers {', '.join(ints)}"
    if not all(isinstance(point.get(k), list) and all(_is_number(v) and math.isfinite(v) for v in point[k])
               for k in lists):
        return f"the resume point needs lists of finite numbers {', '.join(lists)}"
    if not _is_number(point.get("best_loss")):   # inf is allowed: saved between scales, before any loss
        return "the resume point has no best_loss"
    sizes = point.get("sizes")
    if not (isinstance(sizes, list) and all(isinstance(s, list) and len(s) == 2 and all(_whole(v) and v > 0 for v in s)
                                            for s in sizes)):
        return "the resume point's sizes are not (H, W) pairs"
    x = arrays.get("x")
    if x is None or x.dtype.kind != "f" or x.ndim != 1:
        return "no image array x"
    if not np.all(np.abs(x) <= MAX_PIXEL):   # also NaN: the network's pixels lie within a few hundred of 0
        return "the image array x holds values no picture has"
    return ""


class Checkpointer:
    """Where and how often stylize saves its resume point, and the point to resume from.

    every: iterations between checkpoints (also where the optimiser restarts, see the module
    docstring). meta: extra JSON-able facts saved with each checkpoint (the CLI puts its
    command line and its inputs' hashes there). resume: (meta, arrays) of load_checkpoint.
    """

    def __init__(self, path, every, meta=None, resume=None):
        if int(every) != every or every < 1:
            raise ValueError(f"checkpoint-every must be a whole number >= 1, got {every}")
        self.path, self.every, self.meta = path, int(every), dict(meta or {})
        self.resume = resume
        self.saved = 0   # checkpoints written by this run
        self.failed = ""   # why the last write failed ("" once one succeeds again)

    def save(self, point, x):
        """point: the resume point's counters (JSON-able dict); x: the image there (flat float64).
        A write that fails (a full disk) is kept in self.failed, not raised: a lost checkpoint must
        not cost the run (the previous checkpoint stays)."""
        try:
            save_checkpoint(self.path, dict(self.meta, point=point), x=np.asarray(x, np.float64))
        except CheckpointError as e:
            self.failed = str(e)
            return
        self.failed = ""
        self.saved += 1

    def remove(self):
        """Delete the checkpoint once the run has finished and written its output. Returns None, or
        the reason it could not (the output is written: a leftover checkpoint is no error)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            return f"could not delete the checkpoint {self.path} ({one_line(e)})"
