"""Product silhouettes: a registry of name -> function drawing a uint8 (h, w) mask of the product."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

ShapeFn = Callable[[int, int, np.random.Generator], np.ndarray]


def box(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A cereal/tea box: the full rectangle."""
    return np.ones((h, w), np.uint8)


def can(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A can: straight body with elliptical top and bottom rims."""
    m = np.zeros((h, w), np.uint8)
    ry = max(1, int(w * 0.12))
    cv2.rectangle(m, (0, ry), (w - 1, h - 1 - ry), 1, -1)
    cv2.ellipse(m, (w // 2, ry), (w // 2, ry), 0, 0, 360, 1, -1)
    cv2.ellipse(m, (w // 2, h - 1 - ry), (w // 2, ry), 0, 0, 360, 1, -1)
    return m


def bottle(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A bottle: body, tapering shoulder, neck and cap."""
    m = np.zeros((h, w), np.uint8)
    neck = max(1, int(w * rng.uniform(0.25, 0.4)))
    x0, x1 = (w - neck) // 2, (w + neck) // 2
    shoulder, neck_top = int(h * rng.uniform(0.35, 0.5)), int(h * 0.08)
    neck_base = shoulder - int(h * 0.15)
    pts = np.array(
        [
            [0, h - 1],
            [0, shoulder],
            [x0, neck_base],
            [x0, neck_top],
            [x1, neck_top],
            [x1, neck_base],
            [w - 1, shoulder],
            [w - 1, h - 1],
        ],
        np.int32,
    )
    cv2.fillPoly(m, [pts], 1)
    cv2.rectangle(m, (x0 - 1, 0), (x1 + 1, neck_top), 1, -1)
    return m


def jar(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A jar: rounded wide body under a slightly narrower lid."""
    m = np.zeros((h, w), np.uint8)
    lid, inset = max(2, int(h * 0.15)), max(1, int(w * 0.06))
    r = max(1, min(w, h) // 6)
    cv2.rectangle(m, (inset, 0), (w - 1 - inset, lid), 1, -1)
    cv2.rectangle(m, (0, lid + r), (w - 1, h - 1 - r), 1, -1)
    cv2.rectangle(m, (r, lid), (w - 1 - r, h - 1), 1, -1)
    for cx, cy in ((r, lid + r), (w - 1 - r, lid + r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(m, (cx, cy), r, 1, -1)
    return m


def bag(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A chips bag: pillow body, bulging sides and a crimped top seal."""
    m = np.zeros((h, w), np.uint8)
    seal = max(2, int(h * 0.1))
    n = max(3, w // 6)
    xs = np.linspace(0, w - 1, 2 * n + 1)
    top = [[int(x), 0 if i % 2 else seal // 2] for i, x in enumerate(xs)]
    bulge = int(w * 0.06)
    side = [
        [w - 1 - bulge, seal],
        [w - 1, h // 2],
        [w - 1 - bulge, h - 1],
        [bulge, h - 1],
        [0, h // 2],
        [bulge, seal],
    ]
    cv2.fillPoly(m, [np.array(top + side, np.int32)], 1)
    return m


SHAPES: dict[str, ShapeFn] = {"bottle": bottle, "can": can, "box": box, "bag": bag, "jar": jar}

# Typical width/height ratio of each product (height is set by the shelf bay).
ASPECT: dict[str, tuple[float, float]] = {
    "bottle": (0.28, 0.4),
    "can": (0.5, 0.65),
    "box": (0.55, 0.9),
    "bag": (0.6, 0.85),
    "jar": (0.7, 0.95),
}
# Product height as a fraction of the bay's clear height.
HEIGHT: dict[str, tuple[float, float]] = {
    "bottle": (0.75, 0.95),
    "can": (0.4, 0.6),
    "box": (0.6, 0.9),
    "bag": (0.6, 0.85),
    "jar": (0.45, 0.65),
}
