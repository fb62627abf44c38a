"""Writing a whole output folder at once: built under a hidden temporary name, renamed when complete."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodseg.atomic import atomic_dir as shared_atomic_dir
from prodseg.data.formats.coco import CocoBuilder
from prodseg.data.formats.yolo import write_labels, write_yolo_yaml
from prodseg.data.imageio import write_mask
from prodseg.data.instances import ImageRecord
from prodseg.data.layout import make_splits, write_splits
from prodseg.data.taxonomy import ClassList
from prodseg.errors import BadInput

log = logging.getLogger(__name__)
STEM_JOIN = "__"  # store_a/img1.jpg -> store_a__img1 when another folder also has an img1


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Like prodseg.atomic.atomic_dir, but never replaces a folder that already holds files."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BadInput(f"{target}: already exists and is not an empty folder; choose a new --to folder")
    with shared_atomic_dir(target) as tmp:
        yield tmp


@dataclass
class Item:
    """One sample on its way into a prodseg folder."""

    image: Path  # source image file, copied byte for byte
    mask: np.ndarray  # uint8 label mask
    record: ImageRecord | None = None  # instances, when the source had them
    stem: str | None = None  # name in the dataset (see `unique_stems`); the image's own stem if None


def _distinct_prefix(parts: list[tuple[str, ...]]) -> list[str]:
    """Per path, its folder parts after the leading ones that all paths share, joined by STEM_JOIN."""
    common = 0
    while all(len(p) > common for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return [STEM_JOIN.join(p[common:]) for p in parts]


def unique_stems(images: list[Path], root: Path) -> dict[Path, str]:
    """A dataset stem per image file: its own stem, or, when files in several sub-folders share a stem
    (store_a/img1.jpg, store_b/img1.jpg), the folders that tell them apart in front of it
    (store_a__img1, store_b__img1); one info line says how many were renamed."""
    by_stem: dict[str, list[Path]] = {}
    for image in images:
        by_stem.setdefault(image.stem, []).append(image)
    out: dict[Path, str] = {}
    renamed: list[Path] = []
    for stem, group in by_stem.items():
        if len(group) == 1:
            out[group[0]] = stem
            continue
        prefixes = _distinct_prefix([p.parent.resolve().relative_to(root.resolve()).parts for p in group])
        for image, prefix in zip(group, prefixes, strict=True):
            out[image] = f"{prefix}{STEM_JOIN}{stem}" if prefix else stem
        renamed += group
    if renamed:
        log.info(
            "%d images share a file name with an image in another folder; their names in the dataset "
            "start with the folder (%s -> %s)",
            len(renamed),
            renamed[0],
            out[renamed[0]],
        )
    return out


def copy_image(src: Path, images_dir: Path, seen: dict[str, Path], stem: str | None = None) -> str:
    """Copy an image into images/ as `<stem><suffix>`; BadInput on two sources with one stem."""
    stem = stem or src.stem
    if stem in seen:
        raise BadInput(
            f"{src}: image name '{stem}' also used by {seen[stem]}; "
            "rename one (a dataset folder keeps one image per name)"
        )
    if not src.is_file():
        raise BadInput(f"{src}: image file not found")
    seen[stem] = src
    images_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, images_dir / f"{stem}{src.suffix}")
    return stem


def write_dataset(
    out: Path, classes: ClassList, items: Iterable[Item], splits: dict[str, list[str]] | None = None
) -> None:
    """Fill folder `out` (inside `atomic_dir`) with images/, masks/, classes.yaml, splits/ and,
    when any item carries instances, instances.json (RLE) and YOLO-seg labels/ + dataset.yaml.

    Items are consumed one at a time; only the COCO RLE strings are kept until the end.
    """
    seen: dict[str, Path] = {}
    coco = CocoBuilder(classes)
    for item in items:
        stem = copy_image(item.image, out / "images", seen, item.stem)
        write_mask(out / "masks" / f"{stem}.png", item.mask)
        if item.record is not None:
            name = f"{stem}{item.image.suffix}"
            rec = ImageRecord(name, item.record.height, item.record.width, item.record.instances)
            coco.add(rec)
            write_labels(out / "labels", [rec])
    if not seen:
        raise BadInput(f"{out}: the source has no images; nothing to convert")
    classes.save(out / "classes.yaml")
    kept = {k: [s for s in v if s in seen] for k, v in (splits or {}).items()}
    kept = {k: v for k, v in kept.items() if v} or make_splits(list(seen))
    write_splits(out, kept)
    if coco.annotations:
        coco.write(out / "instances.json")
        write_yolo_yaml(out, classes, kept, {stem: f"{stem}{p.suffix}" for stem, p in seen.items()})
    elif (out / "labels").exists():
        shutil.rmtree(out / "labels")  # only empty label files: the source had no instances
