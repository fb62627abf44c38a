"""COCO instance JSON: read (polygons, uncompressed and compressed RLE) and write (RLE or polygons).

`category_id` is the semantic class index (1..N-1); background is not a category. Reading checks the
whole file first (`coco_validate`: what is refused, what is skipped with a warning).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from prodseg.atomic import write_text
from prodseg.data.formats import coco_validate as validate
from prodseg.data.formats.coco_validate import Annotation, Id, check_rle_string
from prodseg.data.formats.geometry import corner_polygons
from prodseg.data.instances import ImageRecord, Instance
from prodseg.data.taxonomy import SHELF10, ClassList, default_colors
from prodseg.errors import BadInput

log = logging.getLogger(__name__)
ENCODINGS = ("rle", "polygon")
PRODSEG_DESCRIPTION = "prodseg dataset"


def _encode(mask: np.ndarray) -> dict[str, Any]:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _rle(mask: np.ndarray, rle: dict[str, Any] | None = None) -> dict[str, Any]:
    rle = rle or _encode(mask)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _polygons(mask: np.ndarray, rle: dict[str, Any] | None = None) -> list[list[float]]:
    return [[round(float(v), 2) for v in p.ravel()] for p in corner_polygons(mask) if len(p) >= 3]


SEGMENTERS = {"rle": _rle, "polygon": _polygons}


def _annotation(inst: Instance, ann_id: int, image_id: int, encoding: str) -> dict[str, Any]:
    m = inst.mask.astype(bool)
    rle = _encode(m)  # bbox and area from the RLE: much faster than scanning the mask
    # Crowds are RLE in COCO whatever the encoding of the others.
    seg = _rle(m, rle) if inst.iscrowd else SEGMENTERS[encoding](m, rle)
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": int(inst.class_id),
        "segmentation": seg,
        "area": int(mask_utils.area(rle)),
        "bbox": [int(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": int(inst.iscrowd),
    }
    if inst.score != 1.0:
        ann["score"] = float(inst.score)
    return ann


class CocoBuilder:
    """Accumulates the COCO object one record at a time; only RLE strings/polygons stay in memory."""

    def __init__(self, classes: ClassList, encoding: str = "rle"):
        if encoding not in SEGMENTERS:
            raise BadInput(f"COCO encoding '{encoding}' is not one of {', '.join(ENCODINGS)}")
        self.encoding = encoding
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.categories = [
            {"id": i, "name": n, "supercategory": "shelf"} for i, n in enumerate(classes.names) if i
        ]

    def add(self, rec: ImageRecord) -> None:
        """Append one image and its non-empty instances."""
        image_id = len(self.images) + 1
        self.images.append(
            {"id": image_id, "file_name": rec.file_name, "height": rec.height, "width": rec.width}
        )
        for inst in rec.instances:
            if inst.mask.any():
                self.annotations.append(_annotation(inst, len(self.annotations) + 1, image_id, self.encoding))

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": {"description": PRODSEG_DESCRIPTION},
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }

    def write(self, path: str | Path) -> Path:
        # Compact: COCO files of real datasets run to many MB and are read by programs, not people.
        return write_text(path, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")


def write_coco(
    path: str | Path, records: Iterable[ImageRecord], classes: ClassList, encoding: str = "rle"
) -> Path:
    """Write COCO instances JSON atomically (masks as RLE or polygons; crowds always RLE)."""
    builder = CocoBuilder(classes, encoding)
    for rec in records:
        builder.add(rec)
    return builder.write(path)


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BadInput(f"{path}: COCO file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, a 5000-digit number
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise BadInput(f"{path}: not valid JSON ({reason}); is it a COCO instances file?") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a COCO object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise BadInput(f"{path}: missing or invalid key '{key}' (a list); is it a COCO instances file?")
    return data


def _classes(cats: dict[Id, str], path: Path) -> tuple[ClassList, dict[Id, int]]:
    """ClassList (background first) and the category id -> semantic index map, matched by name.

    Categories sharing a name share a class; a category named 'background' maps to nothing. Only the
    complete shelf10 set becomes shelf10 (its order and colours); any other set keeps its own names.
    """
    things = {cid: n for cid, n in cats.items() if n != "background"}
    if set(things.values()) == set(SHELF10.thing_names):
        classes = SHELF10
    else:
        ordered = sorted(things, key=lambda c: (isinstance(c, str), c))  # ids may mix int and str
        names = tuple(dict.fromkeys(("background", *(things[cid] for cid in ordered))))
        try:
            classes = ClassList(names, tuple(default_colors(len(names))))
        except BadInput as exc:
            raise BadInput(f"{path}: {str(exc).split(': ', 1)[-1]}") from exc
    return classes, {cid: classes.names.index(n) for cid, n in things.items()}


def _without_group_names(
    cats: dict[Id, str], entries: list[dict[str, Any]], anns: dict[Id, list[Annotation]]
) -> dict[Id, str]:
    """Categories less one that only names the group of all the others.

    Roboflow exports its project name as category 0 (supercategory "none"), the supercategory of every
    real class; it labels nothing and must not become a class. A category that is its own
    supercategory (prodseg's "shelf") is a class.
    """
    used = {a.category_id for per_image in anns.values() for a in per_image}
    supers = {e["id"]: e.get("supercategory") for e in entries}

    def group_only(cid: Id) -> bool:
        others = [s for k, s in supers.items() if k != cid]
        return (
            cid not in used
            and bool(others)
            and supers[cid] != cats[cid]
            and all(s == cats[cid] for s in others)
        )

    dropped = [cid for cid in cats if group_only(cid)]
    if dropped:
        log.debug("category %s only names the group of the others; not a class", dropped)
    return {cid: name for cid, name in cats.items() if cid not in dropped}


def _decode_segmentation(seg: Any, h: int, w: int, where: str) -> np.ndarray:
    """A validated segmentation (see coco_validate) as a bool (h, w) mask."""
    if isinstance(seg, list):  # polygons
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w))).astype(bool)
    if isinstance(seg["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        check_rle_string(seg["counts"], h, w, where)  # pycocotools would write past the mask otherwise
        rle = {"size": [h, w], "counts": seg["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def _instance(ann: Annotation, rec: ImageRecord, cat_map: dict[Id, int], path: Path) -> Instance | None:
    if ann.category_id not in cat_map:
        return None  # a category named 'background': nothing to paint
    mask = _decode_segmentation(ann.segmentation, rec.height, rec.width, f"{path}: annotation id {ann.id!r}")
    return Instance(cat_map[ann.category_id], mask, ann.score, ann.iscrowd)


class CocoFile:
    """A checked COCO instances JSON whose masks are decoded one image at a time (`record`, iteration).

    The whole file is validated on opening (`coco_validate`), so errors come before any work;
    annotations without a mask are skipped with one warning that counts them.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        data = _load(self.path)
        cats = validate.categories(data["categories"], str(self.path))
        self.images: dict[Id, ImageRecord] = validate.images(data["images"], str(self.path))
        self._anns, self.skipped = validate.annotations_by_image(
            data["annotations"], self.images, cats, str(self.path)
        )
        for what, n in self.skipped.items():
            log.warning("%s: skipped %d %s", self.path, n, what)
        self.classes, self._cat_map = _classes(
            _without_group_names(cats, data["categories"], self._anns), self.path
        )
        info = data.get("info")
        # Our own exports mark ignore regions as crowds; other tools' crowds are drawn masks.
        self.written_by_prodseg = isinstance(info, dict) and info.get("description") == PRODSEG_DESCRIPTION
        self.ids_by_stem = {Path(r.file_name).stem: k for k, r in self.images.items()}

    def __len__(self) -> int:
        return len(self.images)

    def record(self, image_id: Id) -> ImageRecord:
        """The image's record with its instances decoded (a fresh object on every call)."""
        rec = self.images[image_id]
        insts = (_instance(a, rec, self._cat_map, self.path) for a in self._anns[image_id])
        return ImageRecord(rec.file_name, rec.height, rec.width, [i for i in insts if i is not None])

    def __iter__(self) -> Iterator[ImageRecord]:
        return (self.record(k) for k in self.images)


def read_coco(path: str | Path) -> tuple[list[ImageRecord], ClassList]:
    """Read a COCO instances JSON into ImageRecords (semantic class ids) and its ClassList."""
    coco = CocoFile(path)
    return list(coco), coco.classes
