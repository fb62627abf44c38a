"""Importers: a COCO / YOLO-seg / colour-mask / prodseg source -> a prodseg dataset folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

from prodseg.data.formats.coco import CocoFile
from prodseg.data.formats.color_masks import decode_color
from prodseg.data.formats.folder import Item, write_dataset
from prodseg.data.formats.yolo import read_yolo_splits
from prodseg.data.imageio import list_images, read_image
from prodseg.data.instances import semantic_from_instances
from prodseg.data.layout import SPLITS, ShelfDataset
from prodseg.data.taxonomy import SHELF10, ClassList, default_colors
from prodseg.errors import BadInput


def read_split_dir(root: Path) -> dict[str, list[str]]:
    """splits/<name>.txt stem lists of a source folder, if it has them."""
    folder = root / "splits"
    if not folder.is_dir():
        return {}
    return {p.stem: [s.strip() for s in p.read_text().splitlines() if s.strip()]
            for p in sorted(folder.glob("*.txt"))}


def split_name(json_path: Path) -> str:
    """'instances_train2017.json' -> 'train'; other names are kept as they are."""
    stem = json_path.stem.lower()
    return next((s for s in SPLITS if s in stem), stem)


def coco_sources(src: Path) -> list[Path]:
    """The COCO JSON files of a source: the file itself, `instances.json`, or `annotations/*.json`."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise BadInput(f"{src}: not found; pass a COCO JSON file or a folder with instances.json")
    if (src / "instances.json").is_file():
        return [src / "instances.json"]
    found = sorted((src / "annotations").glob("*.json")) if (src / "annotations").is_dir() else []
    if not found:
        raise BadInput(f"{src}: no instances.json or annotations/*.json; is it a COCO dataset?")
    return found


def find_image(json_path: Path, root: Path, split: str, file_name: str) -> Path:
    """Where a COCO `file_name` lives: next to the JSON, in images/, or in a per-split folder."""
    bases = [json_path.parent, json_path.parent / "images", root / "images", root / "images" / split,
             root / split, root]
    for base in dict.fromkeys(bases):
        if (base / file_name).is_file():
            return base / file_name
    raise BadInput(f"{json_path}: image '{file_name}' not found in {', '.join(str(b) for b in bases[:5])}")


def _union(all_classes: list[ClassList]) -> ClassList:
    """One class list for several COCO files: the first one's, or the union of names by first use."""
    classes = all_classes[0]
    for other in all_classes[1:]:
        if other != classes:
            names = tuple(dict.fromkeys([*classes.names, *other.names]))
            classes = ClassList(names, tuple(default_colors(len(names))))
    return classes


def import_coco(src: Path, dst: Path) -> None:
    """COCO JSON(s) -> prodseg folder; several annotation files (instances_train/val) become splits."""
    jsons = coco_sources(src)
    loaded = [CocoFile(p) for p in jsons]
    classes = _union([c.classes for c in loaded])
    root = src if src.is_dir() else src.parent
    # Several files: each is a split, filled in while the items stream (write_dataset reads it after).
    splits: dict[str, list[str]] = {} if len(jsons) > 1 else read_split_dir(root)

    def items() -> Iterator[Item]:
        for coco in loaded:
            remap = {i: classes.names.index(n) for i, n in enumerate(coco.classes.names)}
            split = split_name(coco.path) if len(jsons) > 1 else ""
            for rec in coco:
                for inst in rec.instances:
                    inst.class_id = remap[inst.class_id]
                if split:
                    splits.setdefault(split, []).append(Path(rec.file_name).stem)
                image = find_image(coco.path, root, split, rec.file_name)
                yield Item(image, semantic_from_instances(rec.instances, (rec.height, rec.width)), rec)

    write_dataset(dst, classes, items(), splits)


def _yaml_list_splits(root: Path) -> dict[str, list[str]]:
    """Splits from dataset.yaml train/val entries that are image-list .txt files (our YOLO exports)."""
    try:
        data = yaml.safe_load((root / "dataset.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    out = {}
    for split in SPLITS:
        value = data.get(split)
        if isinstance(value, str) and value.endswith(".txt") and (root / value).is_file():
            lines = (root / value).read_text().splitlines()
            out[split] = [Path(ln.strip()).stem for ln in lines if ln.strip()]
    return out


def import_yolo(src: Path, dst: Path) -> None:
    """YOLO-seg (flat or images/<split>/ layout) -> prodseg folder; polygons are rasterised."""
    records, classes, splits = read_yolo_splits(src)
    splits = splits or _yaml_list_splits(src) or read_split_dir(src)
    items = (Item(src / "images" / r.file_name, semantic_from_instances(r.instances, (r.height, r.width)), r)
             for r in records)
    write_dataset(dst, classes, items, splits)


def import_color_masks(src: Path, dst: Path) -> None:
    """images/ + masks/ colour PNGs (+ classes.yaml, else shelf10 colours) -> prodseg folder."""
    if not (src / "images").is_dir() or not (src / "masks").is_dir():
        raise BadInput(f"{src}: a colour-mask dataset needs images/ and masks/ folders")
    classes = ClassList.load(src / "classes.yaml") if (src / "classes.yaml").is_file() else SHELF10

    def items() -> Iterator[Item]:
        for image in list_images(src / "images"):
            mask_path = src / "masks" / f"{image.stem}.png"
            if not mask_path.is_file():
                raise BadInput(f"{mask_path}: colour mask missing for image {image.name}")
            yield Item(image, decode_color(read_image(mask_path), classes, mask_path))

    write_dataset(dst, classes, items(), read_split_dir(src))


def import_prodseg(src: Path, dst: Path) -> None:
    """A prodseg folder -> a copy of it (checked to be one first)."""
    ShelfDataset(src)
    shutil.copytree(src, dst, dirs_exist_ok=True)
