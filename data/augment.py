"""Albumentations pipelines from the config's augmentation block (flips, rotation, colour, scale/crop).

Every probability and magnitude is multiplied by `aug.strength`; strength 0 leaves only the resize,
which is also the validation pipeline. Masks are resampled nearest-neighbour and areas rotated or
scaled in from outside the image get label 255 (ignore).
"""

from __future__ import annotations

import inspect
from typing import Any

import cv2

from prodseg.config import AugmentationConfig
from prodseg.data.taxonomy import IGNORE_INDEX
from prodseg.errors import require


def _fill_kwargs(affine_cls: type) -> dict[str, Any]:
    """Border fill for image (0) and mask (255) under the installed albumentations' parameter names."""
    params = inspect.signature(affine_cls).parameters
    if "fill_mask" in params:  # albumentations >= 1.4.24 / 2.x
        return {"fill": 0, "fill_mask": IGNORE_INDEX}
    return {"cval": 0, "cval_mask": IGNORE_INDEX, "mode": cv2.BORDER_CONSTANT}


def _geometric(A: Any, aug: AugmentationConfig) -> list[Any]:
    s = aug.strength
    lo, hi = (1 + (v - 1) * s for v in aug.scale)
    rotate = min(180.0, aug.rotation * s)
    # Zooming in crops the centre; shifting by up to the overhang makes it a random crop.
    shift = max(0.0, hi - 1) / 2
    out = []
    if (lo, hi) != (1.0, 1.0) or rotate > 0:
        out.append(
            A.Affine(
                scale=(lo, hi),
                rotate=(-rotate, rotate),
                translate_percent=(-shift, shift),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                p=1.0,
                **_fill_kwargs(A.Affine),
            )
        )
    if aug.horizontal_flip * s > 0:
        out.append(A.HorizontalFlip(p=min(1.0, aug.horizontal_flip * s)))
    if aug.vertical_flip * s > 0:
        out.append(A.VerticalFlip(p=min(1.0, aug.vertical_flip * s)))
    return out


def _photometric(A: Any, aug: AugmentationConfig) -> list[Any]:
    s = aug.strength
    b, c, sat = (min(1.0, v * s) for v in (aug.brightness, aug.contrast, aug.saturation))
    hue = min(0.5, aug.hue * s)
    if max(b, c, sat, hue) == 0:
        return []
    return [A.ColorJitter(brightness=b, contrast=c, saturation=sat, hue=hue, p=min(1.0, 0.8 * s))]


def build_augmentation(
    aug: AugmentationConfig | None, size: tuple[int, int], train: bool, extra_masks: tuple[str, ...] = ()
) -> Any:
    """An albumentations Compose resizing to size (H, W), plus the augmentations when `train`.

    `extra_masks` names further mask-like targets (e.g. an instance-id map) transformed with the mask.
    """
    A = require("albumentations", "train", "training augmentations")
    h, w = size
    steps = [A.Resize(h, w, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)]
    if train and aug is not None:
        steps += _geometric(A, aug) + _photometric(A, aug)
    return A.Compose(steps, additional_targets={name: "mask" for name in extra_masks})
