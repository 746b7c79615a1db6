"""Download a file with a progress bar, verify its hash, and never leave a partial file behind.

    download(url, "weights/vgg19.h5", md5="253f8cb515780f3b799900260a226db6")

The bytes go to a temp file in the destination's directory, which is renamed to dest
(os.replace, atomic on one file system) only after the length and hash check out. On any
failure (network, HTTP error, truncated transfer, hash mismatch, disk full, Ctrl-C) the temp
file is deleted. Failures raise DownloadError with a one-line message; KeyboardInterrupt is
re-raised after the clean-up.
"""
import hashlib
import http.client
import pathlib
import sys
import time
import urllib.error
import urllib.request

from .fileio import atomic_path

CHUNK = 1 << 16


class DownloadError(Exception):
    """The download failed; the message is one line, and no file was left behind."""


def _human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


class DownloadProgress:
    """Bytes, rate and ETA on a stream: redrawn in place on a TTY, a plain line every ~10% otherwise."""

    def __init__(self, total, stream=None, min_interval=0.2):
        self.total, self.stream = total, stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = self.last = time.monotonic()
        self.min_interval, self.next_fraction = min_interval, 0.1
        self.printed = None  # bytes shown on the last plain line

    def line(self, done, now):
        rate = done / max(now - self.start, 1e-9)
        text = f"{_human(done)}"
        if self.total:
            text += f" / {_human(self.total)} ({100 * done / self.total:3.0f}%)  {_human(rate)}/s"
            if rate > 0:   # nothing received yet: no ETA
                text += f"  ETA {(self.total - done) / rate:4.0f} s"
        else:
            text += f"  {_human(rate)}/s"
        return text

    def update(self, done, final=False):
        now = time.monotonic()
        if self.tty:
            if final or now - self.last >= self.min_interval:
                # padded so a shorter line fully covers the previous one
                self.stream.write("\r" + self.line(done, now).ljust(64) + ("\n" if final else ""))
                self.last = now
        elif (final and done != self.printed) or (self.total and done >= self.next_fraction * self.total):
            self.stream.write(self.line(done, now) + "\n")
            self.printed = done
            if self.total:   # the next tenth above done, computed: stepping to it costs a loop per byte if done >> total
                self.next_fraction = (int(10 * done / self.total) + 1) / 10
        self.stream.flush()


def download(url, dest, md5=None, sha256=None, progress=True, timeout=30):
    """Fetch url to dest atomically; check Content-Length and the given hashes (hex) before renaming.
    progress: True (a bar on stderr), a stream to draw it on, or False.
    At least one hash is required: an unchecked download is never what a caller should get."""
    if not (md5 or sha256):
        raise ValueError("download needs an md5 or sha256 to check the file against")
    dest = pathlib.Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest, suffix=".part") as tmp:
            _fetch(url, tmp, md5, sha256, progress, timeout)
    except OSError as e:  # creating or writing the file: permissions, disk full, ...
        raise DownloadError(f"could not save {dest}: {e}") from None
    return dest


def _fetch(url, tmp, md5, sha256, progress, timeout):
    """Stream url into the file tmp; check Content-Length and the given hashes. Raises DownloadError."""
    hashes = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    with open(tmp, "wb") as out:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(f"could not download {url}: {reason} (no network?)") from None
        except http.client.HTTPException as e:   # a garbled status line or header: not an OSError
            raise DownloadError(f"could not download {url}: bad reply ({type(e).__name__})") from None
        with response:
            try:   # http.client tolerates a garbled Content-Length; so do we: the hash still checks the file
                total = int(response.headers.get("Content-Length") or 0) or None
            except ValueError:
                total = None
            bar = DownloadProgress(total, stream=None if progress is True else progress) if progress else None
            done = 0
            while True:
                try:
                    chunk = response.read(CHUNK)
                # Connection reset and timeout are OSErrors; a broken chunk is http.client's IncompleteRead,
                # an HTTPException and not an OSError.
                except (OSError, ValueError, http.client.HTTPException) as e:
                    raise DownloadError(f"download of {url} interrupted after {done} bytes: {e}") from None
                if not chunk:
                    break
                if total is not None and done + len(chunk) > total:   # e.g. chunked despite a Content-Length
                    raise DownloadError(f"download of {url} sent more than the {total} bytes it announced")
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                done += len(chunk)
                if bar:
                    bar.update(done)
            if bar:
                bar.update(done, final=True)
        if total is not None and done != total:
            raise DownloadError(f"download of {url} truncated: got {done} of {total} bytes")
    for name, expected in (("md5", md5), ("sha256", sha256)):
        if expected and hashes[name].hexdigest() != expected.lower():
            raise DownloadError(f"{name.upper()} of the download of {url} is {hashes[name].hexdigest()}, "
                                f"expected {expected} (corrupt or changed file)")
