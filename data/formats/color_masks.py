"""Colour-coded mask PNGs: one RGB colour per class (from classes.yaml), white = ignore (255)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodseg.data.taxonomy import IGNORE_INDEX, ClassList
from prodseg.errors import BadInput

IGNORE_COLOR = (255, 255, 255)


def _palette(classes: ClassList, ignore: tuple[int, int, int] | None = IGNORE_COLOR) -> np.ndarray:
    """(256, 3) uint8 lookup: label value -> colour; the ignore value gets the `ignore` colour."""
    if ignore is not None and ignore in classes.colors:
        name = classes.names[classes.colors.index(ignore)]
        raise BadInput(
            f"classes: '{name}' uses {ignore}, the colour reserved for ignore (255); "
            "give it another colour in classes.yaml"
        )
    pal = np.zeros((256, 3), np.uint8)
    pal[: classes.num_classes] = np.array(classes.colors, np.uint8)
    pal[IGNORE_INDEX] = ignore if ignore is not None else (0, 0, 0)
    return pal


def pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB -> one uint32 per pixel, for exact colour lookups."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def encode_color(mask: np.ndarray, classes: ClassList) -> np.ndarray:
    """Label mask (H, W) uint8 -> RGB (H, W, 3) uint8 using the class colours."""
    bad = (mask >= classes.num_classes) & (mask != IGNORE_INDEX)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise BadInput(
            f"mask: label {int(mask[y, x])} at (x={x}, y={y}) is outside the {classes.num_classes} classes"
        )
    return _palette(classes)[mask]


def decode_color(
    rgb: np.ndarray,
    classes: ClassList,
    path: str | Path = "colour mask",
    ignore: tuple[int, int, int] | None = IGNORE_COLOR,
) -> np.ndarray:
    """RGB colour mask -> uint8 label mask by exact colour lookup; `ignore` (if any) -> 255; unknown
    colours are BadInput."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BadInput(f"{path}: colour masks are RGB (H, W, 3), got shape {rgb.shape}")
    values = [*range(classes.num_classes), *([IGNORE_INDEX] if ignore is not None else [])]
    keys = pack(_palette(classes, ignore)[values])
    order = np.argsort(keys)
    keys, values_arr = keys[order], np.array(values, np.uint8)[order]
    codes = pack(rgb)
    pos = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
    unknown = keys[pos] != codes
    if unknown.any():
        y, x = np.argwhere(unknown)[0]
        colour = tuple(int(v) for v in rgb[y, x])
        raise BadInput(
            f"{path}: colour {colour} at (x={x}, y={y}) is not a class colour "
            f"({int(unknown.sum())} such pixels); fix the mask or the colours"
        )
    return values_arr[pos]
