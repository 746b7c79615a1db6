"""Image reading (modes, EXIF, bad files, limits), atomic writing, resizing, colour transfer, samples."""
import os

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from nst_numpy import image as I
from nst_numpy.samples import landscape, swirls


def _gradient(h=24, w=32):
    """A (h, w, 3) uint8 test picture with distinct rows, columns and channels."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) % 256], axis=2).astype(np.uint8)


def test_load_rgb_png_round_trips(tmp_path):
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "a.png")
    rgb = I.load_image(tmp_path / "a.png")
    assert rgb.dtype == np.float32 and rgb.shape == (24, 32, 3)
    assert np.array_equal(rgb.astype(np.uint8), arr)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1"])
def test_load_converts_modes_to_rgb(tmp_path, mode):
    src = Image.fromarray(_gradient()).convert(mode)
    path = tmp_path / ("a.tif" if mode == "CMYK" else "a.png")
    src.save(path)
    rgb = I.load_image(path)
    assert rgb.shape == (24, 32, 3)
    assert np.allclose(rgb, np.asarray(src.convert("RGB"), np.float32), atol=1)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 255)   # opaque red
    rgba[:, 10:] = (0, 0, 255, 0)     # fully transparent blue -> white
    rgba[0, 0] = (0, 0, 0, 128)       # half-transparent black -> grey
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = I.load_image(tmp_path / "a.png")
    assert np.allclose(rgb[5, 5], (255, 0, 0)) and np.allclose(rgb[5, 15], (255, 255, 255))
    assert np.allclose(rgb[0, 0], 255 * (1 - 128 / 255), atol=0.01)


def test_palette_with_transparency_is_composited(tmp_path):
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    im.paste(1, (0, 0, 10, 20))
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    rgb = I.load_image(tmp_path / "p.png")
    assert np.allclose(rgb[5, 5], (10, 200, 30)) and np.allclose(rgb[5, 15], (255, 255, 255))


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_images_are_scaled_to_0_255(tmp_path, mode):
    a = (np.linspace(0, 65535, 20 * 20).reshape(20, 20)).astype(np.uint16)
    im = Image.fromarray(a) if mode == "I;16" else Image.fromarray(a.astype(np.int32), "I")
    path = tmp_path / ("g.png" if mode == "I;16" else "g.tif")  # Pillow writes 32-bit "I" as TIFF only
    im.save(path)
    rgb = I.load_image(path)
    assert rgb.shape == (20, 20, 3)
    assert rgb.max() == pytest.approx(255, abs=0.01) and rgb.min() == pytest.approx(0, abs=0.01)
    assert np.allclose(rgb[..., 0], a / 257.0, atol=0.01)


def test_a_dark_16_bit_image_stays_dark(tmp_path):
    """Values 0..200 of 65535 are 16-bit by the file's mode: 0..0.78 after scaling, not 0..200."""
    a = (np.arange(20 * 20).reshape(20, 20) % 201).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "dark.png")
    rgb = I.load_image(tmp_path / "dark.png")
    assert np.allclose(rgb[..., 0], a / 257.0, atol=0.01) and rgb.max() < 1


def test_float_image_in_0_1(tmp_path):
    a = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    Image.fromarray(a, "F").save(tmp_path / "f.tif")
    rgb = I.load_image(tmp_path / "f.tif")
    assert rgb.max() == pytest.approx(255, abs=0.01)


def test_float_image_with_nan_is_refused(tmp_path):
    a = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    a[3, 4] = np.nan
    Image.fromarray(a, "F").save(tmp_path / "nan.tif")
    with pytest.raises(I.ImageError, match="nan.tif: .*its pixels include NaN or infinite values"):
        I.load_image(tmp_path / "nan.tif")


def test_exif_orientation_is_applied(tmp_path):
    arr = _gradient(24, 32)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif, quality=95)
    rgb = I.load_image(tmp_path / "r.jpg")
    assert rgb.shape == (32, 24, 3)  # upright: portrait
    expected = np.rot90(arr, k=-1).astype(np.float32)
    assert np.mean(np.abs(rgb - expected)) < 8  # JPEG noise only


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"hello, I am not a picture\n", "not an image"),
])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(I.ImageError, match=match):
        I.load_image(p)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    p = tmp_path / "t.img"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(p, format=fmt)
    data = p.read_bytes()
    p.write_bytes(data[:len(data) // 2])
    with pytest.raises(I.ImageError, match="cannot read|not an image"):
        I.load_image(p)


def test_missing_and_directory(tmp_path):
    with pytest.raises(I.ImageError, match="no such file"):
        I.load_image(tmp_path / "nope.png")
    with pytest.raises(I.ImageError, match="directory"):
        I.load_image(tmp_path)


def test_too_small(tmp_path):
    Image.fromarray(_gradient(15, 40)).save(tmp_path / "s.png")
    with pytest.raises(I.ImageError, match="too small"):
        I.load_image(tmp_path / "s.png")


def test_pixel_limit_unless_shrunk(tmp_path):
    Image.fromarray(_gradient(60, 80)).save(tmp_path / "big.png")
    with pytest.raises(I.ImageError, match="megapixels"):
        I.load_image(tmp_path / "big.png", max_pixels=4000)
    assert I.load_image(tmp_path / "big.png", max_side=40, max_pixels=4000).shape == (60, 80, 3)


def test_big_jpeg_is_decoded_small(tmp_path):
    """A JPEG over twice max_side is decoded at a power-of-two reduction (Pillow's draft: JPEG's DCT
    scaling), at least max_side on its long side; the picture is the same, only smaller."""
    Image.fromarray(_gradient(240, 320)).save(tmp_path / "big.jpg", quality=95)
    small = I.load_image(tmp_path / "big.jpg", max_side=40)
    assert small.shape == (30, 40, 3)   # 1/8: the largest reduction that keeps 40 px
    full = I.load_image(tmp_path / "big.jpg")
    assert full.shape == (240, 320, 3)
    reference = np.asarray(Image.fromarray(full.astype(np.uint8)).resize((40, 30), Image.BOX), np.float32)
    assert np.abs(small - reference).mean() < 4   # levels out of 255
    # A thin one keeps MIN_SIDE (16) on its short side: 1/4 (25 px), not 1/8 (13 px, "too small")
    Image.fromarray(_gradient(100, 400)).save(tmp_path / "thin.jpg", quality=95)
    assert I.load_image(tmp_path / "thin.jpg", max_side=40).shape == (25, 100, 3)
    # The same for a PNG's box reduction (image._reduced): 16 px on the short side, not 2 px ("too small")
    Image.fromarray(_gradient(48, 960)).save(tmp_path / "thin.png")
    assert I.load_image(tmp_path / "thin.png", max_side=40).shape == (16, 320, 3)


def test_big_png_is_box_reduced_first_to_the_same_picture(tmp_path):
    """Other formats have no draft: an image over REDUCING_GAP (3) times max_side is box-averaged k times
    as it is read, and the picture resized to max_side is the one the full read gives, in every mode."""
    rng = np.random.default_rng(0)
    blobs = rng.integers(0, 256, (15, 20, 3), dtype=np.uint8)   # 40 px each, 2 px at the final size
    texture = np.asarray(Image.fromarray(blobs).resize((800, 600), Image.BICUBIC))
    Image.fromarray(texture).save(tmp_path / "big.png")
    small = I.load_image(tmp_path / "big.png", max_side=40)
    assert small.shape == (100, 133, 3)   # k = 800 // (3 * 40) = 6: 600 / 6, round(800 / 6)
    full = I.load_image(tmp_path / "big.png")
    assert full.shape == (600, 800, 3)
    hw = I.fit_size(full.shape, 40)
    assert np.abs(I.resize(small, hw) - I.resize(full, hw)).mean() < 1   # levels out of 255
    assert I.load_image(tmp_path / "big.png", max_side=300).shape == (600, 800, 3)   # within 3x: whole

    def same_picture(path, mode_reduced=True):
        small, full = I.load_image(path, max_side=40), I.load_image(path)
        assert (small.shape[:2] != full.shape[:2]) == mode_reduced
        return np.abs(I.resize(small, hw) - I.resize(full, hw)).mean()

    # Alpha: Pillow averages premultiplied colour, so the result is the average of the picture on
    # white. Here every other row is transparent black: averaging the unpremultiplied channels (what
    # RGBA holds) and then compositing is off by 31 levels, as the shape check alone would not see.
    rgba = np.dstack([texture, np.full((600, 800), 255, np.uint8)])
    rgba[1::2] = 0
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    assert same_picture(tmp_path / "alpha.png") < 1
    # A palette is made RGB first (indices are no values to average); 16-bit grey averages as it is.
    Image.fromarray(texture).quantize(64).save(tmp_path / "palette.png")
    assert same_picture(tmp_path / "palette.png") < 1
    Image.fromarray((texture[:, :, 0].astype(np.uint16) * 257)).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    assert same_picture(tmp_path / "grey16.png") < 1
    # 32-bit float and integer are scaled by their largest value as decoded, which averaging lowers:
    # the mode and that value are taken first (image._grey_source). Big-endian 16-bit goes to 32-bit I
    # to be averaged, and still scales as 16-bit, however dark.
    # One bright pixel sets the scale of each; averaged, it would no longer.
    grey = texture[:, :, 0]
    f = grey.astype(np.float32) / 255
    f[5, 7] = 1.5   # over 1: the values are levels, not fractions (black here)
    Image.fromarray(f).save(tmp_path / "float.tiff")
    assert same_picture(tmp_path / "float.tiff") < 0.1 and I.load_image(tmp_path / "float.tiff", 40).max() < 2
    i32 = grey.astype(np.int32) * 200
    i32[5, 7] = 200_000   # over 16 bits: stretched to it
    Image.fromarray(i32, "I").save(tmp_path / "i32.tiff")
    assert same_picture(tmp_path / "i32.tiff") < 1 and I.load_image(tmp_path / "i32.tiff", 40).max() < 70
    Image.fromarray(grey.astype(">u2")).save(tmp_path / "dark16b.tiff")   # 0..255 of 65535
    assert Image.open(tmp_path / "dark16b.tiff").mode == "I;16B"
    assert same_picture(tmp_path / "dark16b.tiff") < 0.1 and I.load_image(tmp_path / "dark16b.tiff", 40).max() < 1
    # A transparent colour in 16-bit grey is ignored reduced as unreduced (RGBA would clip it to white).
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "trns16.png", transparency=0)
    assert Image.open(tmp_path / "trns16.png").info.get("transparency") == 0
    assert same_picture(tmp_path / "trns16.png") < 1
    bad = grey.astype(np.float32)
    bad[3, 4] = np.nan   # NaN survives the averaging, and is refused after it
    Image.fromarray(bad).save(tmp_path / "nan.tiff")
    with pytest.raises(I.ImageError, match="NaN"):
        I.load_image(tmp_path / "nan.tiff", max_side=40)
    exif = Image.Exif()
    exif[0x0112] = 6   # "rotate 90 CW to display": the orientation survives the reduction
    Image.fromarray(texture).save(tmp_path / "turned.png", exif=exif)
    assert I.load_image(tmp_path / "turned.png", max_side=40).shape == (133, 100, 3)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.fromarray(_gradient(60, 80)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses > 2x this
    with pytest.raises(I.ImageError, match="too many pixels"):
        I.load_image(tmp_path / "bomb.png", max_side=16)


def test_save_png_records_text_atomically(tmp_path):
    out = tmp_path / "o.png"
    rgb = np.random.default_rng(1).uniform(-20, 280, (20, 30, 3))
    I.save_image(out, rgb, {"Parameters": "size=30\nseed=1"})
    im = Image.open(out)
    assert im.size == (30, 20) and im.text["Parameters"] == "size=30\nseed=1"
    assert np.array_equal(np.asarray(im), np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    assert os.listdir(tmp_path) == ["o.png"]  # no temporary file left


def test_save_by_extension(tmp_path):
    rgb = _gradient().astype(np.float32)
    I.save_image(tmp_path / "o.jpg", rgb)
    assert Image.open(tmp_path / "o.jpg").format == "JPEG"
    with pytest.raises(I.ImageError, match="unknown output format"):
        I.save_image(tmp_path / "o.xyz", rgb)
    with pytest.raises(I.ImageError, match="unknown output format"):
        I.check_output_path(tmp_path / "noextension")
    with pytest.raises(I.ImageError, match="is a directory; name a file in it"):   # not "no extension"
        I.check_output_path(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["o.jpg"]


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, fp, *a, **k):
        fp.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "save", broken, raising=False)
    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(I.ImageError, match="disk full"):
        I.save_image(tmp_path / "o.png", _gradient().astype(np.float32))
    assert os.listdir(tmp_path) == []


def test_check_output_path(tmp_path, monkeypatch):
    I.check_output_path(tmp_path / "fine.png")
    with pytest.raises(I.ImageError, match="^the output path is empty$"):
        I.check_output_path("")
    with pytest.raises(I.ImageError, match="does not exist"):
        I.check_output_path(tmp_path / "no" / "such" / "dir.png")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(I.ImageError, match="directory"):
        I.check_output_path(tmp_path / "d.png")
    (tmp_path / "locked.png").write_bytes(b"")
    monkeypatch.setattr(os, "access", lambda path, mode: False)   # as a non-root user sees a read-only file
    with pytest.raises(I.ImageError, match="locked.png: not writable"):
        I.check_output_path(tmp_path / "locked.png")


def test_upsample_keeps_bicubic_overshoot_inside_the_pixel_range():
    """A hard 0/255 edge upsampled bicubically overshoots (to about -18 and 273); upsample clips it, as
    the next scale's start must be a picture."""
    edge = np.zeros((16, 16, 3), np.float32); edge[:, 8:] = 255
    up = I.upsample(edge, (32, 32))
    assert up.shape == (32, 32, 3) and up.min() >= 0 and up.max() <= 255
    raw = I.resize(edge, (32, 32), Image.BICUBIC)
    assert raw.min() < -1 and raw.max() > 256   # control: without the clip it would leave the range


def test_the_temporary_file_is_hidden_beside_the_output_and_fits_a_long_name(tmp_path):
    """fileio.atomic_path writes .NAME.PID.XXXXXXXX.tmp in the output's own folder (so the rename is atomic and
    a half-written file is hidden), and cuts NAME to 100 bytes, not 100 characters: a 244-byte name of
    3-byte characters still leaves room for the random part under the usual 255-byte limit."""
    from nst_numpy.fileio import atomic_path
    with atomic_path(tmp_path / "o.png") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".o.png.")
    long_name = "日" * 80 + ".png"   # 244 bytes in UTF-8
    I.save_image(tmp_path / long_name, np.zeros((16, 16, 3)))
    assert sorted(os.listdir(tmp_path)) == sorted(["o.png", long_name])


def test_fit_size_and_resize():
    assert I.fit_size((300, 400), 100) == (75, 100)
    assert I.fit_size((400, 300), 100) == (100, 75)
    # Rounded, not truncated: 49 * (16 / 49) is 15.999... in floating point, and --size 16 must give 16 px
    assert I.fit_size((30, 49), 16) == (10, 16) and I.fit_size((2, 3), 100) == (67, 100)
    img = np.random.default_rng(2).uniform(0, 255, (30, 40, 3)).astype(np.float32)
    small = I.resize(img, (15, 20))
    assert small.shape == (15, 20, 3) and small.dtype == np.float32
    assert abs(small.mean() - img.mean()) < 2
    flat = I.resize(np.full((30, 40, 3), 77.0, np.float32), (60, 80))
    assert np.allclose(flat, 77.0, atol=1e-3)


def test_yiq_round_trip_and_luminance():
    rgb = np.random.default_rng(3).uniform(0, 255, (8, 8, 3))
    assert np.allclose(I.yiq_to_rgb(I.rgb_to_yiq(rgb)), rgb, atol=1e-9)
    grey = I.luminance(rgb)
    assert np.allclose(grey[..., 0], 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
    assert np.allclose(grey[..., 0], grey[..., 2])


def test_luminance_only_helpers():
    rng = np.random.default_rng(4)
    content = rng.uniform(60, 200, (16, 16, 3))
    style = rng.uniform(0, 120, (20, 20, 3))
    matched = I.match_luminance(style, content)
    yc = I.luminance(content)[..., 0]
    assert matched[..., 0].mean() == pytest.approx(yc.mean(), abs=0.5)
    assert matched[..., 0].std() == pytest.approx(yc.std(), rel=0.05)
    out = I.with_luminance_of(I.luminance(style[:16, :16]), content)
    yiq_out, yiq_c = I.rgb_to_yiq(out.astype(np.float64)), I.rgb_to_yiq(content)
    inside = (out > 1).all(axis=2) & (out < 254).all(axis=2)  # where no channel was clipped
    assert np.allclose(yiq_out[inside][:, 1:], yiq_c[inside][:, 1:], atol=0.01)
    assert np.allclose(yiq_out[inside][:, 0], I.luminance(style[:16, :16])[inside][:, 0], atol=0.01)
    # White's luminance with pure red's colour lies outside RGB (red would be 255 + ...): clipped to 0..255
    red = np.zeros((4, 4, 3)); red[..., 0] = 255
    bright = I.with_luminance_of(np.full((4, 4, 3), 255.0), red)
    assert bright.min() >= 0 and bright.max() <= 255 and bright.max() == pytest.approx(255)


def test_transfer_colors_matches_mean_and_covariance():
    rng = np.random.default_rng(5)
    content = rng.normal((120, 100, 80), (20, 15, 10), (32, 32, 3)).clip(0, 255)
    mix = np.array([[1.0, 0.3, 0.0], [0.2, 0.8, 0.1], [0.0, 0.5, 0.6]])
    style = (rng.normal(0, 12, (40, 40, 3)) @ mix + (90, 140, 110)).clip(0, 255)
    out = I.transfer_colors(style, content).reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3)
    assert np.allclose(out.mean(0), c.mean(0), atol=0.5)
    assert np.allclose(np.cov(out, rowvar=False), np.cov(c, rowvar=False), atol=3)
    # Negative control: the style's own colours are far from the content's.
    assert not np.allclose(style.reshape(-1, 3).mean(0), c.mean(0), atol=5)


def test_samples_are_deterministic_images():
    for make, shape in ((landscape, (48, 64)), (swirls, (40, 40))):
        a, b = make(*shape), make(*shape)
        assert a.shape == shape + (3,) and a.dtype == np.float32
        assert 0 <= a.min() and a.max() <= 255 and a.std() > 20  # not blank
        assert np.array_equal(a, b)


def test_saved_image_gets_the_umask_mode_not_mkstemps(tmp_path):
    from nst_numpy.fileio import default_file_mode
    out = tmp_path / "o.png"
    I.save_image(out, np.zeros((4, 4, 3)))
    assert out.stat().st_mode & 0o777 == default_file_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temporary left behind


def test_shipped_samples_load_and_stay_small():
    """The default run's photo and painting ship in the package, each under 200 KB, with a licence line."""
    from nst_numpy import samples
    for path, load, shape in ((samples.PHOTO, samples.photo, (300, 451, 3)),
                              (samples.PAINTING, samples.painting, (320, 512, 3))):
        assert path.stat().st_size < 200_000, path
        img = load()
        assert img.shape == shape and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 255
        assert path.name in samples.__doc__
    assert "CC0" in samples.__doc__ and "public domain" in samples.__doc__


def test_the_umask_is_read_without_changing_it(monkeypatch):
    """From /proc on Linux, else by setting and restoring it: both give the umask in force."""
    import builtins
    from nst_numpy import fileio
    old = os.umask(0o027)
    try:
        assert fileio.default_file_mode() == 0o640
        if os.path.exists("/proc/self/status"):   # Linux: /proc answers, and os.umask is never called
            with monkeypatch.context() as m:
                m.setattr(os, "umask", lambda *a: pytest.fail("the umask was set to read it"))
                assert fileio.default_file_mode() == 0o640
        real_open = builtins.open

        def no_proc(path, *a, **k):
            if str(path).startswith("/proc"):
                raise OSError("no /proc here")
            return real_open(path, *a, **k)
        monkeypatch.setattr(builtins, "open", no_proc)
        assert fileio.default_file_mode() == 0o640
        assert os.umask(0o027) == 0o027   # and it is still in force
    finally:
        os.umask(old)


def test_an_output_that_is_a_symlink_stays_one(tmp_path):
    """Writing through a link replaces the file it names, not the link."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.png"
    I.save_image(target, np.zeros((16, 16, 3)))
    link = tmp_path / "out.png"
    link.symlink_to(target)
    I.save_image(link, np.full((16, 16, 3), 255.0))
    assert link.is_symlink() and np.all(I.load_image(target) == 255)


@pytest.mark.parametrize("fmt, ext", [("AVIF", "avif"), ("JPEG2000", "jp2"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_formats_phones_and_the_web_use_are_read(tmp_path, fmt, ext):
    """load_image opens only listed raster formats (image.READ_FORMATS, so that no outside tool runs);
    the formats users bring must be on it."""
    path = tmp_path / f"p.{ext}"
    try:
        Image.fromarray(np.full((20, 24, 3), 128, np.uint8)).save(path, format=fmt)
    except (KeyError, OSError):
        pytest.skip(f"this Pillow cannot write {fmt}")
    assert I.load_image(path).shape == (20, 24, 3)
