"""YOLO-seg datasets as ultralytics and Roboflow lay them out, described by a data YAML of any name.

The YAML's `train`/`val`/`test` entries are image folders (searched recursively), `.txt` lists of
image paths, or lists of those; `path` (optional) is the folder they are relative to. An image's
labels are where ultralytics looks for them: the last `images` folder of its path replaced by
`labels`, `.txt` for the extension (no label file = an image without objects). `names` is a list or
a `{0: name, ...}` mapping.

The dataset folder is the YAML's folder: `path`, every entry and every line of a list must stay
inside it (`prodseg.data.layout`). Roboflow writes `train: ../train/images` next to a `train/`
folder; like ultralytics, such a `../` entry that does not exist is read without the `../`. A
relative `path` is taken relative to the YAML (ultralytics would look in its own datasets folder,
which a dataset sent to you cannot rely on).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodseg.data.formats.folder import Item, unique_stems, write_dataset
from prodseg.data.formats.importers import ImportOptions
from prodseg.data.formats.yolo import read_label_file, read_names, yolo_images
from prodseg.data.imageio import IMAGE_EXTS, image_size
from prodseg.data.instances import ImageRecord, semantic_from_instances
from prodseg.data.layout import SPLITS, entry, inside, read_split_dir, read_text
from prodseg.errors import BadInput
from prodseg.yamlio import parse_yaml

YAML_NAMES = ("data.yaml", "dataset.yaml")  # looked for first; else the folder's only YAML with 'names'
_ROBOFLOW_UP = "../"


@dataclass(frozen=True)
class Sample:
    split: str | None
    image: Path
    label: Path


def has_names(path: Path) -> bool:
    try:
        data = parse_yaml(read_text(path), path)
    except BadInput:
        return False
    return isinstance(data, dict) and "names" in data


def find_yaml(src: Path) -> Path:
    """The data YAML: SRC itself, SRC/data.yaml or dataset.yaml, or SRC's only *.yaml with 'names'."""
    if src.is_file():
        return src
    for name in YAML_NAMES:
        if (src / name).is_file():
            return inside(src, src / name, str(src / name))
    found = [p for p in sorted([*src.glob("*.yaml"), *src.glob("*.yml")]) if has_names(p)]
    if len(found) != 1:
        which = (
            f"{len(found)} YAML files with 'names' ({', '.join(p.name for p in found)})"
            if found
            else "no data.yaml"
        )
        raise BadInput(f"{src}: {which}; pass the dataset's YAML file itself as SRC")
    return inside(src, found[0], str(found[0]))


def _load(path: Path) -> dict[str, Any]:
    data = parse_yaml(read_text(path), path, "data YAML") or {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected keys 'names', 'train', 'val'; is it an ultralytics data YAML?")
    return data


def resolve(root: Path, base: Path, value: str, what: str) -> Path:
    """A path named in the dataset: relative to `base`, or absolute; inside `root` either way."""
    if Path(value).is_absolute():
        if not Path(value).resolve().is_relative_to(root.resolve()):
            raise BadInput(
                f"{what}: is an absolute path outside the dataset folder {root}; make it "
                "relative to the YAML's folder (copy the files into the dataset folder)"
            )
        return inside(root, value, what)
    if value.startswith(_ROBOFLOW_UP) and (base / value[len(_ROBOFLOW_UP) :]).exists():
        value = value[len(_ROBOFLOW_UP) :]
    return entry(root, base, value, what)


def _list_file(root: Path, lst: Path) -> list[Path]:
    out = []
    for n, line in enumerate(read_text(lst).splitlines(), start=1):
        if line.strip():
            out.append(resolve(root, lst.parent, line.strip(), f"{lst}:{n} {line.strip()!r}"))
    return out


def _images_of(root: Path, path: Path, what: str) -> list[Path]:
    if path.is_dir():
        return sorted(
            inside(root, p, str(p)) for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file()
        )
    if path.suffix.lower() == ".txt" and path.is_file():
        return _list_file(root, path)
    raise BadInput(f"{what}: not found (an image folder or a .txt list of images); fix the data YAML")


def label_of(root: Path, image: Path) -> Path:
    """ultralytics' rule: the last 'images' folder of the path becomes 'labels', the suffix '.txt'."""
    parts = list(image.relative_to(root).parts) if image.is_relative_to(root) else list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return root / Path(*parts).with_suffix(".txt")


def _split_samples(root: Path, base: Path, yaml_path: Path, data: dict[str, Any]) -> list[Sample]:
    """Samples of the train/val/test entries; an image listed twice stays in its first split."""
    found: dict[str, list[Path]] = {}
    for split in SPLITS:
        value = data.get(split)
        values = value if isinstance(value, list) else [value] if value else []
        for v in values:
            if not isinstance(v, str):
                raise BadInput(f"{yaml_path}: {split}: {v!r:.40} is not a path; fix the data YAML")
            path = resolve(root, base, v, f"{yaml_path}: {split}: {v!r}")
            found.setdefault(split, []).extend(_images_of(root, path, f"{yaml_path}: {split}: {v!r}"))
    one_set = len({frozenset(v) for v in found.values()}) == 1  # train = val: no split was given
    seen: set[Path] = set()
    out = []
    for split, images in found.items():
        for image in images:
            if image not in seen:
                seen.add(image)
                out.append(Sample(None if one_set else split, image, label_of(root, image)))
    return out


def read_samples(src: Path) -> tuple[Path, Path, list[Sample]]:
    """(dataset folder, data YAML, samples) of an ultralytics/Roboflow dataset, all paths checked."""
    yaml_path = find_yaml(src)
    root = yaml_path.parent
    data = _load(yaml_path)
    base = root
    if data.get("path") not in (None, ""):
        if not isinstance(data["path"], str):
            raise BadInput(f"{yaml_path}: path: {data['path']!r:.40} is not a folder name; fix the data YAML")
        base = resolve(root, root, data["path"], f"{yaml_path}: path: {data['path']!r}")
    if any(data.get(s) for s in SPLITS):
        samples = _split_samples(root, base, yaml_path, data)
    else:  # no entries: the images/ (+ images/<split>/) layout next to the YAML
        samples = [
            Sample(split, inside(root, img, str(img)), label) for split, img, label in yolo_images(base)
        ]
    for s in samples:
        if s.label.exists():
            inside(root, s.label, str(s.label))
    return root, yaml_path, samples


def import_yolo(src: Path, dst: Path, opts: ImportOptions = ImportOptions()) -> None:
    """ultralytics / Roboflow YOLO-seg (data YAML + images + labels) -> prodseg folder."""
    root, yaml_path, samples = read_samples(src)
    classes = read_names(yaml_path)
    sizes = {s.image: image_size(s.image) for s in samples}  # every image bounded before any work
    stems = unique_stems([s.image for s in samples], root)
    splits: dict[str, list[str]] = {}
    for s in samples:
        if s.split is not None:
            splits.setdefault(s.split, []).append(stems[s.image])

    def items() -> Iterator[Item]:
        for s in samples:
            w, h = sizes[s.image]
            insts = read_label_file(s.label, h, w, len(classes.thing_names)) if s.label.is_file() else []
            rec = ImageRecord(s.image.name, h, w, insts)
            yield Item(s.image, semantic_from_instances(insts, (h, w)), rec, stems[s.image])

    write_dataset(dst, classes, items(), splits or read_split_dir(root))
