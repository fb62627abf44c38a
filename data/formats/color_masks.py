"""Colour-coded mask PNGs: one RGB colour per class (from classes.yaml), white = ignore (255)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodseg.data.taxonomy import IGNORE_INDEX, ClassList
from prodseg.errors import BadInput

IGNORE_COLOR = (255, 255, 255)


def _palette(classes: ClassList) -> np.ndarray:
    """(256, 3) uint8 lookup: label value -> colour; the ignore value gets IGNORE_COLOR."""
    if IGNORE_COLOR in classes.colors:
        name = classes.names[classes.colors.index(IGNORE_COLOR)]
        raise BadInput(f"classes: '{name}' uses {IGNORE_COLOR}, the colour reserved for ignore (255); "
                       "give it another colour in classes.yaml")
    pal = np.zeros((256, 3), np.uint8)
    pal[: classes.num_classes] = np.array(classes.colors, np.uint8)
    pal[IGNORE_INDEX] = IGNORE_COLOR
    return pal


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def encode_color(mask: np.ndarray, classes: ClassList) -> np.ndarray:
    """Label mask (H, W) uint8 -> RGB (H, W, 3) uint8 using the class colours."""
    bad = (mask >= classes.num_classes) & (mask != IGNORE_INDEX)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise BadInput(f"mask: label {int(mask[y, x])} at (x={x}, y={y}) is outside the "
                       f"{classes.num_classes} classes")
    return _palette(classes)[mask]


def decode_color(rgb: np.ndarray, classes: ClassList, path: str | Path = "colour mask") -> np.ndarray:
    """RGB colour mask -> uint8 label mask by exact colour lookup; unknown colours are BadInput."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BadInput(f"{path}: colour masks are RGB (H, W, 3), got shape {rgb.shape}")
    values = [*range(classes.num_classes), IGNORE_INDEX]
    keys = _pack(_palette(classes)[values])
    order = np.argsort(keys)
    keys, values_arr = keys[order], np.array(values, np.uint8)[order]
    codes = _pack(rgb)
    pos = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
    unknown = keys[pos] != codes
    if unknown.any():
        y, x = np.argwhere(unknown)[0]
        colour = tuple(int(v) for v in rgb[y, x])
        raise BadInput(f"{path}: colour {colour} at (x={x}, y={y}) is not a class colour in classes.yaml "
                       f"({int(unknown.sum())} such pixels); fix the mask or the colours")
    return values_arr[pos]
