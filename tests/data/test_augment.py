"""Augmentation pipelines: alignment of image and mask, ignore fill, strength scaling, strength 0 = val."""

from __future__ import annotations

import numpy as np
import pytest

from prodseg.config import AugmentationConfig
from prodseg.data.augment import build_augmentation

QUIET = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}


def blocks(h: int = 64, w: int = 96, seed: int = 0, b: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A label mask of bxb blocks and an image whose red channel encodes the label (label * 20)."""
    rng = np.random.default_rng(seed)
    mask = np.kron(rng.integers(0, 10, (h // b, w // b)), np.ones((b, b), np.int64)).astype(np.uint8)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[..., 0] = mask * 20
    return image, mask


def test_val_is_a_resize_with_nearest_masks() -> None:
    image, mask = blocks()
    out = build_augmentation(AugmentationConfig(), (32, 48), train=False)(image=image, mask=mask)
    assert out["image"].shape == (32, 48, 3) and out["mask"].shape == (32, 48)
    assert set(np.unique(out["mask"])) <= set(np.unique(mask))


def test_strength_zero_is_identical_to_val() -> None:
    image, mask = blocks()
    aug = AugmentationConfig(rotation=30.0, vertical_flip=0.5, strength=0.0)
    a = build_augmentation(aug, (48, 64), train=True)(image=image, mask=mask)
    b = build_augmentation(aug, (48, 64), train=False)(image=image, mask=mask)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])


@pytest.mark.parametrize(("flip", "axis"), [("horizontal_flip", 1), ("vertical_flip", 0)])
def test_flip_moves_image_and_mask_together(flip: str, axis: int) -> None:
    image, mask = blocks()
    other = "vertical_flip" if flip == "horizontal_flip" else "horizontal_flip"
    # 0.5 x strength 2 = always.
    aug = AugmentationConfig(**{flip: 0.5, other: 0.0}, scale=[1.0, 1.0], strength=2.0, **QUIET)
    out = build_augmentation(aug, (64, 96), train=True)(image=image, mask=mask)
    assert np.array_equal(out["image"], np.flip(image, axis))
    assert np.array_equal(out["mask"], np.flip(mask, axis))


def test_rotation_and_zoom_keep_alignment_and_fill_ignore() -> None:
    aug = AugmentationConfig(rotation=40.0, scale=[0.6, 0.7], horizontal_flip=0.0, **QUIET)
    t = build_augmentation(aug, (64, 96), train=True)
    for seed in range(5):
        image, mask = blocks(seed=seed, b=16)
        out = t(image=image, mask=mask)
        m, red = out["mask"], out["image"][..., 0].astype(int)
        assert set(np.unique(m)) <= set(np.unique(mask)) | {255}
        assert (m == 255).mean() > 0.3  # zoomed out by 0.6-0.7: the border is ignore
        assert (red[m == 255] == 0).mean() > 0.95  # (bilinear image edges blend into the fill)
        inside = m != 255
        # Away from block edges the image's label code matches the mask (misaligned: ~10% would match).
        assert (np.abs(red[inside] - m[inside].astype(int) * 20) <= 2).mean() > 0.8


def test_strength_scales_magnitudes() -> None:
    aug = AugmentationConfig(brightness=0.2, hue=0.05, rotation=10.0, scale=[0.8, 1.2], strength=0.5)
    names = {type(t).__name__: t for t in build_augmentation(aug, (32, 32), train=True).transforms}
    jitter, affine = names["ColorJitter"], names["Affine"]
    assert jitter.brightness == pytest.approx((0.9, 1.1)) and jitter.hue == pytest.approx((-0.025, 0.025))
    assert names["HorizontalFlip"].p == pytest.approx(0.25)
    assert affine.rotate == pytest.approx((-5.0, 5.0))
    assert affine.scale["x"] == pytest.approx((0.9, 1.1))


def test_extra_mask_targets_follow_the_mask() -> None:
    image, mask = blocks()
    ids = (np.arange(mask.size, dtype=np.uint16).reshape(mask.shape) % 500) + 1
    aug = AugmentationConfig(horizontal_flip=1.0, scale=[1.0, 1.0], **QUIET)
    out = build_augmentation(aug, (64, 96), train=True, extra_masks=("instances",))(
        image=image, mask=mask, instances=ids
    )
    assert np.array_equal(out["instances"], ids[:, ::-1])
