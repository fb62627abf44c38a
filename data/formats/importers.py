"""Importers: a COCO / YOLO-seg / colour-mask / prodseg source -> a prodseg dataset folder.

Every file an importer reads must lie inside the source dataset folder (`prodseg.data.layout.inside`
and `entry`): absolute or `..` names in COCO files and image lists, and symlinks to elsewhere, are
refused before anything is written. COCO images are located and their header sizes compared with the
JSON up front too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

from prodseg.data.formats.coco import CocoFile
from prodseg.data.formats.coco_validate import Id
from prodseg.data.formats.color_masks import decode_color
from prodseg.data.formats.folder import Item, write_dataset
from prodseg.data.formats.yolo import read_yolo_splits
from prodseg.data.imageio import image_size, list_images, read_image
from prodseg.data.instances import semantic_from_instances
from prodseg.data.layout import SPLITS, ShelfDataset, check_tree, entry, inside
from prodseg.data.taxonomy import SHELF10, ClassList, default_colors
from prodseg.errors import BadInput


def read_split_dir(root: Path) -> dict[str, list[str]]:
    """splits/<name>.txt stem lists of a source folder, if it has them."""
    folder = root / "splits"
    if not folder.is_dir():
        return {}
    return {p.stem: [s.strip() for s in _text(inside(root, p, str(p))).splitlines() if s.strip()]
            for p in sorted(folder.glob("*.txt"))}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not a UTF-8 text file ({exc.reason}); fix or remove it") from exc


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
        return [inside(src, src / "instances.json", str(src / "instances.json"))]
    found = sorted((src / "annotations").glob("*.json")) if (src / "annotations").is_dir() else []
    if not found:
        raise BadInput(f"{src}: no instances.json or annotations/*.json; is it a COCO dataset?")
    return [inside(src, p, str(p)) for p in found]


def find_image(json_path: Path, root: Path, split: str, file_name: str, what: str = "") -> Path:
    """Where a COCO `file_name` lives: next to the JSON, in images/, or in a per-split folder.

    Only places inside `root` count; a name that leads outside is refused (`what` names the entry).
    """
    what = what or f"{json_path}: file_name {file_name!r}"
    bases = [json_path.parent, json_path.parent / "images", root / "images", root / "images" / split,
             root / split, root]
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
            raise BadInput(f"{what}: declared {rec.width}x{rec.height} (WxH) but the image is "
                           f"{width}x{height}; fix 'width'/'height' in the COCO file")
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


def import_coco(src: Path, dst: Path) -> None:
    """COCO JSON(s) -> prodseg folder; several annotation files (instances_train/val) become splits."""
    jsons = coco_sources(src)
    loaded = [CocoFile(p) for p in jsons]
    classes = _union([c.classes for c in loaded])
    root = src if src.is_dir() else src.parent
    # Several files: each is a split, filled in while the items stream (write_dataset reads it after).
    splits: dict[str, list[str]] = {} if len(jsons) > 1 else read_split_dir(root)
    split_of = {coco.path: split_name(coco.path) if len(jsons) > 1 else "" for coco in loaded}
    files = [locate_images(coco, root, split_of[coco.path]) for coco in loaded]  # all checked before work

    def items() -> Iterator[Item]:
        for coco, paths in zip(loaded, files, strict=True):
            remap = {i: classes.names.index(n) for i, n in enumerate(coco.classes.names)}
            split = split_of[coco.path]
            for image_id, image in paths.items():
                rec = coco.record(image_id)
                for inst in rec.instances:
                    inst.class_id = remap[inst.class_id]
                if split:
                    splits.setdefault(split, []).append(Path(rec.file_name).stem)
                yield Item(image, semantic_from_instances(rec.instances, (rec.height, rec.width)), rec)

    write_dataset(dst, classes, items(), splits)


def _list_stems(root: Path, lst: Path) -> list[str]:
    """Stems of an image-list file; every line must name a file inside the dataset."""
    stems = []
    for n, line in enumerate(_text(lst).splitlines(), start=1):
        if line.strip():
            stems.append(entry(root, lst.parent, line.strip(), f"{lst}:{n} {line.strip()!r}").stem)
    return stems


def _yaml_list_splits(root: Path) -> dict[str, list[str]]:
    """Splits from dataset.yaml train/val entries that are image-list .txt files (our YOLO exports)."""
    yaml_path = root / "dataset.yaml"
    try:
        data = yaml.safe_load(_text(yaml_path)) or {}
    except (OSError, yaml.YAMLError, RecursionError):
        return {}
    out = {}
    for split in SPLITS:
        value = data.get(split) if isinstance(data, dict) else None
        if isinstance(value, str) and value.endswith(".txt"):
            lst = entry(root, root, value, f"{yaml_path}: {split}: {value!r}")
            if lst.is_file():
                out[split] = _list_stems(root, lst)
    return out


def import_yolo(src: Path, dst: Path) -> None:
    """YOLO-seg (flat or images/<split>/ layout) -> prodseg folder; polygons are rasterised."""
    if (src / "dataset.yaml").exists():
        inside(src, src / "dataset.yaml", str(src / "dataset.yaml"))
    records, classes, splits = read_yolo_splits(src)
    splits = splits or _yaml_list_splits(src) or read_split_dir(src)
    items = (Item(src / "images" / r.file_name, semantic_from_instances(r.instances, (r.height, r.width)), r)
             for r in records)
    write_dataset(dst, classes, items, splits)


def import_color_masks(src: Path, dst: Path) -> None:
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


def import_prodseg(src: Path, dst: Path) -> None:
    """A prodseg folder -> a copy of it (checked to be one first)."""
    open_prodseg(src)
    shutil.copytree(src, dst, dirs_exist_ok=True)
