"""LabelMe folders: one JSON per image (in any sub-folder) with `shapes` and `imagePath`.

Each shape is `{"label", "points", "shape_type", "group_id"}`; polygons, rectangles (two corners,
inclusive) and circles (centre and a point on the circle) are objects, rasterised on pixel indices as
LabelMe does; shapes of one label sharing a `group_id` are one object. Lines, points and other shape
types carry no area: they are skipped with one counted warning. `imagePath` is relative to the JSON
and must stay inside the source folder; when the file is missing, the embedded `imageData` is used.

Classes: `background` plus the labels seen, sorted; or, with `--classes FILE`, the names of FILE
(one per line, as LabelMe's labels.txt: `__ignore__` is skipped, `_background_` is background; or a
classes.yaml), and a label outside them is an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prodseg.data.formats.folder import Item, unique_stems, write_dataset
from prodseg.data.formats.geometry import fill_polygon
from prodseg.data.formats.importers import ImportOptions
from prodseg.data.imageio import image_size
from prodseg.data.instances import ImageRecord, Instance, semantic_from_instances
from prodseg.data.layout import entry, read_text
from prodseg.data.taxonomy import ClassList, default_colors
from prodseg.errors import BadInput

log = logging.getLogger(__name__)
BACKGROUND_LABELS = ("background", "_background_")


def _rectangle(pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    (x0, y0), (x1, y1) = np.round(pts).astype(np.int32)
    return fill_polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), shape)


def _circle(pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    (cx, cy), edge = pts
    m = np.zeros(shape, np.uint8)
    radius = int(round(math.dist((cx, cy), edge)))
    cv2.circle(m, (int(round(cx)), int(round(cy))), radius, 1, -1)
    return m.astype(bool)


# shape_type -> (number of points it needs: exact, or at least when negative; rasteriser)
SHAPES: dict[str, tuple[int, Callable[[np.ndarray, tuple[int, int]], np.ndarray]]] = {
    "polygon": (-3, fill_polygon),
    "rectangle": (2, _rectangle),
    "circle": (2, _circle),
}


@dataclass
class Shape:
    label: str
    kind: str
    points: np.ndarray
    group: Any


@dataclass
class Annotated:
    json: Path
    image: Path
    width: int
    height: int
    shapes: list[Shape]


def is_labelme(path: Path) -> bool:
    """A JSON file whose top level has a `shapes` list (read only as far as needed to tell)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("shapes"), list)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{path}: not valid JSON; fix or remove it") from exc
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise BadInput(f"{path}: expected a LabelMe object with 'shapes' and 'imagePath'")
    return data


def _shape(raw: Any, where: str, limit: float, skipped: Counter) -> Shape | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("label"), str) or not raw["label"].strip():
        raise BadInput(f"{where}: expected an object with a non-empty 'label'; fix the LabelMe file")
    kind = raw.get("shape_type") or "polygon"
    if kind not in SHAPES:
        skipped[f"{kind!r:.20} shapes (no area)"] += 1
        return None
    try:
        pts = np.array(raw.get("points"), np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{where}: 'points' must be [[x, y], ...] numbers; fix the LabelMe file") from exc
    need = SHAPES[kind][0]
    if (len(pts) != need) if need > 0 else (len(pts) < -need):
        raise BadInput(
            f"{where}: a {kind} needs {'at least ' if need < 0 else ''}{abs(need)} points, "
            f"got {len(pts)}; fix the LabelMe file"
        )
    if not np.isfinite(pts).all() or np.abs(pts).max() > limit:
        raise BadInput(f"{where}: 'points' must be finite and near the image; fix the LabelMe file")
    return Shape(raw["label"].strip(), kind, pts, raw.get("group_id"))


def _image(root: Path, path: Path, data: dict[str, Any], tmp: Path) -> Path:
    name = data.get("imagePath")
    if not isinstance(name, str) or not name.strip():
        raise BadInput(f"{path}: 'imagePath' missing; fix the LabelMe file")
    image = entry(root, path.parent, name.replace("\\", "/"), f"{path}: imagePath {name!r}")
    if image.is_file() or not data.get("imageData"):
        return image
    try:
        raw = base64.b64decode(data["imageData"], validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise BadInput(f"{path}: 'imageData' is not base64; fix the LabelMe file") from exc
    out = tmp / path.relative_to(root).parent / f"{Path(name).stem}{Path(name).suffix or '.png'}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    return out


def _annotated(root: Path, path: Path, tmp: Path, skipped: Counter) -> Annotated:
    data = _load(path)
    image = _image(root, path, data, tmp)
    width, height = image_size(image)
    if (data.get("imageWidth"), data.get("imageHeight")) not in ((None, None), (width, height)):
        raise BadInput(
            f"{path}: imageWidth/imageHeight {data.get('imageWidth')}x{data.get('imageHeight')} "
            f"differ from the image's {width}x{height}; fix the LabelMe file"
        )
    limit = 2.0 * max(width, height)
    shapes = [_shape(s, f"{path}: shapes[{n}]", limit, skipped) for n, s in enumerate(data["shapes"])]
    return Annotated(path, image, width, height, [s for s in shapes if s is not None])


def read_class_file(path: Path) -> ClassList:
    """--classes: a classes.yaml, or names one per line (LabelMe's labels.txt)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return ClassList.load(path)
    if not path.is_file():
        raise BadInput(f"{path}: --classes file not found")
    names = [ln.strip() for ln in read_text(path).splitlines() if ln.strip() and ln.strip() != "__ignore__"]
    things = [n for n in names if n not in BACKGROUND_LABELS]
    try:
        return ClassList(("background", *things), tuple(default_colors(len(things) + 1)))
    except BadInput as exc:
        raise BadInput(f"{path}: {str(exc).split(': ', 1)[-1]}; fix the --classes file") from exc


def _classes(annotated: list[Annotated], classes_file: Path | None) -> ClassList:
    seen = sorted({s.label for a in annotated for s in a.shapes} - set(BACKGROUND_LABELS))
    if classes_file is None:
        return ClassList(("background", *seen), tuple(default_colors(len(seen) + 1)))
    classes = read_class_file(classes_file)
    unknown = [n for n in seen if n not in classes.names]
    if unknown:
        raise BadInput(f"{classes_file}: labels {unknown} of the LabelMe files are not in it; add them")
    return classes


def _instances(a: Annotated, classes: ClassList) -> list[Instance]:
    """Shapes as objects: one per shape, or per (label, group_id) when a group is given."""
    shape = (a.height, a.width)
    groups: dict[Any, Instance] = {}
    out: list[Instance] = []
    for s in a.shapes:
        cid = 0 if s.label in BACKGROUND_LABELS else classes.names.index(s.label)
        mask = SHAPES[s.kind][1](s.points, shape)
        key = (s.label, s.group) if s.group is not None else None
        if key in groups:
            groups[key].mask |= mask
            continue
        inst = Instance(cid, mask)
        out.append(inst)
        if key is not None:
            groups[key] = inst
    return out


def import_labelme(src: Path, dst: Path, opts: ImportOptions = ImportOptions()) -> None:
    """A folder of LabelMe JSON files (and their images) -> prodseg folder."""
    files = sorted(p for p in src.rglob("*.json") if is_labelme(p))
    if not files:
        raise BadInput(f"{src}: no LabelMe *.json files (with 'shapes'); is it a LabelMe folder?")
    skipped: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix=".prodseg-labelme.", dir=dst.parent) as tmp:
        annotated = [_annotated(src, p, Path(tmp), skipped) for p in files]
        for what, n in skipped.items():
            log.warning("%s: skipped %d %s", src, n, what)
        classes = _classes(annotated, opts.classes)
        stems = unique_stems([a.json.with_name(a.image.name) for a in annotated], src)

        def items() -> Iterator[Item]:
            for a in annotated:
                insts = _instances(a, classes)
                rec = ImageRecord(a.image.name, a.height, a.width, [i for i in insts if i.class_id])
                stem = stems[a.json.with_name(a.image.name)]
                yield Item(a.image, semantic_from_instances(insts, (a.height, a.width)), rec, stem)

        write_dataset(dst, classes, items())
