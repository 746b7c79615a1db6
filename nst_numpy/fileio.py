"""Atomic file writes: every file nst_numpy writes (images, weights, downloads) goes through here.

A file is written under a temporary name in its destination directory and renamed into
place only when complete. os.replace within one directory is atomic on POSIX and Windows,
so a reader (or a crash, a full disk, Ctrl-C) never sees a partial file.
"""
import os
import pathlib
import tempfile
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


def temp_prefix(name):
    """A temporary file's name prefix for `name`: hidden, recognisable, and short enough that a name
    the file system allows still leaves room for the random part (255 bytes is the usual limit)."""
    return "." + os.fsencode(name)[:100].decode("utf-8", "ignore") + "."   # 100 bytes, whole characters


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
