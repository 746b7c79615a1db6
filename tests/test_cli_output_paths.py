"""The command line's output paths: never an input, long names (in bytes, not characters) written."""
import os

import numpy as np
import pytest
from PIL import Image

from nst_numpy import cli
from test_cli import _picture, _run, shared_random_networks  # noqa: F401 (an autouse fixture: imported, it applies here)


@pytest.mark.parametrize("flag", ["--content", "--style", "--init"])
def test_the_output_may_not_be_an_input(tmp_path, flag):
    """-o naming an input (here through another spelling of its path) would overwrite it: refused."""
    photo = tmp_path / "photo.png"
    _picture(photo)
    before = photo.read_bytes()
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", flag, photo,
                        "-o", tmp_path / "." / "photo.png"])
    assert status == 2 and "is also an input" in err and err.count("\n") == 1
    assert photo.read_bytes() == before
    status, _ = _run(["--weights", "random", "--size", "32", "--iterations", "1", "-q", flag, photo,
                      "-o", tmp_path / "other.png"])
    assert status == 0 and photo.read_bytes() == before   # the control: another output is fine


def test_a_long_output_name_the_file_system_allows_is_written(tmp_path):
    """A 250-byte name (the limit is 255): its temporary file's name must not be the one that is too long."""
    out = tmp_path / ("a" * 246 + ".png")
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "-q", "-o", out])
    assert status == 0 and out.exists(), err


def test_a_long_non_ascii_output_name_is_written(tmp_path):
    """80 three-byte characters and .png: 244 bytes. The temporary name is cut by bytes, not characters."""
    out = tmp_path / ("猫" * 80 + ".png")
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "-q", "-o", out])
    assert status == 0 and out.exists(), err


def test_without_pathconf_names_are_held_to_255_bytes(tmp_path, monkeypatch):
    from nst_numpy.image import ImageError, check_writable

    def no_answer(*a):
        raise OSError("no pathconf here")
    monkeypatch.setattr(os, "pathconf", no_answer)
    check_writable(tmp_path / ("a" * 251 + ".png"))                  # 255 bytes: fine
    with pytest.raises(ImageError, match="longer than the 255 bytes"):
        check_writable(tmp_path / ("a" * 252 + ".png"))


def test_a_snapshot_name_linked_to_an_input_is_refused(tmp_path):
    """A snapshot is written to the file its link names: o_0002.png linked to the photo would overwrite it."""
    photo = tmp_path / "photo.png"
    _picture(photo)
    before = photo.read_bytes()
    os.symlink(photo, tmp_path / "o_0002.png")
    args = ["--weights", "random", "--size", "32", "--iterations", "2", "-q", "--content", photo, "-o", tmp_path / "o.png"]
    status, err = _run(args + ["--save-every", "2"])
    assert status == 2 and "--save-every would write a snapshot over it" in err and err.count("\n") == 1
    assert photo.read_bytes() == before and not (tmp_path / "o.png").exists()
    status, err = _run(args)   # the control: without snapshots the link is no concern
    assert status == 0 and photo.read_bytes() == before, err


def test_a_non_utf8_input_name_is_recorded_with_escapes(tmp_path):
    """The PNG's text records the inputs' names; one that is not UTF-8 must not fail the save after the run."""
    if os.name != "posix":
        pytest.skip("byte file names are POSIX")
    photo = os.path.join(os.fsencode(tmp_path), b"p\xff.png").decode(errors="surrogateescape")
    _picture(photo)
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "-q", "--content", photo,
                        "-o", tmp_path / "o.png"])
    from PIL import Image
    assert status == 0, err
    assert "p\\udcff.png" in Image.open(tmp_path / "o.png").text["Parameters"]


def test_an_init_image_a_few_percent_off_in_aspect_is_noted(tmp_path):
    """The other init test's image is 4:1 against 3:2, far past any
    threshold. 64x40 (1.6) against the output's 32x21 (1.52) is 5% apart: stretched, and said."""
    init = tmp_path / "init.png"
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(init)
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "1", "--init", init,
                        "-o", tmp_path / "o.png"])
    assert status == 0 and f"note: --init {init} is 64x40, stretched to the output's 32x21" in err, err


def test_two_lost_snapshots_are_counted_at_the_end(tmp_path, monkeypatch):
    """The full-disk test loses 3 snapshots; with 2 the summary is due too."""
    real = cli.save_image

    def full_disk_for_snapshots(path, *a, **k):
        if "_000" in os.path.basename(str(path)):
            raise cli.ImageError(f"{path}: cannot write ([Errno 28] No space left on device)")
        return real(path, *a, **k)
    monkeypatch.setattr(cli, "save_image", full_disk_for_snapshots)
    status, err = _run(["--weights", "random", "--size", "32", "--iterations", "2", "--save-every", "1",
                        "-o", tmp_path / "o.png", "-q"])
    assert status == 0 and "warning: 2 snapshots could not be written (steps 1–2)" in err, err
