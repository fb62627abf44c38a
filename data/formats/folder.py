"""Writing a whole output folder at once: built under a hidden temporary name, renamed when complete."""

from __future__ import annotations

import contextlib
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
from prodseg.data.layout import split_stems, write_splits
from prodseg.data.taxonomy import ClassList
from prodseg.errors import BadInput


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


def copy_image(src: Path, images_dir: Path, seen: dict[str, Path]) -> str:
    """Copy an image into images/ under its base name; BadInput on two sources with one stem."""
    if src.stem in seen:
        raise BadInput(f"{src}: image name '{src.stem}' also used by {seen[src.stem]}; "
                       "rename one (a dataset folder keeps one image per name)")
    if not src.is_file():
        raise BadInput(f"{src}: image file not found")
    seen[src.stem] = src
    images_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, images_dir / src.name)
    return src.stem


def write_dataset(out: Path, classes: ClassList, items: Iterable[Item],
                  splits: dict[str, list[str]] | None = None) -> None:
    """Fill folder `out` (inside `atomic_dir`) with images/, masks/, classes.yaml, splits/ and,
    when any item carries instances, instances.json (RLE) and YOLO-seg labels/ + dataset.yaml.

    Items are consumed one at a time; only the COCO RLE strings are kept until the end.
    """
    seen: dict[str, Path] = {}
    coco = CocoBuilder(classes)
    for item in items:
        stem = copy_image(item.image, out / "images", seen)
        write_mask(out / "masks" / f"{stem}.png", item.mask)
        if item.record is not None:
            rec = ImageRecord(item.image.name, item.record.height, item.record.width, item.record.instances)
            coco.add(rec)
            write_labels(out / "labels", [rec])
    if not seen:
        raise BadInput(f"{out}: the source has no images; nothing to convert")
    classes.save(out / "classes.yaml")
    kept = {k: [s for s in v if s in seen] for k, v in (splits or {}).items()}
    kept = {k: v for k, v in kept.items() if v} or split_stems(list(seen))
    write_splits(out, kept)
    if coco.annotations:
        coco.write(out / "instances.json")
        write_yolo_yaml(out, classes, kept, {stem: p.name for stem, p in seen.items()})
    elif (out / "labels").exists():
        shutil.rmtree(out / "labels")  # only empty label files: the source had no instances
