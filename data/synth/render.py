"""One synthetic shelf photo: scene, camera, and its semantic mask and instances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodseg.data.instances import Instance
from prodseg.data.synth import camera
from prodseg.data.synth.scene import render_shelf

# The canvas is larger than the photo so the perspective quad never samples outside it.
MARGIN = 1.12


@dataclass
class Shot:
    """A rendered photo: RGB uint8 image, uint8 semantic mask, uint16 instance ids and their classes."""

    image: np.ndarray
    mask: np.ndarray
    ids: np.ndarray
    lut: np.ndarray

    def instances(self) -> list[Instance]:
        """The visible pixels of every instance, in id order (non-overlapping by construction)."""
        return instances_from_ids(self.ids, self.lut)


def image_rng(seed: int, index: int) -> np.random.Generator:
    """Generator for image `index` of a dataset seeded with `seed` (independent of the image count)."""
    return np.random.default_rng([int(seed), int(index)])


def render_photo(size: tuple[int, int], rng: np.random.Generator) -> Shot:
    """Render one (H, W) shelf photo."""
    h, w = size
    cv = render_shelf(int(h * MARGIN) + 2, int(w * MARGIN) + 2, rng)
    img, ids = camera.perspective(cv.image, cv.ids, (h, w), rng)
    img = camera.lens_blur(img, rng)
    img = camera.expose(img, camera.lighting_gain(h, w, rng), rng)
    lut = cv.lut()
    return Shot(img, lut[ids], ids, lut)


def instances_from_ids(ids: np.ndarray, lut: np.ndarray) -> list[Instance]:
    """Split an id map into boolean instance masks with one sort (not one full-image compare per id)."""
    flat = ids.ravel()
    order = np.argsort(flat, kind="stable")  # a radix sort for uint16
    counts = np.bincount(flat)
    ends = np.cumsum(counts)
    out = []
    for k in np.flatnonzero(counts[1:]) + 1:  # id 0 = no instance
        if lut[k] == 0:
            continue
        s, e = ends[k - 1], ends[k]
        m = np.zeros(flat.size, bool)
        m[order[s:e]] = True
        out.append(Instance(int(lut[k]), m.reshape(ids.shape)))
    return out
