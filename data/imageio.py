"""Image and mask I/O with OpenCV: RGB uint8 images, uint8 label masks, clear errors on bad files.

Grayscale, RGBA and 16-bit images are converted, not refused.

Size limit: every image read here is bounded BEFORE it is decoded. The width and height declared
in the file header (`prodseg.data.imagesize`) may multiply to at most 100 megapixels (100,000,000
pixels: a 12000x8000 photo fits, a 20000x20000 decompression bomb does not); a larger image is
refused as bad input naming the file, its size and the limit. Set the environment variable
PRODSEG_MAX_IMAGE_PIXELS (a positive integer, pixels) to raise or lower it. The same limit applies to
the sizes a COCO file declares for its images.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from prodseg.atomic import atomic_path
from prodseg.data.imagesize import HeaderError, declared_size
from prodseg.errors import BadInput

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS_ENV = "PRODSEG_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000


def _unreadable(path: Path, detail: str = "corrupt or not an image") -> BadInput:
    return BadInput(f"{path}: cannot decode the image ({detail}); replace or remove it")


def max_image_pixels() -> int:
    """The image size limit in pixels: PRODSEG_MAX_IMAGE_PIXELS, else 100 megapixels."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise BadInput(
            f"{MAX_PIXELS_ENV}={text!r}: expected a positive number of pixels, "
            f"e.g. {DEFAULT_MAX_PIXELS}; fix or unset the variable"
        )
    return value


def check_image_size(width: int, height: int, where: str) -> None:
    """BadInput unless width x height is a positive size within `max_image_pixels()`."""
    if width <= 0 or height <= 0:
        raise BadInput(f"{where}: image size {width}x{height} (WxH) is not a positive size; fix the file")
    limit = max_image_pixels()
    if width * height > limit:
        raise BadInput(
            f"{where}: image size {width}x{height} (WxH, {width * height:,} pixels) is above the "
            f"limit of {limit:,} pixels; downscale it, or raise the limit with "
            f"{MAX_PIXELS_ENV}=<pixels> if the machine has the memory"
        )


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) declared by an image file's header, checked against the size limit."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    try:
        width, height = declared_size(path)
    except HeaderError as exc:
        raise _unreadable(path, f"{exc}: corrupt or not an image") from exc
    check_image_size(width, height, str(path))
    return width, height


def _decode(path: Path, flags: int) -> np.ndarray:
    width, height = image_size(path)  # before decoding: a tiny file may declare a huge image
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise _unreadable(path)
    if img.shape[:2] != (height, width):  # a decoder that disagrees with the header we bounded
        raise _unreadable(path, f"decodes to {img.shape[1]}x{img.shape[0]}, its header says {width}x{height}")
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale 16-bit (or float) pixel data to uint8."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Any OpenCV decode (gray, BGR, BGRA) to RGB uint8 HxWx3."""
    img = to_uint8(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3)."""
    return to_rgb(_decode(Path(path), cv2.IMREAD_UNCHANGED))


def read_mask(path: str | Path) -> np.ndarray:
    """Read a label mask PNG as uint8 (H, W): class index per pixel, 255 = ignore."""
    path = Path(path)
    m = _decode(path, cv2.IMREAD_UNCHANGED)
    if m.ndim == 3:
        raise BadInput(
            f"{path}: label masks must be single-channel class indices, got {m.shape[2]} channels; "
            "convert colour masks with `prodseg-data convert --from color-masks`"
        )
    if m.dtype != np.uint8:
        if m.max() > 255:
            raise BadInput(f"{path}: label value {int(m.max())} does not fit a uint8 mask (max 255)")
        m = m.astype(np.uint8)
    return m


def channels(path: str | Path) -> int:
    """How many channels an image file decodes to (1 for a label mask, 3 or 4 for colour)."""
    img = _decode(Path(path), cv2.IMREAD_UNCHANGED)
    return 1 if img.ndim == 2 else int(img.shape[2])


def _encode(path: Path, img: np.ndarray, params: dict[str, list[int]]) -> bytes:
    ext = path.suffix.lower() or ".png"
    # Only the parameters of this format: OpenCV warns about (and ignores) the others.
    try:
        ok, buf = cv2.imencode(ext, img, params.get(ext, []))
    except cv2.error:
        ok = False
    if not ok:
        raise BadInput(f"{path}: OpenCV cannot encode '{ext}' images")
    return buf.tobytes()


def write_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB uint8 image atomically (format from the extension)."""
    path = Path(path)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, quality]
    data = _encode(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), {".jpg": jpeg, ".jpeg": jpeg})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_mask(path: str | Path, mask: np.ndarray) -> Path:
    """Write a uint8 label mask as PNG atomically."""
    path = Path(path)
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"{path}: masks are uint8 (H, W), got {mask.dtype} {mask.shape}")
    data = _encode(path.with_suffix(".png"), mask, {".png": [cv2.IMWRITE_PNG_COMPRESSION, 1]})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in a folder, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
