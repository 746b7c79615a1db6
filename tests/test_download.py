"""Download: against a local HTTP server on 127.0.0.1; every failure leaves no file behind."""
import errno
import hashlib
import os
import http.server
import io
import runpy
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import weight_fixtures as wf
from nst_numpy import download as dl
from nst_numpy import weights
from nst_numpy.download import DownloadError, DownloadProgress, download
from nst_numpy.fileio import default_file_mode
from nst_numpy.vgg_spec import CAFFE
from nst_numpy.weights import WeightsError, get_vgg19, read_weights

BODY = np.random.default_rng(0).bytes(300_000)


class Handler(http.server.BaseHTTPRequestHandler):
    files = {"/file.bin": BODY}

    def do_GET(self):
        if self.path == "/short":  # promises more than it sends, then closes: a truncated transfer
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
            self.close_connection = True
            return
        if self.path == "/chunked-short":  # chunked transfer cut mid-chunk: http.client's IncompleteRead
            self.protocol_version = "HTTP/1.1"   # chunked needs 1.1
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % 5000 + BODY[:1000])
            self.close_connection = True
            return
        if self.path == "/garbled-length":  # a Content-Length that is not a number: ignored, the hash decides
            self.send_response(200)
            self.send_header("Content-Length", "5, 5")
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
            return
        if self.path == "/bad-status":  # not HTTP at all: http.client's BadStatusLine
            self.wfile.write(b"GARBAGE\r\n\r\n")
            self.close_connection = True
            return
        if self.path == "/no-length":  # HTTP/1.0 with no Content-Length: the body ends when the connection does
            self.send_response(200)
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


ANY_MD5 = "0" * 32   # for downloads that fail before their hash is checked


def test_success_with_md5_and_sha256(server, tmp_path, capsys):
    dest = tmp_path / "sub" / "file.bin"
    download(f"{server}/file.bin", dest, md5=hashlib.md5(BODY).hexdigest(),
             sha256=hashlib.sha256(BODY).hexdigest())
    assert dest.read_bytes() == BODY
    assert dest.stat().st_mode & 0o777 == default_file_mode()  # not mkstemp's 0600
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]
    err = capsys.readouterr().err
    assert "100%" in err and "/s" in err and "\r" not in err  # plain lines when stderr is not a TTY
    assert err.count("100%") == 1 and 5 <= err.count("\n") <= 11  # about one line per 10%


def test_the_progress_bar_goes_to_the_stream_given(server, tmp_path, capsys):
    """The CLI passes its message stream (one that a closed pipe cannot end the run through)."""
    stream = io.StringIO()
    download(f"{server}/file.bin", tmp_path / "f.bin", md5=hashlib.md5(BODY).hexdigest(), progress=stream)
    assert "100%" in stream.getvalue() and "100%" not in capsys.readouterr().err


def test_an_upper_case_hash_is_accepted(server, tmp_path):
    """Hex is case-insensitive: a hash copied in upper case is the same hash, not a mismatch."""
    dest = download(f"{server}/file.bin", tmp_path / "f.bin", md5=hashlib.md5(BODY).hexdigest().upper(),
                    sha256=hashlib.sha256(BODY).hexdigest().upper(), progress=False)
    assert dest.read_bytes() == BODY


def test_progress_eta_is_the_time_left_for_the_bytes_left():
    """A quarter of the bytes in 1 s: the other three quarters take 3 s at that rate."""
    bar = DownloadProgress(total=4096, stream=io.StringIO())
    line = bar.line(1024, bar.start + 1.0)
    assert "( 25%)  1.0 KB/s" in line and line.endswith("ETA    3 s"), line


def test_unknown_length_shows_bytes_and_rate_without_an_eta(server, tmp_path, capsys):
    """No Content-Length: no total to give a percentage or ETA of, so the bar shows bytes and rate;
    the MD5 still guards the file."""
    dest = download(f"{server}/no-length", tmp_path / "f.bin", md5=hashlib.md5(BODY).hexdigest())
    assert dest.read_bytes() == BODY
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("293.0 KB  ") and last.endswith("/s") and "%" not in last and "ETA" not in last, last


def test_hash_mismatch_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="MD5 .* expected 0+ "):
        download(f"{server}/file.bin", tmp_path / "f", md5="0" * 32, progress=False)
    with pytest.raises(DownloadError, match="SHA256"):
        download(f"{server}/file.bin", tmp_path / "f", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer(server, tmp_path):
    with pytest.raises(DownloadError, match=f"truncated: got 1000 of {len(BODY)} bytes"):
        download(f"{server}/short", tmp_path / "f", md5=ANY_MD5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_chunked_transfer_cut_short(server, tmp_path):
    """No Content-Length to check against: the broken chunk itself (IncompleteRead, an HTTPException,
    not an OSError) must become a one-line DownloadError, and nothing is left behind."""
    with pytest.raises(DownloadError, match="interrupted after 0 bytes"):
        download(f"{server}/chunked-short", tmp_path / "f.bin", md5=ANY_MD5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_404(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server}/nothing", tmp_path / "f", md5=ANY_MD5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="could not download .*refused"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "f", md5=ANY_MD5, progress=False)
    assert list(tmp_path.iterdir()) == []


class FailingFile(io.BytesIO):
    """Stands in for the temp file: the second write fails with `exc`."""
    def __init__(self, exc):
        super().__init__()
        self.exc, self.calls = exc, 0

    def write(self, data):
        self.calls += 1
        if self.calls == 2:
            raise self.exc
        return super().write(data)


@pytest.mark.parametrize("exc, expected", [(OSError(errno.ENOSPC, "No space left on device"), DownloadError),
                                           (KeyboardInterrupt(), KeyboardInterrupt)])
def test_disk_full_and_ctrl_c_clean_up(server, tmp_path, monkeypatch, exc, expected):
    monkeypatch.setattr(dl, "open", lambda fd, mode: FailingFile(exc), raising=False)
    with pytest.raises(expected) as e:
        download(f"{server}/file.bin", tmp_path / "f", md5=ANY_MD5, progress=False)
    if expected is DownloadError:
        assert "No space left on device" in str(e.value)
    assert list(tmp_path.iterdir()) == []


class Tty(io.StringIO):
    """A stream that says it is a terminal: the bar redraws in place with \\r."""
    def isatty(self):
        return True


def test_progress_in_place_on_a_tty():
    stream = Tty()
    bar = DownloadProgress(total=2_000_000, stream=stream, min_interval=0.0)
    for done in (500_000, 1_000_000, 2_000_000):
        bar.update(done)
    bar.update(2_000_000, final=True)
    out = stream.getvalue()
    assert out.count("\r") == 4 and out.endswith("\n") and "ETA" in out and "1.9 MB / 1.9 MB (100%)" in out


def test_get_vgg19_downloads_verifies_converts_and_keeps_only_the_converted_file(server, tmp_path, monkeypatch):
    raw = tmp_path / "raw.h5"
    wf.write_keras(raw, wf.random_params(seed=2))
    body = raw.read_bytes()
    monkeypatch.setitem(Handler.files, "/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", body)
    monkeypatch.setattr(weights, "KERAS_URL", f"{server}/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    dest_dir = tmp_path / "cache"
    monkeypatch.setenv("NST_NUMPY_WEIGHTS", str(dest_dir / "vgg19.h5"))

    monkeypatch.setattr(weights, "KERAS_MD5", "f" * 32)  # wrong pinned hash: refused, nothing kept
    with pytest.raises(WeightsError, match="MD5.*--weights PATH"):
        get_vgg19(progress=False)
    assert list(dest_dir.iterdir()) == []

    monkeypatch.setattr(weights, "KERAS_MD5", hashlib.md5(body).hexdigest())
    net = get_vgg19(pooling="max", progress=False)
    assert net.preprocessing == CAFFE and net.pooling == "max"
    assert [p.name for p in dest_dir.iterdir()] == ["vgg19.h5"]
    info = read_weights(dest_dir / "vgg19.h5")[2]
    assert info["source_name"] == "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert info["source_sha256"] == hashlib.sha256(body).hexdigest()


def test_garbled_replies(server, tmp_path):
    """A Content-Length that is no number is ignored (the hash still checks the file); a reply that is not
    HTTP is a one-line DownloadError, and nothing is left behind."""
    dest = tmp_path / "f.bin"
    download(f"{server}/garbled-length", dest, md5=hashlib.md5(BODY).hexdigest(), progress=False)
    assert dest.read_bytes() == BODY
    with pytest.raises(DownloadError, match="bad reply"):
        download(f"{server}/bad-status", tmp_path / "g.bin", md5=ANY_MD5, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def _serve_keras(server, monkeypatch, tmp_path, name, seed):
    """A random-weight Keras notop file served at /name and pinned as weights' URL and MD5; returns its bytes."""
    raw = tmp_path / f"served-{seed}.h5"
    wf.write_keras(raw, wf.random_params(seed=seed))
    body = raw.read_bytes()
    raw.unlink()
    monkeypatch.setitem(Handler.files, f"/{name}", body)
    monkeypatch.setattr(weights, "KERAS_URL", f"{server}/{name}")
    monkeypatch.setattr(weights, "KERAS_MD5", hashlib.md5(body).hexdigest())
    return body


def test_a_keras_file_already_in_the_weights_folder_is_kept(server, tmp_path, monkeypatch):
    """The user's own file with the Keras name: used without a download if its MD5 is the pinned one,
    else left untouched while the download goes to a name of its own."""
    name = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    body = _serve_keras(server, monkeypatch, tmp_path, name, seed=2)
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / name).write_bytes(b"the user's own, different file")
    weights.fetch_and_convert(folder / "vgg19.h5", progress=False)      # downloads: the MD5 differs
    assert (folder / name).read_bytes() == b"the user's own, different file"
    assert sorted(p.name for p in folder.iterdir()) == sorted([name, "vgg19.h5"])
    (folder / "vgg19.h5").unlink()
    (folder / name).write_bytes(body)
    monkeypatch.setitem(Handler.files, f"/{name}", b"")                   # a download would now fail
    weights.fetch_and_convert(folder / "vgg19.h5", progress=False)      # the placed file, converted
    assert (folder / name).read_bytes() == body and (folder / "vgg19.h5").exists()


def test_a_download_killed_outright_is_cleaned_up_by_the_next_one(server, tmp_path, monkeypatch):
    """A download killed by SIGKILL leaves its .download file and that file's .part (the whole partial body).
    The next fetch deletes both once their process is gone and they are STALE_SECONDS old; a dead run's
    .download whose .part is still fresh stays with it (never an orphaned .part), and a live run's stays."""
    import subprocess
    from nst_numpy import fileio
    name = "notop.h5"
    _serve_keras(server, monkeypatch, tmp_path, name, seed=3)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "w"
    folder.mkdir()

    def leftover(raw_random, part_random, fresh_part=False, pid=dead.pid):
        raw_name = f".{name}.{pid}.{raw_random}.download"
        part_name = f".{raw_name}.{pid}.{part_random}.part"
        old = time.time() - 2 * fileio.STALE_SECONDS
        for n in (raw_name, part_name):
            (folder / n).write_bytes(b"partial")
            if not (fresh_part and n == part_name):
                os.utime(folder / n, (old, old))
        return raw_name, part_name
    killed = leftover("aaaa1111", "bbbb2222")
    recent = leftover("cccc3333", "dddd4444", fresh_part=True)
    live = leftover("eeee5555", "ffff6666", pid=os.getppid())
    weights.fetch_and_convert(folder / "vgg19.h5", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["vgg19.h5", *recent, *live])
    assert not set(killed) & set(os.listdir(folder))


def test_a_leftover_download_that_cannot_be_deleted_does_not_stop_the_download(monkeypatch, tmp_path):
    """A dead run's .download in a shared folder may not be ours to delete: it stays, and no error follows."""
    raw = tmp_path / ".notop.h5.1.aaaa1111.download"
    raw.write_bytes(b"")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(weights, "temp_files", lambda path, suffix, stale=False: [raw.name] if suffix == ".download" else [])
    monkeypatch.setattr(Path, "unlink", refuse)
    weights._remove_killed_downloads(tmp_path, "notop.h5")   # no exception
    assert raw.exists()


def test_convert_script_download_flag(server, tmp_path, monkeypatch, capsys):
    """scripts/convert_weights.py --download: converts and keeps only the converted file; errors exit 2."""
    main = runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "convert_weights.py"))["main"]
    _serve_keras(server, monkeypatch, tmp_path, "notop.h5", seed=5)
    out = tmp_path / "w" / "vgg19.h5"
    assert main(["--download", "--quiet", "-o", str(out)]) == 0
    assert [p.name for p in out.parent.iterdir()] == ["vgg19.h5"]
    assert "wrote" in capsys.readouterr().out
    same = tmp_path / "y" / "notop.h5"   # named as the download itself: that goes to .notop.h5.PID.XXXXXXXX.download first
    assert main(["--download", "--quiet", "-o", str(same)]) == 0
    assert [p.name for p in same.parent.iterdir()] == ["notop.h5"]
    assert read_weights(same)[2]["source_name"] == "notop.h5"   # the download's name, not the temporary one
    monkeypatch.setattr(weights, "KERAS_URL", f"{server}/gone.h5")
    assert main(["--download", "--quiet", "-o", str(tmp_path / "x" / "vgg19.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and "HTTP 404" in err and "--weights PATH" in err
    assert err.count("\n") == 1 and list((tmp_path / "x").iterdir()) == []


def test_download_progress_on_a_tty_is_throttled():
    stream = Tty()
    bar = DownloadProgress(total=1000, stream=stream, min_interval=3600)
    for done in range(100, 1000, 100):
        bar.update(done)
    bar.update(1000, final=True)
    assert stream.getvalue().count("\r") == 1   # only the final line: the rest came within min_interval


def test_download_human_sizes_use_1024():
    from nst_numpy.download import _human
    assert (_human(1000), _human(1023), _human(1024)) == ("1000 B", "1023 B", "1.0 KB")


def test_a_download_without_a_hash_is_refused(server, tmp_path):
    with pytest.raises(ValueError, match="needs an md5 or sha256"):
        download(f"{server}/file.bin", tmp_path / "f", progress=False)
    assert list(tmp_path.iterdir()) == []


class _Overlong(http.server.BaseHTTPRequestHandler):
    """Announces 10 bytes, then sends 2 MB chunked (http.client then ignores the Content-Length)."""
    def do_GET(self):
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"x" * 65536
        try:
            for _ in range(32):
                self.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, *a):
        pass


def test_a_reply_longer_than_announced_is_stopped_at_once(tmp_path):
    """Without the check during the transfer, the whole (possibly endless) body is
    written to disk first and only then called "truncated"."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Overlong)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DownloadError, match="sent more than the 10 bytes it announced"):
            download(f"http://127.0.0.1:{httpd.server_address[1]}/f", tmp_path / "f", md5="0" * 32, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list(tmp_path.iterdir()) == []
