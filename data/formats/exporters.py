"""Exporters: a prodseg dataset folder -> COCO / YOLO-seg / colour masks / a prodseg copy."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodseg.data.formats.coco import CocoFile, write_coco
from prodseg.data.formats.color_masks import encode_color
from prodseg.data.formats.geometry import components
from prodseg.data.formats.yolo import write_yolo
from prodseg.data.imageio import read_mask, write_image
from prodseg.data.instances import ImageRecord, semantic_from_instances
from prodseg.data.layout import ShelfDataset
from prodseg.data.taxonomy import ClassList
from prodseg.errors import BadInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    """Format-specific choices; each exporter reads the ones it needs."""

    coco_encoding: str = "rle"  # rle (exact) | polygon (approximate, editable in annotation tools)


def _masks(ds: ShelfDataset) -> Iterator[tuple[str, Path, np.ndarray]]:
    for stem in ds.stems:
        sample = ds.sample(stem)
        if sample.mask is None:
            raise BadInput(f"{ds.masks_dir / (stem + '.png')}: mask missing for image {sample.image.name}")
        yield stem, sample.image, read_mask(sample.mask)


def _stored(ds: ShelfDataset) -> tuple[CocoFile | None, dict[int, int]]:
    """instances.json (if any) and its class index -> the folder's class index, matched by name."""
    if not ds.instances_json.is_file():
        return None, {}
    coco = CocoFile(ds.instances_json)
    names = ds.classes.names
    return coco, {i: names.index(n) for i, n in enumerate(coco.classes.names) if n in names}


def export_records(ds: ShelfDataset) -> Iterator[ImageRecord]:
    """Instances per image: instances.json when it paints exactly the mask, else connected components.

    The check keeps exports faithful to the masks (the ground truth of the folder), so that a round
    trip through COCO gives back identical masks. Records are produced one image at a time.
    """
    coco, remap = _stored(ds)
    for stem, image, mask in _masks(ds):
        h, w = mask.shape
        rec = coco.record(coco.ids_by_stem[stem]) if coco and stem in coco.ids_by_stem else None
        if rec is not None:
            for inst in rec.instances:
                inst.class_id = remap.get(inst.class_id, inst.class_id)
        if (
            rec is None
            or (rec.height, rec.width) != (h, w)
            or not np.array_equal(semantic_from_instances(rec.instances, (h, w)), mask)
        ):
            if rec is not None:
                log.info("%s: instances.json does not reproduce the mask; exporting its components", stem)
            rec = ImageRecord(image.name, h, w, components(mask, ds.classes.num_classes))
        yield ImageRecord(image.name, h, w, rec.instances)


def _copy_common(ds: ShelfDataset, out: Path) -> None:
    shutil.copytree(ds.images_dir, out / "images")
    ds.classes.save(out / "classes.yaml")
    if (ds.root / "splits").is_dir():
        shutil.copytree(ds.root / "splits", out / "splits")


def _splits(ds: ShelfDataset) -> dict[str, list[str]]:
    folder = ds.root / "splits"
    return {p.stem: ds.split_stems(p.stem) for p in sorted(folder.glob("*.txt"))} if folder.is_dir() else {}


def export_coco(ds: ShelfDataset, out: Path, opts: ExportOptions) -> None:
    """images/, instances.json (RLE or polygons), classes.yaml and splits/."""
    _copy_common(ds, out)
    write_coco(out / "instances.json", export_records(ds), ds.classes, opts.coco_encoding)


def export_yolo(ds: ShelfDataset, out: Path, opts: ExportOptions) -> None:
    """images/, labels/, dataset.yaml (+ yolo_<split>.txt image lists) and classes.yaml."""
    shutil.copytree(ds.images_dir, out / "images")
    ds.classes.save(out / "classes.yaml")
    write_yolo(out, export_records(ds), ds.classes, _splits(ds) or None)


def export_color_masks(ds: ShelfDataset, out: Path, opts: ExportOptions) -> None:
    """images/, masks/ as RGB colour PNGs (white = ignore), classes.yaml and splits/."""
    classes: ClassList = ds.classes
    for stem, _, mask in _masks(ds):
        write_image(out / "masks" / f"{stem}.png", encode_color(mask, classes))
    _copy_common(ds, out)


def export_prodseg(ds: ShelfDataset, out: Path, opts: ExportOptions) -> None:
    """A plain copy of the folder."""
    shutil.copytree(ds.root, out, dirs_exist_ok=True)
