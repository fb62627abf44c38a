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


@pytest.mark.parametrize("pixels, expected", [
    (np.full((4, 4), 77, np.uint8), [77, 77, 77]),  # grayscale
    (np.dstack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30, 40)]), [30, 20, 10]),  # BGRA
    (np.full((4, 4, 3), 0x1234, np.uint16), [0x12, 0x12, 0x12]),  # 16-bit
    (np.full((4, 4), 0xFF00, np.uint16), [0xFF, 0xFF, 0xFF]),  # 16-bit grayscale
])
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
