"""Mask <-> polygon geometry shared by the COCO and YOLO-seg formats.

Two polygon conventions exist. COCO (pycocotools) rasterises continuous coordinates where pixel
(x, y) spans [x, x+1) x [y, y+1): we trace the *corners* of the pixel grid, which decodes back to
the exact mask for rectangles. YOLO-seg (ultralytics' `polygon2mask`) fills with `cv2.fillPoly` on
pixel indices: we trace pixel *centres*, which `cv2.fillPoly` fills back exactly for rectangles.
"""

from __future__ import annotations

import cv2
import numpy as np

from prodseg.data.instances import Instance


def _contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outer contours as (N, 2) int arrays of (x, y), largest first."""
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = [c.reshape(-1, 2) for c in found]
    return sorted(contours, key=lambda c: -cv2.contourArea(c.reshape(-1, 1, 2).astype(np.float32)))


def corner_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """COCO polygons: outer outlines on the pixel-corner grid, float (N, 2) each, largest first."""
    padded = np.pad(mask.astype(bool), 1)
    # Corner (i, j) is on when any of the four pixels that touch it is on.
    corners = padded[:-1, :-1] | padded[1:, :-1] | padded[:-1, 1:] | padded[1:, 1:]
    return [c.astype(np.float64) for c in _contours(corners)]


def centre_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """YOLO polygons: outer outlines through boundary pixel centres, (N, 2) each, largest first."""
    out = []
    for c in _contours(mask):
        if len(c) < 3:  # a 1- or 2-pixel blob: repeat points so the polygon has the 3 YOLO needs
            c = np.concatenate([c, c[::-1], c])[:3]
        out.append(c.astype(np.float64))
    return out


def _min_index(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmin(d), d.shape)
    return int(i), int(j)


def merge_segments(segments: list[np.ndarray]) -> np.ndarray:
    """Join several polygons into one by zero-width bridges between nearest points.

    The algorithm of ultralytics' `merge_multi_segment` (used by its COCO->YOLO converter), so an
    object split by occlusion keeps all its parts in a single YOLO-seg line.
    """
    if len(segments) == 1:
        return segments[0]
    segs = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in segments]
    idx: list[list[int]] = [[] for _ in segs]
    for i in range(1, len(segs)):
        a, b = _min_index(segs[i - 1], segs[i])
        idx[i - 1].append(a)
        idx[i].append(b)
    out = []
    last = len(segs) - 1
    for i, ix in enumerate(idx):  # forward pass
        if len(ix) == 2 and ix[0] > ix[1]:
            ix = ix[::-1]
            segs[i] = segs[i][::-1]
        segs[i] = np.roll(segs[i], -ix[0], axis=0)
        segs[i] = np.concatenate([segs[i], segs[i][:1]])
        if i in (0, last):
            out.append(segs[i])
        else:
            out.append(segs[i][: ix[1] - ix[0] + 1])
    for i in range(last - 1, 0, -1):  # backward pass closes the middle segments
        n = abs(idx[i][1] - idx[i][0])
        out.append(segs[i][n:])
    return np.concatenate(out)


def fill_polygon(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one pixel-index polygon (N, 2) of (x, y) into a bool mask, like ultralytics."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], 1)
    return m.astype(bool)


def components(mask: np.ndarray, num_classes: int) -> list[Instance]:
    """Instances of a masks-only dataset: connected components per class; ignore (255) as crowd."""
    out: list[Instance] = []
    for cls in range(1, num_classes):
        n, labels = cv2.connectedComponents((mask == cls).astype(np.uint8), connectivity=8)
        out.extend(Instance(cls, labels == k) for k in range(1, n))
    n, labels = cv2.connectedComponents((mask == 255).astype(np.uint8), connectivity=8)
    for k in range(1, n):
        region = labels == k
        out.append(Instance(_neighbour_class(mask, region), region, iscrowd=True))
    return out


def _neighbour_class(mask: np.ndarray, region: np.ndarray) -> int:
    """The most frequent thing class just around an ignore region (COCO crowds need a category)."""
    ring = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~region
    labels = mask[ring]
    labels = labels[(labels != 0) & (labels != 255)]
    return int(np.bincount(labels).argmax()) if labels.size else 1
