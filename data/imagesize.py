"""The declared size of an image file, read from its header without decoding a pixel.

A small file can declare a huge image (a 1 MB PNG of 20000x20000 pixels decodes to gigabytes), so
the size is checked before OpenCV decodes it; see `prodseg.data.imageio` for the limit. The format
is recognised by its content, as OpenCV does, not by the file extension. Covered: PNG, JPEG, BMP,
TIFF (and BigTIFF) and WebP, the formats of `IMAGE_EXTS`; anything else is refused as unreadable.

Pillow would read these headers too, but it is not a base dependency of the edge install, and its
own guard (a process-wide `Image.MAX_IMAGE_PIXELS`) would fight a limit the user may raise.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# JPEG start-of-frame markers (SOF0..SOF15 less DHT, JPG and DAC), which carry the frame size.
_JPEG_SOF = {m for m in range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: no length field


class HeaderError(ValueError):
    """The header is truncated, malformed, or not one of the covered formats."""


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise HeaderError("truncated header")
    return data


def _png(f: BinaryIO) -> tuple[int, int]:
    f.seek(8)
    _, kind, w, h = struct.unpack(">I4sII", _read(f, 16))
    if kind != b"IHDR":
        raise HeaderError("PNG without IHDR")
    return w, h


def _jpeg(f: BinaryIO) -> tuple[int, int]:
    f.seek(2)
    while True:
        if _read(f, 1) != b"\xff":
            raise HeaderError("JPEG marker expected")
        marker = _read(f, 1)[0]
        while marker == 0xFF:  # fill bytes before a marker
            marker = _read(f, 1)[0]
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:
            raise HeaderError("JPEG without a frame header")
        (length,) = struct.unpack(">H", _read(f, 2))
        if length < 2:
            raise HeaderError("JPEG segment length")
        if marker in _JPEG_SOF:
            _, h, w = struct.unpack(">BHH", _read(f, 5))
            return w, h
        f.seek(length - 2, 1)


def _bmp(f: BinaryIO) -> tuple[int, int]:
    f.seek(14)
    (header_size,) = struct.unpack("<I", _read(f, 4))
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", _read(f, 4))
    w, h = struct.unpack("<ii", _read(f, 8))
    return w, abs(h)  # a negative height means rows stored top-down


def _tiff(f: BinaryIO) -> tuple[int, int]:
    f.seek(0)
    order = "<" if _read(f, 2) == b"II" else ">"
    (version,) = struct.unpack(order + "H", _read(f, 2))
    if version not in (42, 43):
        raise HeaderError("TIFF version")
    big = version == 43
    if big:
        f.seek(8)
    count_fmt, entry_fmt, value_size = ("Q", "HHQ", 8) if big else ("H", "HHI", 4)
    (ifd,) = struct.unpack(order + ("Q" if big else "I"), _read(f, 8 if big else 4))
    f.seek(ifd)
    (count,) = struct.unpack(order + count_fmt, _read(f, struct.calcsize(order + count_fmt)))
    found: dict[int, int] = {}
    value_fmts = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    for _ in range(min(count, 4096)):
        tag, kind, _n = struct.unpack(order + entry_fmt, _read(f, struct.calcsize(order + entry_fmt)))
        value = _read(f, value_size)
        if tag in (256, 257) and kind in value_fmts:
            size = struct.calcsize(value_fmts[kind])
            found[tag] = struct.unpack(order + value_fmts[kind], value[:size])[0]
    if 256 not in found or 257 not in found:
        raise HeaderError("TIFF without ImageWidth/ImageLength")
    return found[256], found[257]


def _webp(f: BinaryIO) -> tuple[int, int]:
    f.seek(12)
    kind, _ = struct.unpack("<4sI", _read(f, 8))
    head = _read(f, 10)
    if kind == b"VP8 " and head[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[6:10])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L" and head[0] == 0x2F:
        (bits,) = struct.unpack("<I", head[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(head[4:7], "little") + 1, int.from_bytes(head[7:10], "little") + 1
    raise HeaderError("WebP without a VP8/VP8L/VP8X chunk")


def _is_webp(head: bytes) -> bool:
    return head.startswith(b"RIFF") and head[8:12] == b"WEBP"


# (does the start of the file match?, size reader): tried in order.
READERS: tuple[tuple[Callable[[bytes], bool], Callable[[BinaryIO], tuple[int, int]]], ...] = (
    (lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"), _png),
    (lambda h: h.startswith(b"\xff\xd8"), _jpeg),
    (lambda h: h.startswith(b"BM"), _bmp),
    (lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    (_is_webp, _webp),
)


def declared_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header; HeaderError when the header cannot be read."""
    with open(path, "rb") as f:
        head = f.read(16)
        for matches, reader in READERS:
            if matches(head):
                return reader(f)
    raise HeaderError("not a PNG, JPEG, BMP, TIFF or WebP file")
