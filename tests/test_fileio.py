"""fileio: temporary names, and the leftovers of runs killed outright (kill -9, the out-of-memory killer)."""
import os
import subprocess
import sys
import time

import numpy as np

from nst_numpy import fileio
from nst_numpy import image as I


def test_a_killed_runs_temporary_file_goes_at_the_next_complete_write(tmp_path):
    """A process killed while writing (kill -9 gives it no chance to clean up) leaves .NAME.PID.XXXXXXXX.tmp;
    the next write of NAME deletes it, once PID is gone and the file is older than STALE_SECONDS. Kept:
    a live process's file, a dead one's that is still fresh, and another output's or an odd name's."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - 2 * fileio.STALE_SECONDS
    names = {"stale": f".o.png.{dead.pid}.abc_1234.tmp", "live": f".o.png.{os.getppid()}.abcd1234.tmp",
             "fresh": f".o.png.{dead.pid}.fresh123.tmp",
             "other output": f".o.png.{dead.pid}.png.{dead.pid}.abcd1234.tmp",   # of o.png.PID.png
             "no pid": ".o.png.abcd1234.tmp", "other suffix": f".o.png.{dead.pid}.abcd1234.npz"}
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if key != "fresh":
            os.utime(tmp_path / name, (old, old))
    I.save_image(tmp_path / "o.png", np.zeros((16, 16, 3)))
    left = set(os.listdir(tmp_path))
    assert names["stale"] not in left and "o.png" in left
    assert {n for k, n in names.items() if k != "stale"} <= left
    with fileio.atomic_path(tmp_path / "o.png") as tmp:   # this process's own name carries its pid
        assert tmp.name.startswith(f".o.png.{os.getpid()}.")
    assert fileio.remove_stale_temps(tmp_path / "o.png") == []   # control: nothing else matches
    own = tmp_path / f".o.png.{os.getpid()}.ownownow.tmp"   # an old file of this very process: still writing
    own.write_bytes(b"")
    os.utime(own, (old, old))
    assert own.name in fileio.temp_files(tmp_path / "o.png") and fileio.remove_stale_temps(tmp_path / "o.png") == []


def test_a_process_that_is_not_ours_or_cannot_be_a_pid_counts_as_alive(monkeypatch):
    """fileio._alive: EPERM means the process exists (another user's); a number too big for a pid cannot be
    probed, so its file is kept too; only ESRCH (no such process) says dead."""
    assert fileio._alive(os.getpid()) and fileio._alive(10 ** 30)

    def kill(pid, sig, error):
        raise error
    monkeypatch.setattr(fileio.os, "kill", lambda pid, sig: kill(pid, sig, PermissionError(1, "not permitted")))
    assert fileio._alive(12345)
    monkeypatch.setattr(fileio.os, "kill", lambda pid, sig: kill(pid, sig, ProcessLookupError(3, "no such process")))
    assert not fileio._alive(12345)
