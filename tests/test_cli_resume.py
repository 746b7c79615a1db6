"""--resume as the command line does it: what a checkpoint records so that a resume is the same run
(the inputs' and the weights' hashes, the thread count and memory cap taken from the machine), and
what it refuses."""
import os

import numpy as np

from nst_numpy import cli, optimize
from nst_numpy.checkpoint import load_checkpoint
from nst_numpy.samples import landscape
from test_checkpoint import _die_in_the_second_segment


def test_cli_resume_refuses_an_input_that_changed(tmp_path, monkeypatch, capsys):
    """The checkpoint records each input's SHA-256: a photo edited since the run began is refused
    with one line, not silently mixed into the resumed run; the checkpoint stays for a retry."""
    from PIL import Image
    photo = tmp_path / "photo.png"
    Image.fromarray(landscape(40, 40).astype(np.uint8)).save(photo)
    out, ckpt = str(tmp_path / "out.png"), str(tmp_path / "out.checkpoint.npz")
    real = _die_in_the_second_segment(monkeypatch)
    assert cli.main(["--weights", "random", "--content", str(photo), "--size", "32", "--scales", "1",
                     "--iterations", "4", "--checkpoint-every", "2", "-q", "-o", out]) == cli.EXIT_INTERRUPTED
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    Image.fromarray(landscape(40, 40).astype(np.uint8)[::-1]).save(photo)   # the photo is edited
    capsys.readouterr()
    assert cli.main(["--resume", ckpt, "-q"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err == f"error: {photo} has changed since the checkpoint was written; cannot resume\n", err
    assert os.path.exists(ckpt)
    Image.fromarray(landscape(40, 40).astype(np.uint8)).save(photo)   # control: put back, it resumes
    assert cli.main(["--resume", ckpt, "-q"]) == 0 and not os.path.exists(ckpt)


def test_cli_resume_refuses_weights_that_changed(tmp_path, monkeypatch, capsys):
    """The weights file is hashed with the images: replaced since the checkpoint, the resume is refused."""
    net = cli._load_network(cli.build_parser().parse_args(["--weights", "random"]))
    monkeypatch.setattr(cli, "_load_network", lambda args, **kw: net)   # the file's bytes are all this test needs
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"weights, first version")
    out, ckpt = str(tmp_path / "out.png"), str(tmp_path / "out.checkpoint.npz")
    real = _die_in_the_second_segment(monkeypatch)
    assert cli.main(["--weights", str(weights), "--size", "32", "--scales", "1", "--iterations", "4",
                     "--checkpoint-every", "2", "-q", "-o", out]) == cli.EXIT_INTERRUPTED
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    weights.write_bytes(b"weights, converted again")
    capsys.readouterr()
    assert cli.main(["--resume", ckpt, "-q"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == f"error: {weights} has changed since the checkpoint was written; cannot resume\n"
    weights.write_bytes(b"weights, first version")   # control: put back, it resumes
    assert cli.main(["--resume", ckpt]) == 0 and not os.path.exists(ckpt)
    err = capsys.readouterr().err   # not quiet: it says where the picture goes, and does not take its own
    assert "resuming" in err and "from an earlier run stays" not in err, err   # checkpoint for an old run's


def test_the_checkpoint_keeps_the_thread_count_and_not_quiet(tmp_path, monkeypatch):
    """The float32 rounding follows the thread count, and the plan the memory cap, so a resume elsewhere
    must use the same ones; and `--resume C -q` silences that run only, not every later resume."""
    monkeypatch.setattr(cli, "default_cap", lambda: 3 << 30)   # what this machine had free, at the first run
    out, ckpt = str(tmp_path / "out.png"), str(tmp_path / "out.checkpoint.npz")
    real = _die_in_the_second_segment(monkeypatch)
    assert cli.main(["--weights", "random", "--size", "32", "--scales", "1", "--iterations", "6",
                     "--checkpoint-every", "2", "-q", "-o", out]) == cli.EXIT_INTERRUPTED
    argv = load_checkpoint(ckpt)[0]["argv"]
    assert "-q" not in argv and argv[-4:] == ["--threads", str(cli.build_parser().parse_args([]).threads),
                                              "--max-memory", str(cli.default_cap())]
    monkeypatch.setattr(optimize, "run_lbfgs", real)
    _die_in_the_second_segment(monkeypatch)
    assert cli.main(["--resume", ckpt, "-q"]) == cli.EXIT_INTERRUPTED
    assert load_checkpoint(ckpt)[0]["argv"] == argv   # the same run: nothing added
