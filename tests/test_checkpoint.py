"""Checkpoints (checkpoint.py) and resuming a run (optimize.stylize, cli --checkpoint-every / --resume)."""
import io
import os
import pathlib

import numpy as np
import pytest

from nst_numpy import cli, optimize
from nst_numpy.checkpoint import Checkpointer, CheckpointError, load_checkpoint, save_checkpoint
from nst_numpy.config import Config
from nst_numpy.fast import FastVGG19
from nst_numpy.image import load_image
from nst_numpy.optimize import Interrupted, stylize
from nst_numpy.samples import landscape, swirls


def _point(**changes):
    """A resume point as optimize.stylize saves one (scale k is 0-based; see checkpoint._structure_problem)."""
    return dict(dict(scale=0, iteration=2, step=2, work=[960.0, 1920.0], rule=[3.0, 2.5], best_loss=2.5,
                     sizes=[[4, 4], [8, 8]]), **changes)


def test_save_and_load_round_trip_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "run.checkpoint.npz"
    x = np.arange(12.0)
    save_checkpoint(str(path), {"point": _point(scale=1)}, x=x)
    save_checkpoint(str(path), {"point": _point(scale=2)}, x=2 * x)   # replaces the first
    meta, arrays = load_checkpoint(str(path))
    assert meta["point"] == _point(scale=2) and np.array_equal(arrays["x"], 2 * x)
    assert os.listdir(tmp_path) == ["run.checkpoint.npz"]


def test_a_checkpoint_is_flushed_to_disk_then_its_folder(tmp_path, monkeypatch):
    """save_checkpoint survives a power cut, not only a crash: it fsyncs the file's data before the
    rename, then the folder that holds the rename."""
    import stat
    synced, real = [], os.fsync

    def fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    save_checkpoint(str(tmp_path / "run.checkpoint.npz"), {"point": _point()}, x=np.zeros(3))
    assert synced == ["file", "folder"]


def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_old_one(tmp_path, monkeypatch):
    """A full disk or a vanished folder mid-run: a CheckpointError (the CLI's one-line error), the
    previous checkpoint intact and no temporary file; a written one has the usual file permissions."""
    from nst_numpy.fileio import default_file_mode
    path = tmp_path / "run.checkpoint.npz"
    save_checkpoint(str(path), {"point": _point(scale=1)}, x=np.arange(3.0))
    assert path.stat().st_mode & 0o777 == default_file_mode()   # like every other output, not mkstemp's 0600

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(CheckpointError, match="cannot write the checkpoint .No space left on device"):
        save_checkpoint(str(path), {"point": _point(scale=2)}, x=np.arange(3.0))
    monkeypatch.undo()
    assert load_checkpoint(str(path))[0]["point"] == _point(scale=1) and os.listdir(tmp_path) == [path.name]
    with pytest.raises(CheckpointError, match="cannot write"):
        save_checkpoint(str(tmp_path / "gone" / "run.checkpoint.npz"), {}, x=np.arange(3.0))


def test_an_input_unreadable_when_the_checkpoint_hashes_it_is_one_line(tmp_path, monkeypatch):
    """The checkpoint records each input's SHA-256 after the inputs were read: an input made unreadable
    in between is a one-line error (exit 2), with nothing written."""
    from nst_numpy.weights import WeightsError

    def refused(path):
        raise WeightsError(f"{path}: cannot read it ([Errno 13] Permission denied)")
    from PIL import Image
    Image.fromarray(landscape(32, 48).astype(np.uint8)).save(tmp_path / "photo.png")
    monkeypatch.setattr(cli, "file_sha256", refused)
    err = io.StringIO()
    status = cli.main(["--weights", "random", "--size", "32", "--iterations", "2", "--checkpoint-every", "1",
                       "--content", str(tmp_path / "photo.png"), "-o", str(tmp_path / "o.png")], stderr=err)
    assert status == 2 and err.getvalue().startswith("error: ") and "Permission denied" in err.getvalue()
    assert err.getvalue().count("\n") == 1 and os.listdir(tmp_path) == ["photo.png"]


def test_a_checkpoint_that_cannot_be_deleted_at_the_end_is_a_warning(tmp_path, monkeypatch):
    """The output is written by then: the run succeeds and says the checkpoint is left over."""
    real_unlink = os.unlink

    def busy(path, *args, **kwargs):
        if str(path).endswith(".checkpoint.npz"):
            raise OSError(16, "Device or resource busy")
        return real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", busy)
    err = io.StringIO()
    status = cli.main(["--weights", "random", "--size", "32", "--iterations", "2", "--checkpoint-every", "1",
                       "-q", "-o", str(tmp_path / "o.png")], stderr=err)
    assert status == 0 and (tmp_path / "o.png").exists() and (tmp_path / "o.checkpoint.npz").exists()
    assert err.getvalue() == f"warning: could not delete the checkpoint {tmp_path / 'o.checkpoint.npz'} " \
                             "([Errno 16] Device or resource busy)\n"


@pytest.mark.parametrize("meta, x, problem", [
    ({"argv": "--size 64", "point": _point()}, np.zeros(3), "argv"),
    ({"inputs": ["a.png"], "point": _point()}, np.zeros(3), "inputs"),
    ({"cwd": 3, "point": _point()}, np.zeros(3), "cwd"),
    ({"point": None}, np.zeros(3), "not a table"),
    ({"point": _point(step=None)}, np.zeros(3), "whole numbers"),
    ({"point": _point(iteration=-1)}, np.zeros(3), "whole numbers"),
    ({"point": _point(rule="fast")}, np.zeros(3), "lists of finite numbers"),
    ({"point": _point(work=[float("nan")])}, np.zeros(3), "lists of finite numbers"),
    ({"point": _point(scale=True)}, np.zeros(3), "whole numbers"),
    ({"point": _point(sizes=[[-4, 0]])}, np.zeros(3), "sizes"),
    ({"point": _point(best_loss="low")}, np.zeros(3), "no best_loss"),
    ({"point": _point(sizes=[[4, 4, 4]])}, np.zeros(3), "sizes"),
    ({"point": _point()}, np.zeros((3, 1)), "no image array"),
    ({"point": _point()}, None, "no image array"),
    ({"point": _point()}, np.array([0.0, 1e300, 0.0]), "values no picture has"),   # a RuntimeWarning, then a run
    ({"point": _point()}, np.array([0.0, np.nan, 0.0]), "values no picture has"),
    ({"argv": ["--resume", "other.npz"], "point": _point()}, np.zeros(3), "argv holds --resume"),
    ({"argv": ["--size", "64", "--dry-run"], "point": _point()}, np.zeros(3), "argv holds --dry-run"),
])
def test_damaged_checkpoints_are_one_line_errors(tmp_path, meta, x, problem):
    """Contents of the wrong shape are refused when loaded, not met as a TypeError inside the resumed run."""
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, meta, **({} if x is None else {"x": x}))
    with pytest.raises(CheckpointError, match=f"damaged checkpoint .*{problem}"):
        load_checkpoint(path)


def test_empty_file_and_a_point_past_the_schedule_are_refused(tmp_path, net):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(str(empty))
    path = str(tmp_path / "b.npz")
    with pytest.raises(Interrupted):   # a real checkpoint inside scale 1 of 2, then moved past the end
        _run(net, Checkpointer(path, every=2), callback=_stop_at(3))
    meta, arrays = load_checkpoint(path)
    for point, message in ((dict(meta["point"], scale=2), "scale 2 of 2"), (dict(meta["point"], scale=1), "not 48x40"),
                           (dict(meta["point"], sizes=[[20, 24], [41, 48]]), "made for other image sizes")):
        with pytest.raises(CheckpointError, match=message):
            _run(net, Checkpointer(path, every=2, resume=(dict(meta, point=point), arrays)))


def test_cut_or_corrupted_checkpoints_are_one_line_errors(tmp_path):
    """A checkpoint cut short (a full disk, a partial copy) or with bytes changed: 'damaged', not a traceback."""
    path = tmp_path / "c.npz"
    save_checkpoint(str(path), {"point": _point()}, x=np.random.default_rng(0).standard_normal(4000))
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:1000])
    flipped = bytearray(data)
    flipped[len(data) // 2:len(data) // 2 + 64] = bytes(b ^ 0xFF for b in flipped[len(data) // 2:len(data) // 2 + 64])
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    assert load_checkpoint(str(path))[0]["point"] == _point()   # the control: the file as written loads
    for name in ("cut.npz", "flipped.npz"):
        with pytest.raises(CheckpointError, match=f"{name}: damaged checkpoint"):
            load_checkpoint(str(tmp_path / name))


def test_an_npy_file_and_an_array_larger_than_its_bytes_are_refused(tmp_path):
    """--resume on a single .npy array, or on an archive whose array header declares 10^11 values in
    24 bytes (which np.load would try to allocate): one line each, nothing allocated."""
    import io
    import zipfile
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="one.npy: not a checkpoint of this program .one array, not an archive.$"):
        load_checkpoint(str(tmp_path / "one.npy"))
    path = tmp_path / "huge.npz"
    save_checkpoint(str(path), {"point": _point()}, x=np.zeros(3))
    assert load_checkpoint(str(path))[0]["point"] == _point()   # the control: as written, it loads
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 11,)})
    with zipfile.ZipFile(path) as z:
        meta = z.read("meta.npy")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta.npy", meta)
        z.writestr("x.npy", header.getvalue() + bytes(24))
    with pytest.raises(CheckpointError, match="damaged checkpoint .x declares more bytes than it holds."):
        load_checkpoint(str(path))


def test_bad_checkpoints_are_refused_with_one_line(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(str(junk))
    pickled = tmp_path / "pickled.npz"
    marker = tmp_path / "unpickled"   # a pickle that, once loaded, creates this file

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))
    np.savez(str(pickled), meta=np.array([Payload()], dtype=object))
    with pytest.raises(CheckpointError, match="not a checkpoint.*plain arrays.$"):   # refused before loading
        load_checkpoint(str(pickled))
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(str(tmp_path / "missing.npz"))
    other = tmp_path / "other.npz"   # a checkpoint of another program, or of a future version of this one
    np.savez(str(other), meta=np.frombuffer(b'{"format": 99}', np.uint8), x=np.zeros(3))
    with pytest.raises(CheckpointError, match="other.npz: checkpoint format 99, this version reads format"):
        load_checkpoint(str(other))
    np.savez(str(other), meta=np.frombuffer(b'{}', np.uint8), x=np.zeros(3))   # no format at all
    with pytest.raises(CheckpointError, match="other.npz: checkpoint format None, this version reads format"):
        load_checkpoint(str(other))
    for every in (0, 2.5):
        with pytest.raises(ValueError, match="checkpoint-every must be a whole number >= 1"):
            Checkpointer(str(other), every)


@pytest.fixture(scope="module")
def net():
    return FastVGG19.random(seed=0)


def _stop_at(step):
    """A callback that presses Ctrl-C after `step` iterations."""
    def ctrl_c(state):
        if state.step == step:
            raise KeyboardInterrupt
    return ctrl_c


def _run(net, checkpoint, callback=None):
    cfg = Config(size=48, scales=2, coarse_iterations=4, iterations=6, min_improvement=0.0)
    return stylize(net, landscape(40, 48), [swirls(40, 40)], cfg, callback=callback, checkpoint=checkpoint)


# Ctrl-C at step 3 or 4: inside scale 1 (4 iterations), resumed from its checkpoint at 2; at step 5, the
# first of scale 2: resumed from the point saved between the scales; at 7: inside scale 2.
@pytest.mark.parametrize("stop_at", [3, 4, 5, 7])
def test_resumed_run_equals_the_uninterrupted_run(tmp_path, net, stop_at):
    whole = _run(net, Checkpointer(str(tmp_path / "a.npz"), every=2))
    path = str(tmp_path / "b.npz")

    def ctrl_c(state):
        if state.step == stop_at:
            raise KeyboardInterrupt
    with pytest.raises(Interrupted):
        _run(net, Checkpointer(path, every=2), callback=ctrl_c)
    resumed = _run(net, Checkpointer(path, every=2, resume=load_checkpoint(path)))
    assert np.max(np.abs(resumed - whole)) < 1e-3   # 0..255 pixel units: the same run
    # Negative control: the checkpoint's image resumed one iteration off (the place in the
    # schedule is part of the saved state) is not the same run.
    meta, arrays = load_checkpoint(path)
    meta["point"] = dict(meta["point"], iteration=meta["point"]["iteration"] - 1)
    restarted = _run(net, Checkpointer(path, every=2, resume=(meta, arrays)))
    assert np.max(np.abs(restarted - whole)) > 1e-3


def test_a_resumed_run_keeps_the_stopping_rules_history(tmp_path, net):
    """With --min-improvement on, the rule's window of losses is part of the run: restored, the resumed
    run stops where the whole run stopped (iteration 11, the rule's first chance at min_improvement 0.99);
    a resume with an empty window would go on to iteration 20."""
    def run(checkpoint, steps, callback=None):
        cfg = Config(size=48, scales=1, iterations=20, min_improvement=0.99)

        def record(state):
            steps.append(state.step)
            if callback is not None:
                callback(state)
        return stylize(net, landscape(40, 48), [swirls(40, 40)], cfg, callback=record, checkpoint=checkpoint)

    whole_steps, resumed_steps, path = [], [], str(tmp_path / "b.npz")
    whole = run(Checkpointer(str(tmp_path / "a.npz"), every=2), whole_steps)

    def ctrl_c(state):
        if state.step == 10:
            raise KeyboardInterrupt
    with pytest.raises(Interrupted):
        run(Checkpointer(path, every=2), [], ctrl_c)
    resumed = run(Checkpointer(path, every=2, resume=load_checkpoint(path)), resumed_steps)
    assert max(whole_steps) == 11 and max(resumed_steps) == 11
    assert np.max(np.abs(resumed - whole)) < 1e-3


@pytest.mark.parametrize("precondition, kill_at, rescaled", [("20", 3, [False] * 3),
                                                             ("3", 4, [False, False, True, True])])
def test_cli_resume_after_an_interrupt_writes_the_same_picture(tmp_path, monkeypatch, precondition, kill_at,
                                                               rescaled):
    """Killed in an optimiser segment and resumed: the same picture. With --precondition-after 3 the
    last scale's segments are 0-2, 2-3, then 3-5 and 5-6 in step sizes, taken afresh at each restart,
    so a run killed in 5-6 resumes at 5 as the whole run restarted there."""
    out = str(tmp_path / "out.png")
    args = ["--weights", "random", "--size", "40", "--scales", "2", "--coarse-iterations", "3", "--iterations", "6",
            "--min-improvement", "0", "--checkpoint-every", "2", "--precondition-after", precondition, "-q", "-o", out]
    assert cli.main(args) == 0
    whole = load_image(out)
    assert not os.path.exists(str(tmp_path / "out.checkpoint.npz"))   # removed once the run is done
    os.unlink(out)
    real, calls = optimize.run_lbfgs, []

    def killed(*a, **k):   # the run dies during optimiser segment number kill_at
        calls.append(k.get("step_sizes") is not None)
        if len(calls) == kill_at:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(optimize, "run_lbfgs", killed)
    assert cli.main(args) == cli.EXIT_INTERRUPTED
    assert calls == rescaled   # which segments ran in step sizes
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    ckpt = str(tmp_path / "out.checkpoint.npz")
    assert os.path.exists(ckpt)
    assert cli.main(["--resume", ckpt, "-q"]) == 0
    assert np.max(np.abs(load_image(out) - whole)) <= 1.0   # PNG: 8-bit rounding at most
    assert cli.main(["--resume", ckpt, "--size", "64"]) == cli.EXIT_USAGE   # no other options


def _die_in_the_second_segment(monkeypatch):
    """Make the run die (KeyboardInterrupt) in its second optimiser segment, after one checkpoint;
    returns the real optimize.run_lbfgs."""
    real, calls = optimize.run_lbfgs, []

    def killed(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(optimize, "run_lbfgs", killed)
    return real


def test_cli_resume_quiet_and_the_resume_hint(tmp_path, monkeypatch):
    """`--resume C --quiet` silences a run whose first command was not quiet. Interrupted before its
    first checkpoint, a run does not point to a --resume it cannot do; after one, it does."""
    out, ckpt = str(tmp_path / "out.png"), str(tmp_path / "out.checkpoint.npz")
    args = ["--weights", "random", "--size", "32", "--scales", "1", "--iterations", "4", "-o", out]
    real = optimize.run_lbfgs

    def ctrl_c(f, x0, lo, hi, n, *a, **k):   # one iteration of the first segment, before any checkpoint
        real(f, x0, lo, hi, 1, *a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(optimize, "run_lbfgs", ctrl_c)
    err = io.StringIO()
    assert cli.main(args + ["--checkpoint-every", "2"], stderr=err) == cli.EXIT_INTERRUPTED
    assert not os.path.exists(ckpt) and os.path.exists(out), err.getvalue()
    assert "wrote the best image" in err.getvalue() and "--resume" not in err.getvalue(), err.getvalue()
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    _die_in_the_second_segment(monkeypatch)   # after the checkpoint at 2
    err = io.StringIO()
    assert cli.main(args + ["--checkpoint-every", "2"], stderr=err) == cli.EXIT_INTERRUPTED
    assert f"--resume {ckpt}" in err.getvalue(), err.getvalue()
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    before = open(ckpt, "rb").read()   # a new run with checkpoints would write over it, then delete it
    err = io.StringIO()
    assert cli.main(args + ["--checkpoint-every", "2"], stderr=err) == cli.EXIT_USAGE
    assert f"{ckpt} holds an earlier run" in err.getvalue() and f"--resume {ckpt}" in err.getvalue()
    assert open(ckpt, "rb").read() == before
    err = io.StringIO()   # without checkpoints the run goes on, and says the old one would overwrite its picture
    assert cli.main(args + ["--iterations", "1"], stderr=err) == 0
    assert f"note: {ckpt} from an earlier run stays" in err.getvalue() and open(ckpt, "rb").read() == before
    err = io.StringIO()
    assert cli.main(["--resume", ckpt, "--quiet"], stderr=err) == 0
    assert err.getvalue() == "" and os.path.exists(out)   # not quiet, it would at least say "wrote ..."


def test_cli_resume_from_another_directory_finds_relative_paths(tmp_path, monkeypatch):
    """A run started with relative paths in one directory resumes from another: its inputs are read,
    and its checkpoint and output written, where the first command meant them."""
    from PIL import Image
    (tmp_path / "run").mkdir()
    (tmp_path / "elsewhere").mkdir()
    Image.fromarray(landscape(40, 40).astype(np.uint8)).save(tmp_path / "run" / "photo.png")
    Image.fromarray(landscape(40, 40).astype(np.uint8)[::-1]).save(tmp_path / "run" / "start.png")
    monkeypatch.chdir(tmp_path / "run")
    real = _die_in_the_second_segment(monkeypatch)
    assert cli.main(["--weights", "random", "--content", "photo.png", "--init", "start.png", "--size", "32",
                     "--scales", "1", "--iterations", "6", "--checkpoint-every", "2",
                     "-o", "out.png"], stderr=io.StringIO()) == cli.EXIT_INTERRUPTED
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    _die_in_the_second_segment(monkeypatch)   # dies again: the checkpoint it rewrites must resume too
    monkeypatch.chdir(tmp_path / "elsewhere")
    ckpt = str(tmp_path / "run" / "out.checkpoint.npz")
    assert cli.main(["--resume", ckpt], stderr=io.StringIO()) == cli.EXIT_INTERRUPTED
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    err = io.StringIO()   # it says where the picture goes, which the checkpoint chose
    assert cli.main(["--resume", ckpt], stderr=err) == 0
    assert err.getvalue().startswith(f"resuming {ckpt} after iteration 4; the picture goes to "
                                     f"{tmp_path / 'run' / 'out.png'}\n"), err.getvalue()
    assert (tmp_path / "run" / "out.png").exists() and not os.path.exists(ckpt)
    assert os.listdir(tmp_path / "elsewhere") == []
    from PIL import Image
    # the record keeps the paths as typed, as an uninterrupted run's would
    assert "content=photo.png" in Image.open(tmp_path / "run" / "out.png").text["Parameters"].splitlines()


def test_an_array_with_a_newer_npy_header_is_left_to_numpy(tmp_path):
    """_declared_bytes reads the sizes of the header versions np.savez writes (1.0, 2.0); a member with
    version 3.0 (which NumPy also reads) is not refused for that, and loads."""
    import zipfile
    path, x = str(tmp_path / "c.npz"), np.arange(6.0)
    save_checkpoint(path, {"point": _point()}, x=x)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x, version=(3, 0))
    members["x.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    meta, arrays = load_checkpoint(path)
    assert np.array_equal(arrays["x"], x) and meta["point"] == _point()


def test_a_checkpoint_that_cannot_be_written_costs_a_warning_not_the_run(tmp_path, monkeypatch):
    """A full disk at a checkpoint: one warning, and the run goes on to write its picture. Resumed, the
    checkpoint it came from stays, and the warning says so."""
    from nst_numpy import checkpoint as checkpoint_module
    real_save = checkpoint_module.save_checkpoint

    def full(path, *a, **k):
        raise checkpoint_module.CheckpointError(f"{path}: cannot write the checkpoint (No space left on device)")
    out, ckpt = tmp_path / "o.png", tmp_path / "o.checkpoint.npz"
    args = ["--weights", "random", "--size", "32", "--iterations", "4", "--min-improvement", "0",
            "--checkpoint-every", "1", "-o", str(out)]

    def warnings(err):
        return [line for line in err.getvalue().splitlines() if line.startswith("warning:")]
    monkeypatch.setattr(checkpoint_module, "save_checkpoint", full)
    err = io.StringIO()
    assert cli.main(args, stderr=err) == 0 and out.exists()
    assert warnings(err) == [f"warning: {ckpt}: cannot write the checkpoint (No space left on device); the run "
                             f"goes on, and --resume would start from the beginning"], err.getvalue()
    monkeypatch.setattr(checkpoint_module, "save_checkpoint", real_save)
    real = _die_in_the_second_segment(monkeypatch)
    assert cli.main(args[:-2] + ["-o", str(tmp_path / "p.png")], stderr=io.StringIO()) == cli.EXIT_INTERRUPTED
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    monkeypatch.setattr(checkpoint_module, "save_checkpoint", full)
    err = io.StringIO()
    assert cli.main(["--resume", str(tmp_path / "p.checkpoint.npz")], stderr=err) == 0
    assert warnings(err)[0].endswith("--resume would start from the last one written"), err.getvalue()


def test_a_checkpoint_written_after_a_failed_one_clears_the_failure(tmp_path, monkeypatch):
    """Checkpointer.failed is "" once a write succeeds again (the docstring's promise)."""
    from nst_numpy import checkpoint as C
    real = C.save_checkpoint
    ck = C.Checkpointer(tmp_path / "c.npz", 1)

    def full(path, *a, **k):
        raise C.CheckpointError(f"{path}: cannot write the checkpoint (No space left on device)")
    monkeypatch.setattr(C, "save_checkpoint", full)
    ck.save({}, np.zeros(3))
    assert ck.failed and ck.saved == 0
    monkeypatch.setattr(C, "save_checkpoint", real)
    ck.save({}, np.zeros(3))
    assert ck.failed == "" and ck.saved == 1
