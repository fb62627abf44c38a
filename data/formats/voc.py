"""Colour-mask datasets in the Pascal VOC layout, as CVAT exports them ("Segmentation mask 1.1"):

    JPEGImages/<id>.jpg                  photos (<id> may contain sub-folders)
    SegmentationClass/<id>.png           one RGB colour per class
    SegmentationObject/<id>.png          optional: one colour per object (its class from the class mask)
    ImageSets/Segmentation/<subset>.txt  ids per subset (train/val/test become splits; 'default' none)
    labelmap.txt                         `name:r,g,b::` per class (CVAT); without it, VOC's 21 classes

Background is class 0 whatever its place in labelmap.txt (added as black if missing). VOC's boundary
colour (224, 224, 192) is read as ignore (255) unless a class uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prodseg.data.formats.color_masks import decode_color, pack
from prodseg.data.formats.folder import Item, unique_stems, write_dataset
from prodseg.data.formats.importers import ImportOptions
from prodseg.data.imageio import IMAGE_EXTS, image_size, read_image
from prodseg.data.instances import ImageRecord, Instance, instances_from_id_map
from prodseg.data.layout import entry, inside, read_text
from prodseg.data.taxonomy import ClassList
from prodseg.errors import BadInput

LABELMAP = "labelmap.txt"
VOID = (224, 224, 192)
VOC_NAMES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
SPLIT_OF_SUBSET = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def voc_colors(n: int) -> list[tuple[int, int, int]]:
    """The VOC colour map (bits of the index spread over the high bits of r, g, b)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def _labelmap_line(line: str, where: str) -> tuple[str, tuple[int, int, int]]:
    fields = line.split(":")
    try:
        color = tuple(int(v) for v in fields[1].split(","))
    except (IndexError, ValueError):
        color = ()
    if len(fields) < 2 or not fields[0].strip() or len(color) != 3 or not all(0 <= v <= 255 for v in color):
        raise BadInput(
            f"{where}: expected 'name:r,g,b::' with values 0..255, got {line!r:.60}; fix labelmap.txt"
        )
    return fields[0].strip(), color  # type: ignore[return-value]


def read_labelmap(path: Path) -> ClassList:
    """Class names and colours of a CVAT labelmap.txt, background first."""
    pairs = [
        _labelmap_line(line.strip(), f"{path}:{n}")
        for n, line in enumerate(read_text(path).splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not pairs:
        raise BadInput(f"{path}: no classes; expected lines 'name:r,g,b::'")
    background = [p for p in pairs if p[0] == "background"] or [("background", (0, 0, 0))]
    pairs = background + [p for p in pairs if p[0] != "background"]
    try:
        return ClassList(tuple(n for n, _ in pairs), tuple(c for _, c in pairs))
    except BadInput as exc:
        raise BadInput(f"{path}: {str(exc).split(': ', 1)[-1]}; fix labelmap.txt") from exc


def _classes(src: Path) -> ClassList:
    path = src / LABELMAP
    if path.exists():
        return read_labelmap(inside(src, path, str(path)))
    return ClassList(VOC_NAMES, tuple(voc_colors(len(VOC_NAMES))))


def _subsets(src: Path) -> dict[str, list[str]]:
    """Ids per ImageSets/Segmentation list, or every class mask's id under 'default'."""
    folder = src / "ImageSets" / "Segmentation"
    lists = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if lists:
        return {
            p.stem: [ln.strip() for ln in read_text(inside(src, p, str(p))).splitlines() if ln.strip()]
            for p in lists
        }
    masks = src / "SegmentationClass"
    return {"default": sorted(str(p.relative_to(masks).with_suffix("")) for p in masks.rglob("*.png"))}


def _image(src: Path, item_id: str, where: str) -> Path:
    base = src / "JPEGImages"
    for ext in IMAGE_EXTS:
        path = entry(src, base, item_id + ext, where)
        if path.is_file():
            return path
    raise BadInput(f"{where}: no image {item_id}.jpg (or .png, ...) in {base}; export with images")


def _png(src: Path, folder: str, item_id: str) -> Path:
    path = src / folder / f"{item_id}.png"
    return entry(src, src / folder, f"{item_id}.png", str(path))


def _object_instances(path: Path, semantic: np.ndarray) -> list[Instance]:
    """One instance per colour of the object mask (black and the boundary colour are no object)."""
    codes = pack(read_image(path))
    if codes.shape != semantic.shape:
        raise BadInput(f"{path}: size {codes.shape[1]}x{codes.shape[0]} differs from its class mask")
    ids = np.unique(codes, return_inverse=True)[1].reshape(codes.shape) + 1
    ids[(codes == pack(np.array((0, 0, 0)))) | (codes == pack(np.array(VOID)))] = 0
    return instances_from_id_map(semantic, ids)


def import_voc(src: Path, dst: Path, opts: ImportOptions = ImportOptions()) -> None:
    """CVAT Segmentation mask 1.1 / Pascal VOC colour masks -> prodseg folder."""
    if not (src / "SegmentationClass").is_dir():
        raise BadInput(f"{src}: no SegmentationClass/ folder; is it a CVAT 'Segmentation mask' export?")
    classes = _classes(src)
    ignore = VOID if VOID not in classes.colors else None
    subsets = _subsets(src)
    ids = list(dict.fromkeys(i for v in subsets.values() for i in v))
    where = {i: f"{src / 'ImageSets'}: id {i!r}" for i in ids}
    images = {i: _image(src, i, where[i]) for i in ids}
    masks = {i: _png(src, "SegmentationClass", i) for i in ids}
    objects = {i: _png(src, "SegmentationObject", i) for i in ids}
    for i in ids:
        if not masks[i].is_file():
            raise BadInput(f"{masks[i]}: class mask missing for image {images[i].name}")
    stems = unique_stems(list(images.values()), src / "JPEGImages")
    splits: dict[str, list[str]] = {}
    for subset, members in subsets.items():
        if subset.lower() in SPLIT_OF_SUBSET:
            splits.setdefault(SPLIT_OF_SUBSET[subset.lower()], []).extend(stems[images[i]] for i in members)

    def items() -> Iterator[Item]:
        for i in ids:
            semantic = decode_color(read_image(masks[i]), classes, masks[i], ignore)
            w, h = image_size(images[i])
            if semantic.shape != (h, w):
                raise BadInput(
                    f"{masks[i]}: size {semantic.shape[1]}x{semantic.shape[0]} differs from "
                    f"its image {w}x{h} (WxH)"
                )
            rec = None
            if objects[i].is_file():
                rec = ImageRecord(images[i].name, h, w, _object_instances(objects[i], semantic))
            yield Item(images[i], semantic, rec, stems[images[i]])

    write_dataset(dst, classes, items(), splits)
