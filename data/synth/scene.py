"""Shelf scene layout: rows of shelf boards with packed products, price tags, gaps and signs.

Everything is painted into a `Canvas` that keeps an instance-id map next to the RGB image: each
shelf board, product, tag, gap and sign is one instance, so the semantic mask is `classes[ids]`
and the instances reproduce it exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

from prodseg.data.synth import textures
from prodseg.data.synth.shapes import ASPECT, HEIGHT, SHAPES
from prodseg.data.taxonomy import SHELF10

CLS = {name: i for i, name in enumerate(SHELF10.names)}
PRODUCTS = tuple(SHAPES)


class Canvas:
    """An RGB image plus its uint16 instance-id map (0 = background) and the class of every id."""

    def __init__(self, h: int, w: int, wall: np.ndarray):
        self.image = cv2.resize(wall, (w, h), interpolation=cv2.INTER_NEAREST)
        self.ids = np.zeros((h, w), np.uint16)
        self.classes = [CLS["background"]]

    @property
    def shape(self) -> tuple[int, int]:
        return self.ids.shape  # type: ignore[return-value]

    def lut(self) -> np.ndarray:
        """Class of each instance id, indexable by the id map."""
        return np.asarray(self.classes, np.uint8)

    def add(self, cls: int, y: int, x: int, patch: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Paint patch (masked) with its top-left at (y, x) as a new instance of class cls; clips at edges."""
        ph, pw = patch.shape[:2]
        h, w = self.shape
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + ph, h), min(x + pw, w)
        if y1 <= y0 or x1 <= x0:
            return
        k = len(self.classes)
        self.classes.append(cls)
        src = patch[y0 - y : y1 - y, x0 - x : x1 - x]
        if mask is None:
            self.image[y0:y1, x0:x1] = src
            self.ids[y0:y1, x0:x1] = k
            return
        m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        cv2.copyTo(src, m, self.image[y0:y1, x0:x1])  # writes through the view
        self.ids[y0:y1, x0:x1][m.astype(bool)] = k


def _wall(h: int, rng: np.random.Generator) -> np.ndarray:
    """Back-panel colour as an (h, 1, 3) vertical gradient."""
    c0 = np.array(textures.random_color(rng, (0.0, 0.25), (0.35, 0.9)), np.float32)
    ramp = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(0.9, 1.15), h, dtype=np.float32)
    return np.clip(c0[None, :] * ramp[:, None], 0, 255).astype(np.uint8)[:, None, :]


def _product_group(cv: Canvas, x: int, floor: int, clear: int, x_end: int, rng: np.random.Generator) -> int:
    """Place 1-5 facings of one product standing on `floor`; return the x after the group."""
    kind = PRODUCTS[rng.integers(len(PRODUCTS))]
    ph = max(3, int(clear * rng.uniform(*HEIGHT[kind])))
    pw = max(3, int(ph * rng.uniform(*ASPECT[kind])))
    mask, tex = SHAPES[kind](pw, ph, rng), textures.product_texture(kind, pw, ph, rng)
    stack = 2 if kind in ("can", "box", "jar") and 2 * ph < clear and rng.random() < 0.5 else 1
    for _ in range(int(rng.integers(1, 6))):
        if x >= x_end:
            break
        for level in range(stack):
            cv.add(CLS[kind], floor - (level + 1) * ph, x, tex, mask)
        # Negative spacing lets the next facing overlap this one: partial occlusion.
        x += pw + int(rng.integers(-max(1, pw // 8), max(2, pw // 8)))
    return x


def _gap(cv: Canvas, x: int, floor: int, clear: int, unit: int, rng: np.random.Generator) -> int:
    """An empty facing: the dark back of the shelf where products are missing."""
    gw = max(3, int(unit * rng.uniform(0.6, 2.0)))
    gh = max(3, int(clear * rng.uniform(0.7, 0.95)))
    shade = np.array(textures.random_color(rng, (0.0, 0.2), (0.08, 0.3)), np.float32)
    ramp = np.linspace(0.7, 1.3, gh, dtype=np.float32)[:, None, None]
    patch = np.clip(np.broadcast_to(shade, (gh, gw, 3)) * ramp, 0, 255).astype(np.uint8)
    cv.add(CLS["gap"], floor - gh, x, patch)
    return x + gw


def _bay(cv: Canvas, top: int, floor: int, x0: int, x1: int, rng: np.random.Generator) -> list[int]:
    """Fill one bay with product groups and gaps; return the x of each group (where its tag goes)."""
    clear = floor - top
    x, starts = x0 + int(rng.integers(0, max(1, clear // 6))), []
    while x < x1:
        starts.append(x)
        if rng.random() < 0.12:
            x = _gap(cv, x, floor, clear, max(3, clear // 2), rng)
        else:
            x = _product_group(cv, x, floor, clear, x1, rng)
    return starts


def _board(
    cv: Canvas, y: int, thick: int, x0: int, x1: int, tags: list[int], rng: np.random.Generator
) -> None:
    """A shelf board front with price tags clipped on its edge."""
    color = textures.random_color(rng, (0.0, 0.3), (0.25, 0.95))
    board = textures.solid(thick, x1 - x0, color)
    board[: max(1, thick // 5)] = np.clip(np.array(color) * 1.25, 0, 255).astype(np.uint8)
    cv.add(CLS["shelf"], y, x0, board)
    th = max(2, int(thick * rng.uniform(0.55, 0.85)))
    tw = max(3, int(th * rng.uniform(1.4, 2.2)))
    for tx in tags:
        if rng.random() < 0.85:
            cv.add(CLS["price_tag"], y + (thick - th) // 2, tx, textures.price_tag(tw, th, rng))


def _shadow(cv: Canvas, y: int, x0: int, x1: int, depth: int, rng: np.random.Generator) -> None:
    """Darken the rows under a board: the board above shades the top of the bay below it."""
    h = cv.shape[0]
    y1 = min(h, y + depth)
    if y1 <= max(y, 0) or x1 <= x0:
        return
    y0 = max(y, 0)
    ramp = np.linspace(rng.uniform(0.45, 0.75), 1.0, y + depth - y, dtype=np.float32)[y0 - y : y1 - y]
    col = np.repeat((ramp * 128).astype(np.uint8)[:, None, None], 3, axis=2)
    roi = cv.image[y0:y1, x0:x1]
    cv2.multiply(roi, cv2.repeat(col, 1, x1 - x0), dst=roi, scale=1 / 128)


def _signs(cv: Canvas, rng: np.random.Generator, header: int) -> None:
    """A header sign over the unit and hanging promotional signs that occlude products."""
    h, w = cv.shape
    if header > 2:
        sw = int(w * rng.uniform(0.3, 0.9))
        cv.add(CLS["signage"], 0, int(rng.integers(0, max(1, w - sw))), textures.sign(sw, header, rng))
    for _ in range(int(rng.poisson(0.7))):
        sh, sw = max(3, int(h * rng.uniform(0.06, 0.14))), max(4, int(w * rng.uniform(0.08, 0.22)))
        y, x = int(rng.integers(0, h - sh)), int(rng.integers(0, w - sw))
        cv.add(CLS["signage"], y, x, textures.sign(sw, sh, rng))


def render_shelf(h: int, w: int, rng: np.random.Generator, bay: tuple[float, float] = (0.2, 0.36)) -> Canvas:
    """Render a shelf unit filling an (h, w) canvas; bay heights are fractions of h."""
    cv = Canvas(h, w, _wall(h, rng))
    header = int(h * rng.uniform(0.05, 0.1)) if rng.random() < 0.5 else 0
    x0 = int(w * rng.uniform(0.0, 0.08)) if rng.random() < 0.3 else 0
    x1 = w - (int(w * rng.uniform(0.0, 0.08)) if rng.random() < 0.3 else 0)
    y = header + int(h * rng.uniform(0.0, 0.05)) if header else -int(h * rng.uniform(0.0, 0.15))
    while y < h:
        bay_h = max(6, int(h * rng.uniform(*bay)))
        thick = max(2, int(h * rng.uniform(0.025, 0.05)))
        floor = y + bay_h
        tags = _bay(cv, y, floor, x0, x1, rng)
        _shadow(cv, y, x0, x1, max(2, int(bay_h * rng.uniform(0.15, 0.35))), rng)
        _board(cv, floor, thick, x0, x1, tags, rng)
        y = floor + thick
    _signs(cv, rng, header)
    return cv
