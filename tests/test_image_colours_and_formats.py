"""Pictures as they leave the run: colour arithmetic (YIQ, luminance transfer), deep integer images, and
the options each output format is written with."""
import numpy as np
import pytest
from PIL import Image

from nst_numpy import image as I


def test_lossy_and_palette_outputs_keep_the_strokes(tmp_path):
    """JPEG keeps full-resolution colour (4:4:4), WebP is lossless, and GIF (256 colours) is refused."""
    from PIL import JpegImagePlugin
    rgb = np.random.default_rng(0).uniform(0, 255, (24, 40, 3)).astype(np.float32)   # every pixel its own colour
    I.save_image(tmp_path / "o.jpg", rgb)
    with Image.open(tmp_path / "o.jpg") as im:
        assert JpegImagePlugin.get_sampling(im) == 0   # 0: 4:4:4; Pillow's default is 2 (4:2:0)
    I.save_image(tmp_path / "o.webp", rgb)
    with Image.open(tmp_path / "o.webp") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), I.to_uint8(rgb))
    with pytest.raises(I.ImageError, match="GIF holds 256 colours"):
        I.check_output_path(tmp_path / "o.gif")
    with pytest.raises(I.ImageError, match="an icon holds at most 256x256 px"):
        I.check_output_path(tmp_path / "o.ico")
    from PIL import features
    # Quality 95 in 4:4:4: 16 and 11 levels off at worst, against 216 and 225 with Pillow's defaults.
    # (Pillow has AVIF from 11.2; setup.cfg allows 10.3.)
    for ext, worst in ((".mpo", 32), (".avif", 32)) if features.check("avif") else ((".mpo", 32),):
        I.save_image(tmp_path / ("o" + ext), rgb)
        with Image.open(tmp_path / ("o" + ext)) as im:
            off = np.abs(np.asarray(im.convert("RGB"), np.int16) - I.to_uint8(rgb))
        assert off.max() <= worst, (ext, off.max())


def test_a_pure_luminance_change_adds_no_colour():
    """A sign typo in the I row of _RGB_TO_YIQ once survived every test. Y with I = Q = 0 is grey, so putting a
    grey picture's luminance on a grey content must stay grey; and the matrix is BT.601's."""
    assert np.allclose(I.yiq_to_rgb(np.array([[[100.0, 0.0, 0.0]]])), 100.0, atol=1e-6)
    grey_style = np.full((8, 8, 3), 200.0)
    grey_content = np.full((8, 8, 3), 50.0)
    out = I.with_luminance_of(grey_style, grey_content)
    assert np.allclose(out, 200.0, atol=1e-3)
    # white has no chroma: I = Q = 0
    assert np.allclose(I.rgb_to_yiq(np.full((1, 1, 3), 255.0))[..., 1:], 0, atol=1e-3)


def test_a_dark_32_bit_image_holding_16_bit_data_stays_dark(tmp_path):
    """A 32-bit "I" TIFF whose largest value is 1000 (of 65535) is scaled as 16-bit
    data, 0..3.9, not stretched to 0..255 (the test of I;16 PNGs does not reach this branch)."""
    a = (np.arange(20 * 20).reshape(20, 20) % 1001).astype(np.int32)
    a[0, 0] = 1000
    Image.fromarray(a, "I").save(tmp_path / "dark.tif")
    rgb = I.load_image(tmp_path / "dark.tif")
    assert np.allclose(rgb[..., 0], a / 257.0, atol=0.01) and rgb.max() < 4
