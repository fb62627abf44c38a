"""Validation of a parsed COCO instances JSON, entry by entry, before any mask is decoded.

Every problem is a BadInput naming the file and the entry (image id, annotation id or list position)
and what to fix, never a traceback, and never a mask decode that could write past its buffer
(pycocotools trusts RLE counts and polygon coordinates). What is refused: entries that are not
objects, missing keys, ids that are not an integer or a string, duplicate ids, zero, negative or
oversized image sizes (the `prodseg.data.imageio` pixel limit), annotations naming an unknown image or
category, polygons that are not lists of finite numbers in pairs or that lie far outside their image,
RLE whose size differs from its image or whose counts do not cover it exactly.

What is skipped, counted in `Skipped` and reported as one warning per file: annotations with
`"segmentation": []` (box-only objects, as CVAT writes them: no mask to import) and polygon parts of
fewer than 3 points (no area).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from prodseg.data.imageio import check_image_size
from prodseg.data.instances import ImageRecord
from prodseg.errors import BadInput

Id = int | str
BOX_ONLY = 'box-only annotations ("segmentation": [], no mask to import)'
SHORT_POLYGONS = "polygon parts with fewer than 3 points (no area)"
# Polygon vertices may stray a little outside the image; far outside is an error (and would make
# pycocotools allocate a buffer proportional to the coordinates).
_MARGIN = 1.0


@dataclass(frozen=True)
class Annotation:
    """One validated annotation: its segmentation is safe to hand to pycocotools."""

    id: Id
    category_id: Id
    segmentation: list[list[float]] | dict[str, Any]
    score: float
    iscrowd: bool


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{where}: expected an object {{...}}, got {type(value).__name__}; fix the COCO file")
    return value


def _key(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise BadInput(f"{where}: missing key '{key}'; fix the COCO file")
    return obj[key]


def _id(value: Any, where: str, key: str = "id") -> Id:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadInput(f"{where}: '{key}' {value!r:.40} is not an integer or a string; fix the COCO file")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any, key: str, where: str) -> int:
    if not _number(value) or value != int(value):
        raise BadInput(f"{where}: '{key}' {value!r:.40} is not a whole number; fix the COCO file")
    return int(value)


def categories(entries: list[Any], path: str) -> dict[Id, str]:
    """Category id -> name."""
    out: dict[Id, str] = {}
    for n, cat in enumerate(entries):
        where = f"{path}: categories[{n}]"
        cat = _object(cat, where)
        cid = _id(_key(cat, "id", where), where)
        name = _key(cat, "name", where)
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{where}: 'name' {name!r:.40} is not a non-empty string; fix the COCO file")
        if cid in out:
            raise BadInput(f"{path}: category id {cid!r} is used twice; give each category its own id")
        out[cid] = name
    return out


def images(entries: list[Any], path: str) -> dict[Id, ImageRecord]:
    """Image id -> record (file name and declared size, checked against the pixel limit)."""
    out: dict[Id, ImageRecord] = {}
    for n, img in enumerate(entries):
        img = _object(img, f"{path}: images[{n}]")
        iid = _id(_key(img, "id", f"{path}: images[{n}]"), f"{path}: images[{n}]")
        where = f"{path}: image id {iid!r}"
        if iid in out:
            raise BadInput(f"{where}: the id is used twice; give each image its own id")
        name = _key(img, "file_name", where)
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"{where}: 'file_name' {name!r:.40} is not a non-empty string; fix the COCO file")
        width, height = (_whole(_key(img, k, where), k, where) for k in ("width", "height"))
        check_image_size(width, height, f"{where} file_name {name!r}")
        out[iid] = ImageRecord(name, height, width)
    return out


def _polygons(seg: list[Any], rec: ImageRecord, where: str, skipped: Counter) -> list[list[float]]:
    kept = []
    for part in seg:
        if not isinstance(part, list) or not all(_number(v) for v in part) or len(part) % 2:
            raise BadInput(
                f"{where}: 'segmentation' polygons must be lists [x1, y1, x2, y2, ...] of finite "
                f"numbers in pairs, got {part!r:.60}; fix the COCO file"
            )
        xs, ys = part[0::2], part[1::2]
        if xs and (
            min(xs) < -_MARGIN * rec.width
            or max(xs) > (1 + _MARGIN) * rec.width
            or min(ys) < -_MARGIN * rec.height
            or max(ys) > (1 + _MARGIN) * rec.height
        ):
            raise BadInput(
                f"{where}: polygon coordinates x {min(xs):g}..{max(xs):g}, "
                f"y {min(ys):g}..{max(ys):g} are far outside the "
                f"{rec.width}x{rec.height} image; fix the COCO file"
            )
        if len(part) < 6:
            skipped[SHORT_POLYGONS] += 1
        else:
            kept.append([float(v) for v in part])
    return kept


def _rle(seg: dict[str, Any], rec: ImageRecord, where: str) -> dict[str, Any]:
    size, counts = _key(seg, "size", where), _key(seg, "counts", where)
    if size != [rec.height, rec.width]:
        raise BadInput(
            f"{where}: RLE 'size' {size!r:.40} differs from the image's [height, width] "
            f"[{rec.height}, {rec.width}]; fix the COCO file"
        )
    if isinstance(counts, list):
        if (
            not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
            or sum(counts) != rec.height * rec.width
        ):
            raise BadInput(
                f"{where}: RLE 'counts' must be non-negative integers adding up to "
                f"{rec.height}x{rec.width} pixels; fix the COCO file"
            )
    elif not isinstance(counts, str):
        raise BadInput(f"{where}: RLE 'counts' is neither a list nor a string; fix the COCO file")
    return {"size": size, "counts": counts}


def _segmentation(seg: Any, rec: ImageRecord, where: str, skipped: Counter) -> Any:
    """The checked segmentation, or None when the annotation carries no mask (counted in `skipped`)."""
    if isinstance(seg, list):
        if not seg:
            skipped[BOX_ONLY] += 1
            return None
        return _polygons(seg, rec, where, skipped) or None
    if isinstance(seg, dict):
        return _rle(seg, rec, where)
    raise BadInput(
        f"{where}: 'segmentation' must be polygons [[x1, y1, ...], ...] or an RLE object, "
        f"got {type(seg).__name__}; fix the COCO file"
    )


def annotation(
    ann: Any, n: int, recs: dict[Id, ImageRecord], cats: dict[Id, str], path: str, skipped: Counter
) -> tuple[Id, Annotation] | None:
    """(image id, checked annotation), or None when it carries no mask."""
    pos = f"{path}: annotations[{n}]"
    ann = _object(ann, pos)
    where = f"{path}: annotation id {_id(_key(ann, 'id', pos), pos)!r}"
    image_id = _id(_key(ann, "image_id", where), where, "image_id")
    if image_id not in recs:
        raise BadInput(f"{where}: names image_id {image_id!r}, which is not in 'images'; fix the COCO file")
    cid = _id(_key(ann, "category_id", where), where, "category_id")
    if cid not in cats:
        raise BadInput(f"{where}: names category_id {cid!r}, which is not in 'categories'; fix the COCO file")
    score, crowd = ann.get("score", 1.0), ann.get("iscrowd", 0)
    if not _number(score):
        raise BadInput(f"{where}: 'score' {score!r:.40} is not a finite number; fix the COCO file")
    if crowd not in (0, 1):  # also True/False
        raise BadInput(f"{where}: 'iscrowd' {crowd!r:.40} is not 0 or 1; fix the COCO file")
    seg = _segmentation(_key(ann, "segmentation", where), recs[image_id], where, skipped)
    return None if seg is None else (image_id, Annotation(ann["id"], cid, seg, float(score), bool(crowd)))


def annotations_by_image(
    entries: list[Any], recs: dict[Id, ImageRecord], cats: dict[Id, str], path: str
) -> tuple[dict[Id, list[Annotation]], Counter]:
    """Checked annotations by image id, and the counts of what was skipped (see the module docstring)."""
    by_image: dict[Id, list[Annotation]] = {k: [] for k in recs}
    seen: set[Id] = set()
    skipped: Counter = Counter()
    for n, ann in enumerate(entries):
        checked = annotation(ann, n, recs, cats, path, skipped)
        aid = ann["id"]
        if aid in seen:
            raise BadInput(f"{path}: annotation id {aid!r} is used twice; give each annotation its own id")
        seen.add(aid)
        if checked is not None:
            by_image[checked[0]].append(checked[1])
    return by_image, skipped


def rle_string_counts(text: str, where: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' `rleFrString`, checked)."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x = k = 0
        more = True
        while more:
            c = ord(text[p]) - 48 if p < len(text) and k < 7 else -1
            if not 0 <= c < 64:  # out of the alphabet, truncated, or longer than any run fits
                raise BadInput(
                    f"{where}: RLE 'counts' is not a valid compressed RLE string; fix the COCO file"
                )
            x |= (c & 0x1F) << (5 * k)
            more, p, k = bool(c & 0x20), p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        counts.append(x + counts[-2] if len(counts) > 2 else x)
    return counts


def check_rle_string(text: str, height: int, width: int, where: str) -> None:
    """BadInput unless the compressed RLE covers exactly height x width pixels."""
    counts = rle_string_counts(text, where)
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        raise BadInput(
            f"{where}: RLE 'counts' do not cover the {width}x{height} image exactly; fix the COCO file"
        )
