"""Which images calibrate and which verify: held-out verification samples, calibration from the rest."""

from __future__ import annotations

import logging
from pathlib import Path

from prodseg.data.imageio import list_images
from prodseg.data.layout import Sample, ShelfDataset
from prodseg.errors import BadInput

log = logging.getLogger(__name__)


def is_dataset(folder: Path) -> bool:
    """A prodseg dataset folder (images/ + classes.yaml) rather than a plain folder of images."""
    return (folder / "images").is_dir() and (folder / "classes.yaml").is_file()


def verification_samples(dataset: Path, k: int) -> list[Sample]:
    """The first `k` samples (with masks) of the dataset's val split, else of all its images."""
    ds = ShelfDataset(dataset)
    name = "val" if (ds.root / "splits" / "val.txt").is_file() else "all"
    samples = [s for s in (ds.sample(stem) for stem in ds.split_stems(name)) if s.mask is not None]
    if not samples:
        raise BadInput(
            f"{dataset}: no images with masks in the '{name}' split to verify against; "
            "pass a labelled dataset with --calib-data or use --no-verify"
        )
    return samples[:k]


# What --calib-data (and the checkpoint's dataset when it calibrates) must be.
IMAGE_SOURCE = "a prodseg dataset (images/ + classes.yaml) or a folder of .jpg/.png images"


def folder_images(folder: Path) -> list[Path]:
    """A dataset's images (val split first) or a plain folder's; BadInput when missing or without images."""
    if not folder.exists():
        raise BadInput(f"{folder}: calibration folder not found; pass {IMAGE_SOURCE} to --calib-data")
    if not folder.is_dir():
        raise BadInput(f"{folder}: is a file, not a calibration folder; pass {IMAGE_SOURCE} to --calib-data")
    if is_dataset(folder):
        ds = ShelfDataset(folder)
        val = ds.split_stems("val") if (folder / "splits" / "val.txt").is_file() else []
        ordered = [*val, *[s for s in ds.stems if s not in set(val)]]
        paths = [ds.sample(s).image for s in ordered]
    else:
        paths = list_images(folder)
    if not paths:
        raise BadInput(
            f"{folder}: no images (.jpg/.png/...) to calibrate on; pass {IMAGE_SOURCE} to --calib-data"
        )
    return paths


def calibration_images(folder: Path, n: int, held_out: set[str]) -> list[Path]:
    """Up to `n` calibration images: val split first, then the rest, skipping verification images."""
    paths = folder_images(folder)
    fresh = [p for p in paths if p.stem not in held_out]
    if not fresh:
        log.warning("calibration: every image in %s is also a verification image; using them anyway", folder)
        fresh = paths
    return fresh[:n]
