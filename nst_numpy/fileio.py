"""Atomic file writes: every file nst_numpy writes (images, weights, downloads) goes through here.

A file is written under a temporary name in its destination directory and renamed into
place only when complete. os.replace within one directory is atomic on POSIX and Windows,
so a reader (or a crash, a full disk, Ctrl-C) never sees a partial file. A run killed outright
(kill -9, the out-of-memory killer) cannot delete its temporary file; on POSIX, the next complete
write of the same file does, once that process is gone (remove_stale_temps).
"""
import os
import pathlib
import re
import tempfile
import time
from contextlib import contextmanager


def default_file_mode():
    """0o666 minus the umask: the permissions open(path, "w") would have given a new file."""
    return 0o666 & ~_umask()


def _umask():
    """The process umask. Linux shows it in /proc (no change to the process); elsewhere reading it
    means setting it, and another thread may create a file in that instant."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


STALE_SECONDS = 60   # a leftover's age before it may go: a live writer (even a slow download) keeps its mtime fresh


def _name_part(name):
    """`name` cut to 100 bytes of whole characters: with the pid and random part, a name the file system
    allows (255 bytes is the usual limit) still fits."""
    return os.fsencode(name)[:100].decode("utf-8", "ignore")


def temp_prefix(name):
    """A temporary file's name prefix for `name`: hidden, recognisable, with this process's id, so that
    a later write can tell a killed run's leftover from a live run's file (remove_stale_temps)."""
    return f".{_name_part(name)}.{os.getpid()}."


def temp_files(path, suffix=".tmp", stale=False):
    """Names of the temporary files of `path` in its folder: exactly .NAME.PID.XXXXXXXX<suffix> (temp_prefix,
    then mkstemp's 8 random characters), so another output's files do not match (except another name with
    the same first 100 bytes, _name_part). stale: only those a dead process left (SIGKILL or the
    out-of-memory killer give no chance to clean up), that is, process PID no longer exists and the file has
    not been modified for STALE_SECONDS. The age is for a live writer that looks dead from here (another pid
    namespace or host sharing the folder), whose file its writes keep recent; one that wrote nothing for a
    minute (a download still connecting) is not protected. POSIX only (else []): on Windows os.kill(pid, 0)
    would end the process, not probe it."""
    if os.name != "posix":
        return []
    path = pathlib.Path(path)
    pattern = re.compile(re.escape(f".{_name_part(path.name)}.") + r"([0-9]+)\.[a-z0-9_]{8}" + re.escape(suffix))
    names, now = [], time.time()
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                m = pattern.fullmatch(entry.name)
                if m and stale:
                    pid = int(m.group(1))
                    try:
                        old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
                    except OSError:   # gone meanwhile
                        continue
                    if pid == os.getpid() or _alive(pid) or not old:
                        continue
                if m:
                    names.append(entry.name)
    except OSError:
        pass
    return names


def remove_stale_temps(path, suffix=".tmp"):
    """Delete the temporary files of `path` that a dead process left (temp_files(stale=True)); return their names."""
    removed = []
    for name in temp_files(path, suffix, stale=True):
        try:
            os.unlink(pathlib.Path(path).parent / name)
            removed.append(name)
        except OSError:   # gone meanwhile, or not ours to delete: leave it
            pass
    return removed


def _alive(pid):
    """Whether process pid exists (signal 0 checks without sending anything; EPERM: it exists, not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


@contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path next to `path`; on success rename it to `path`, on any exception delete it.

    Raises OSError if the directory cannot take a file. The temporary file exists
    (empty) when the block starts; writers may reopen or overwrite it by name.
    """
    path = pathlib.Path(path)
    if path.is_symlink():   # write to the file the link names, and keep the link
        path = pathlib.Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=suffix)
    os.close(fd)
    tmp = pathlib.Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())  # mkstemp creates files 0600
        os.replace(tmp, path)
    except BaseException:  # includes KeyboardInterrupt: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise
    remove_stale_temps(path, suffix)   # what a killed run left behind, now that a complete file is in place
