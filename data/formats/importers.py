"""Importers: a COCO / colour-mask / prodseg source -> a prodseg dataset folder, and what every importer
shares (ImportOptions). CVAT's and Roboflow's COCO exports are COCO sources; the other tools' formats
have their own modules (`ultralytics`, `voc`, `labelme`), all registered in `convert.READERS`.

Every file an importer reads must lie inside the source dataset folder (`prodseg.data.layout.inside`
and `entry`): absolute or `..` names in COCO files and image lists, and symlinks to elsewhere, are
refused before anything is written. COCO images are located and their header sizes compared with the
JSON up front too.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prodseg.data.formats.coco import CocoFile
from prodseg.data.formats.coco_validate import Id
from prodseg.data.formats.color_masks import decode_color
from prodseg.data.formats.folder import Item, unique_stems, write_dataset
from prodseg.data.imageio import image_size, list_images, read_image
from prodseg.data.instances import semantic_from_instances
from prodseg.data.layout import SPLITS, ShelfDataset, check_tree, entry, inside, read_split_dir
from prodseg.data.taxonomy import SHELF10, ClassList, default_colors
from prodseg.errors import BadInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportOptions:
    """Source-specific choices; each importer reads the ones it needs."""

    crowd: str = "auto"  # what COCO iscrowd=1 masks become: see CROWD_MODES
    classes: Path | None = None  # a class-name list for sources without one (LabelMe)


# COCO iscrowd=1: a crowd (COCO itself), an ignore region (prodseg's own exports), or simply an object
# drawn as a mask rather than a polygon (CVAT's brush and mask tools).
CROWD_MODES = {
    "auto": "instance, except in COCO files written by prodseg, whose crowds are its ignore regions",
    "instance": "an object like any other",
    "ignore": "an ignore region (label 255), left out of instances and YOLO labels",
}

# Where a COCO export keeps its JSON files, most specific first (the first pattern that matches wins).
COCO_PATTERNS = ("instances.json", "annotations/*.json", "_annotations.coco.json", "*/_annotations.coco.json")


def split_name(json_path: Path) -> str:
    """'instances_train2017.json' -> 'train'; Roboflow's 'valid/_annotations.coco.json' -> 'val';
    other names are kept as they are."""
    stem = json_path.stem.lower()
    if stem == "_annotations.coco":
        stem = json_path.parent.name.lower()
    return next((s for s in SPLITS if s in stem), stem)


def coco_sources(src: Path) -> list[Path]:
    """The COCO JSON files of a source: the file itself, or the first of COCO_PATTERNS that matches."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise BadInput(f"{src}: not found; pass a COCO JSON file or a folder with instances.json")
    for pattern in COCO_PATTERNS:
        found = sorted(p for p in src.glob(pattern) if p.is_file())
        if found:
            return [inside(src, p, str(p)) for p in found]
    raise BadInput(f"{src}: no {', '.join(COCO_PATTERNS)}; is it a COCO dataset?")


def find_image(json_path: Path, root: Path, split: str, file_name: str, what: str = "") -> Path:
    """Where a COCO `file_name` lives: next to the JSON, in images/, or in a per-split or per-subset
    folder (CVAT: annotations/instances_default.json with images/default/).

    Only places inside `root` count; a name that leads outside is refused (`what` names the entry).
    """
    what = what or f"{json_path}: file_name {file_name!r}"
    subset = json_path.stem.removeprefix("instances_")
    bases = [
        json_path.parent,
        json_path.parent / "images",
        root / "images",
        root / "images" / split,
        root / "images" / subset,
        root / split,
        root / subset,
        root,
    ]
    outside = None
    for base in dict.fromkeys(bases):
        try:
            path = entry(root, base, file_name, what)
        except BadInput as exc:
            outside = outside or exc
            continue
        if path.is_file():
            return path
    if outside is not None:
        raise outside
    raise BadInput(f"{json_path}: image {file_name!r} not found in {', '.join(str(b) for b in bases[:5])}")


def locate_images(coco: CocoFile, root: Path, split: str) -> dict[Id, Path]:
    """Each image's file (inside `root`), its header size checked against the size the JSON declares."""
    out = {}
    for image_id, rec in coco.images.items():
        what = f"{coco.path}: image id {image_id!r} file_name {rec.file_name!r}"
        path = find_image(coco.path, root, split, rec.file_name, what)
        width, height = image_size(path)
        if (width, height) != (rec.width, rec.height):
            raise BadInput(
                f"{what}: declared {rec.width}x{rec.height} (WxH) but the image is "
                f"{width}x{height}; fix 'width'/'height' in the COCO file"
            )
        out[image_id] = path
    return out


def _union(all_classes: list[ClassList]) -> ClassList:
    """One class list for several COCO files: the first one's, or the union of names by first use."""
    classes = all_classes[0]
    for other in all_classes[1:]:
        if other != classes:
            names = tuple(dict.fromkeys([*classes.names, *other.names]))
            classes = ClassList(names, tuple(default_colors(len(names))))
    return classes


def _crowd_mode(opts: ImportOptions, coco: CocoFile) -> str:
    if opts.crowd not in CROWD_MODES:
        raise BadInput(f"--crowd {opts.crowd!r}: choose one of {', '.join(CROWD_MODES)}")
    if opts.crowd == "auto":
        return "ignore" if coco.written_by_prodseg else "instance"
    return opts.crowd


def _report_crowds(counts: Counter) -> None:
    for mode, n in sorted(counts.items()):
        if n:
            log.info(
                "%d mask region(s) marked iscrowd=1 imported as %s (--crowd %s; the other choice is "
                "--crowd %s)",
                n,
                "instances" if mode == "instance" else "ignore regions (255)",
                mode,
                "ignore" if mode == "instance" else "instance",
            )


def import_coco(src: Path, dst: Path, opts: ImportOptions = ImportOptions()) -> None:
    """COCO JSON(s) -> prodseg folder; several annotation files (instances_train/val, Roboflow's
    train/ valid/ test/) become splits."""
    jsons = coco_sources(src)
    loaded = [CocoFile(p) for p in jsons]
    modes = [_crowd_mode(opts, c) for c in loaded]
    classes = _union([c.classes for c in loaded])
    root = src if src.is_dir() else src.parent
    # Several files: each is a split, filled in while the items stream (write_dataset reads it after).
    splits: dict[str, list[str]] = {} if len(jsons) > 1 else read_split_dir(root)
    split_of = {coco.path: split_name(coco.path) if len(jsons) > 1 else "" for coco in loaded}
    files = [locate_images(coco, root, split_of[coco.path]) for coco in loaded]  # all checked before work
    stems = unique_stems([p for paths in files for p in paths.values()], root)
    crowds: Counter = Counter()

    def items() -> Iterator[Item]:
        for coco, paths, mode in zip(loaded, files, modes, strict=True):
            remap = {i: classes.names.index(n) for i, n in enumerate(coco.classes.names)}
            split = split_of[coco.path]
            for image_id, image in paths.items():
                rec = coco.record(image_id)
                for inst in rec.instances:
                    inst.class_id = remap[inst.class_id]
                    crowds[mode] += inst.iscrowd
                    inst.iscrowd = inst.iscrowd and mode == "ignore"
                if split:
                    splits.setdefault(split, []).append(stems[image])
                yield Item(
                    image, semantic_from_instances(rec.instances, (rec.height, rec.width)), rec, stems[image]
                )

    write_dataset(dst, classes, items(), splits)
    _report_crowds(crowds)


def import_color_masks(src: Path, dst: Path, opts: ImportOptions = ImportOptions()) -> None:
    """images/ + masks/ colour PNGs (+ classes.yaml, else shelf10 colours) -> prodseg folder."""
    if not (src / "images").is_dir() or not (src / "masks").is_dir():
        raise BadInput(f"{src}: a colour-mask dataset needs images/ and masks/ folders")
    yaml_path = src / "classes.yaml"
    classes = ClassList.load(inside(src, yaml_path, str(yaml_path))) if yaml_path.is_file() else SHELF10
    pairs = []
    for image in list_images(src / "images"):
        mask_path = src / "masks" / f"{image.stem}.png"
        if not mask_path.is_file():
            raise BadInput(f"{mask_path}: colour mask missing for image {image.name}")
        pairs.append((inside(src, image, str(image)), inside(src, mask_path, str(mask_path))))
    splits = read_split_dir(src)
    items = (Item(image, decode_color(read_image(mask), classes, mask)) for image, mask in pairs)
    write_dataset(dst, classes, items, splits)


def open_prodseg(src: Path) -> ShelfDataset:
    """A prodseg source folder, checked to be one and to hold nothing that leads outside it."""
    if src.is_dir():
        check_tree(src)
    return ShelfDataset(src)


def import_prodseg(src: Path, dst: Path, opts: ImportOptions = ImportOptions()) -> None:
    """A prodseg folder -> a copy of it (checked to be one first)."""
    open_prodseg(src)
    shutil.copytree(src, dst, dirs_exist_ok=True)
