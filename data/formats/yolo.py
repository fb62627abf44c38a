"""YOLO-seg labels in the ultralytics layout: `labels/<stem>.txt` + `dataset.yaml`.

Each line is `class x1 y1 x2 y2 ...` with class = semantic index - 1 and coordinates normalised by
the image width/height. An instance with several parts (occlusion) becomes ONE line whose parts
are joined the way ultralytics' COCO converter joins them (`geometry.merge_segments`). Holes are
not representable; crowds (ignore regions) are skipped, as ultralytics does. Reading refuses images
and label files that are symlinks to outside the dataset folder (`prodseg.data.layout.inside`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml

from prodseg.atomic import write_text
from prodseg.data.formats.geometry import centre_polygons, fill_polygon, merge_segments
from prodseg.data.imageio import IMAGE_EXTS, read_image
from prodseg.data.instances import ImageRecord, Instance
from prodseg.data.layout import inside, read_text
from prodseg.data.taxonomy import SHELF10, ClassList, default_colors
from prodseg.errors import BadInput
from prodseg.yamlio import read_yaml


def label_line(inst: Instance, width: int, height: int) -> str | None:
    """One YOLO-seg line for an instance, or None for crowds and empty masks."""
    if inst.iscrowd or not inst.mask.any():
        return None
    poly = merge_segments(centre_polygons(inst.mask)) / np.array([width, height], np.float64)
    coords = " ".join(f"{v:.6f}" for v in poly.ravel())
    return f"{inst.class_id - 1} {coords}"


def write_labels(labels_dir: str | Path, records: Iterable[ImageRecord]) -> None:
    """Write `labels/<stem>.txt` for each record (an empty file for an image without objects)."""
    for rec in records:
        lines = [ln for ln in (label_line(i, rec.width, rec.height) for i in rec.instances) if ln]
        write_text(Path(labels_dir) / f"{Path(rec.file_name).stem}.txt", "".join(f"{ln}\n" for ln in lines))


def dataset_yaml(classes: ClassList, train: str, val: str) -> str:
    """The ultralytics data YAML text; `path` is left out so ultralytics uses the YAML's own folder."""
    body = yaml.safe_dump(
        {
            "train": train,
            "val": val,
            "nc": len(classes.thing_names),
            "names": dict(enumerate(classes.thing_names)),
        },
        sort_keys=False,
    )
    return (
        "# YOLO-seg dataset written by prodseg. Without a 'path' key ultralytics resolves\n"
        "# train/val against this file's folder, so the dataset can be moved.\n" + body
    )


def write_yolo_yaml(
    root: str | Path,
    classes: ClassList,
    splits: dict[str, list[str]] | None = None,
    file_names: dict[str, str] | None = None,
) -> Path:
    """Write `dataset.yaml` and, per split, a `yolo_<split>.txt` list of `./images/<file>` lines.

    `file_names` maps stem -> image file name; without splits, train and val both point at `images`.
    """
    root, names = Path(root), file_names or {}
    lists = {}
    for split, stems in (splits or {}).items():
        lists[split] = f"yolo_{split}.txt"
        write_text(root / lists[split], "".join(f"./images/{names[s]}\n" for s in stems if s in names))
    text = dataset_yaml(classes, lists.get("train", "images"), lists.get("val", "images"))
    return write_text(root / "dataset.yaml", text)


def write_yolo(
    root: str | Path,
    records: Iterable[ImageRecord],
    classes: ClassList,
    splits: dict[str, list[str]] | None = None,
) -> Path:
    """Write `labels/` and `dataset.yaml` under root (images are expected in `root/images/`).

    With splits (stem lists), `yolo_<split>.txt` image lists are written and named in the YAML.
    """
    names = {}
    for rec in records:
        write_labels(Path(root) / "labels", [rec])
        names[Path(rec.file_name).stem] = Path(rec.file_name).name
    return write_yolo_yaml(root, classes, splits, names)


def parse_label_line(line: str, num_things: int, where: str) -> tuple[int, np.ndarray]:
    """(semantic class id, normalised (N, 2) polygon) of one label line, BadInput when malformed."""
    parts = line.split()
    try:
        cls, coords = int(parts[0]), np.array([float(v) for v in parts[1:]], np.float64)
    except ValueError as exc:
        raise BadInput(f"{where}: not a YOLO-seg line 'class x1 y1 x2 y2 ...' ({exc})") from exc
    if not 0 <= cls < num_things:
        raise BadInput(f"{where}: class {cls} is outside 0..{num_things - 1} (dataset.yaml names)")
    if not np.isfinite(coords).all():
        raise BadInput(
            f"{where}: coordinates must be finite numbers, found "
            f"{', '.join(sorted({str(v) for v in coords[~np.isfinite(coords)]}))}"
        )
    if coords.size < 6 or coords.size % 2:
        raise BadInput(f"{where}: a polygon needs an even number (>= 6) of coordinates, got {coords.size}")
    if coords.min() < -0.01 or coords.max() > 1.01:
        raise BadInput(
            f"{where}: coordinates must be normalised to 0..1, found {coords.min():g}..{coords.max():g}"
        )
    return cls + 1, coords.reshape(-1, 2)


def read_label_file(path: Path, height: int, width: int, num_things: int) -> list[Instance]:
    """Instances of one label file, rasterised at the image size."""
    out = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            cid, poly = parse_label_line(line, num_things, f"{path}:{n}")
            out.append(Instance(cid, fill_polygon(poly * [width, height], (height, width))))
    return out


def read_names(yaml_path: Path) -> ClassList:
    """ClassList (background + dataset.yaml names; shelf10 colours when the names are shelf10's)."""
    if not yaml_path.is_file():
        raise BadInput(f"{yaml_path}: dataset.yaml not found; a YOLO-seg dataset needs one with 'names'")
    data = read_yaml(yaml_path, "dataset.yaml") or {}
    try:
        names = data["names"]
        ordered = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
        things = [str(n) for n in ordered]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{yaml_path}: needs 'names' as a list or {{0: name, ...}} ({exc!r:.80})") from exc
    if tuple(things) == SHELF10.thing_names:
        return SHELF10
    all_names = ("background", *things)
    try:
        return ClassList(all_names, tuple(default_colors(len(all_names))))
    except BadInput as exc:
        raise BadInput(f"{yaml_path}: {str(exc).split(': ', 1)[-1]}") from exc


def yolo_images(root: Path) -> list[tuple[str | None, Path, Path]]:
    """(split or None, image, label file) for the flat and the `images/<split>/` layouts."""
    images = root / "images"
    if not images.is_dir():
        raise BadInput(f"{root}: no images/ folder; a YOLO-seg dataset has images/ and labels/")
    subdirs = sorted(p for p in images.iterdir() if p.is_dir())
    groups: list[tuple[str | None, Path, Path]] = [(d.name, d, root / "labels" / d.name) for d in subdirs]
    groups = groups or [(None, images, root / "labels")]
    return [
        (split, img, lab / f"{img.stem}.txt")
        for split, d, lab in groups
        for img in sorted(d.iterdir())
        if img.suffix.lower() in IMAGE_EXTS
    ]


def read_yolo(root: str | Path) -> tuple[list[ImageRecord], ClassList]:
    """Read a YOLO-seg dataset (flat or split sub-folders) into ImageRecords; see `read_yolo_splits`."""
    records, classes, _ = read_yolo_splits(root)
    return records, classes


def read_yolo_splits(root: str | Path) -> tuple[list[ImageRecord], ClassList, dict[str, list[str]]]:
    """Records, classes and the splits given by `images/<split>/` sub-folders (empty when flat)."""
    root = Path(root)
    classes = read_names(root / "dataset.yaml")
    records: list[ImageRecord] = []
    splits: dict[str, list[str]] = {}
    for split, img, label in yolo_images(root):
        inside(root, img, str(img))
        if label.exists():
            inside(root, label, str(label))
        h, w = read_image(img).shape[:2]
        rel = str(img.relative_to(root / "images"))
        insts = read_label_file(label, h, w, len(classes.thing_names)) if label.is_file() else []
        records.append(ImageRecord(rel, h, w, insts))
        if split is not None:
            splits.setdefault(split, []).append(img.stem)
    return records, classes, splits
