"""Image and mask I/O: any common pixel format becomes RGB uint8; bad files are named, not tracebacks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from prodseg.data.imageio import list_images, read_image, read_mask, write_image, write_mask
from prodseg.errors import BadInput


def test_rgb_png_round_trip_is_exact_and_channel_order_kept(tmp_path) -> None:
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200  # red
    write_image(tmp_path / "a.png", rgb)
    assert cv2.imread(str(tmp_path / "a.png"))[0, 0].tolist() == [0, 0, 200]  # BGR on disk
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)


def test_jpeg_quality_is_applied(tmp_path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    small = write_image(tmp_path / "q10.jpg", rgb, quality=10).stat().st_size
    big = write_image(tmp_path / "q95.jpg", rgb, quality=95).stat().st_size
    assert small < big
    assert read_image(tmp_path / "q95.jpg").shape == (64, 64, 3)


@pytest.mark.parametrize(
    "pixels, expected",
    [
        (np.full((4, 4), 77, np.uint8), [77, 77, 77]),  # grayscale
        (np.dstack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30, 40)]), [30, 20, 10]),  # BGRA
        (np.full((4, 4, 3), 0x1234, np.uint16), [0x12, 0x12, 0x12]),  # 16-bit
        (np.full((4, 4), 0xFF00, np.uint16), [0xFF, 0xFF, 0xFF]),  # 16-bit grayscale
    ],
)
def test_other_pixel_formats_become_rgb_uint8(tmp_path, pixels, expected) -> None:
    cv2.imwrite(str(tmp_path / "x.png"), pixels)
    img = read_image(tmp_path / "x.png")
    assert img.dtype == np.uint8 and img.shape == (4, 4, 3)
    assert img[0, 0].tolist() == expected


def test_missing_and_corrupt_images(tmp_path) -> None:
    with pytest.raises(BadInput, match="nope.jpg: file not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(BadInput, match="bad.jpg: cannot decode the image"):
        read_image(tmp_path / "bad.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadInput, match="empty.png: cannot decode"):
        read_image(tmp_path / "empty.png")


def test_mask_round_trip_and_formats(tmp_path) -> None:
    m = np.array([[0, 1, 255], [9, 3, 0]], np.uint8)
    write_mask(tmp_path / "m.png", m)
    assert np.array_equal(read_mask(tmp_path / "m.png"), m)
    cv2.imwrite(str(tmp_path / "m16.png"), m.astype(np.uint16))
    got = read_mask(tmp_path / "m16.png")
    assert got.dtype == np.uint8 and np.array_equal(got, m)


def test_bad_masks(tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(BadInput, match="rgb.png: label masks must be single-channel.*--from color-masks"):
        read_mask(tmp_path / "rgb.png")
    cv2.imwrite(str(tmp_path / "big.png"), np.full((3, 3), 300, np.uint16))
    with pytest.raises(BadInput, match="big.png: label value 300 does not fit"):
        read_mask(tmp_path / "big.png")
    with pytest.raises(ValueError, match="masks are uint8"):
        write_mask(tmp_path / "f.png", np.zeros((3, 3), np.float32))


def test_writes_leave_no_temporary_files(tmp_path) -> None:
    write_image(tmp_path / "a.jpg", np.zeros((4, 4, 3), np.uint8))
    write_mask(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]


def test_unknown_extension_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="cannot encode '.xyz'"):
        write_image(tmp_path / "a.xyz", np.zeros((4, 4, 3), np.uint8))


def test_list_images_sorted_images_only(tmp_path) -> None:
    for name in ("b.JPG", "a.png", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.webp"]


FORMATS = [
    (".png", []),
    (".jpg", []),
    (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    (".bmp", []),
    (".tif", []),
    (".webp", []),
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
]


@pytest.mark.parametrize("ext, params", FORMATS)
@pytest.mark.parametrize("shape", [(7, 13, 3), (33, 5), (20, 30, 4), (1, 1, 3)])
def test_declared_size_matches_the_decoded_image(tmp_path, ext, params, shape) -> None:
    from prodseg.data.imagesize import declared_size

    path = tmp_path / f"x{ext}"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8), params)
    h, w = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
    assert declared_size(path) == (w, h)


def test_declared_size_of_jpeg_with_exif_and_bigtiff(tmp_path) -> None:
    pil = pytest.importorskip("PIL.Image")
    from prodseg.data.imagesize import declared_size

    img = pil.new("RGB", (37, 21))
    exif = pil.Exif()
    exif[0x010E] = "x" * 3000  # a long APP1 segment before the frame header
    img.save(tmp_path / "e.jpg", exif=exif)
    img.save(tmp_path / "b.tif", big_tiff=True)
    assert declared_size(tmp_path / "e.jpg") == (37, 21)
    assert declared_size(tmp_path / "b.tif") == (37, 21)


def test_size_limit_is_checked_before_decoding(tmp_path, monkeypatch) -> None:
    from tests.data.test_hostile import png_header

    (tmp_path / "bomb.png").write_bytes(png_header(20000, 20000))  # ~100 bytes, 1.2 GB decoded
    with pytest.raises(
        BadInput,
        match=r"bomb.png: image size 20000x20000 \(WxH, 400,000,000 pixels\) "
        r"is above the limit of 100,000,000 pixels; .*PRODSEG_MAX",
    ):
        read_image(tmp_path / "bomb.png")
    write_image(tmp_path / "a.png", np.zeros((8, 10, 3), np.uint8))
    monkeypatch.setenv("PRODSEG_MAX_IMAGE_PIXELS", "79")
    with pytest.raises(BadInput, match="a.png: image size 10x8 .* limit of 79 pixels"):
        read_mask(tmp_path / "a.png")
    monkeypatch.setenv("PRODSEG_MAX_IMAGE_PIXELS", "80")
    assert read_image(tmp_path / "a.png").shape == (8, 10, 3)
    monkeypatch.setenv("PRODSEG_MAX_IMAGE_PIXELS", "many")
    with pytest.raises(BadInput, match="PRODSEG_MAX_IMAGE_PIXELS='many': expected a positive number"):
        read_image(tmp_path / "a.png")


def test_header_that_is_not_an_image_format(tmp_path) -> None:
    (tmp_path / "x.png").write_bytes(b"P6\n4 4\n255\n" + bytes(48))  # a PPM named .png
    with pytest.raises(BadInput, match=r"x.png: cannot decode the image \(not a PNG, JPEG, BMP, TIFF"):
        read_image(tmp_path / "x.png")
