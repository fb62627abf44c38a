"""Which importer a source needs, told from the files present: one small detector per format.

Detectors are tried in order, most specific first (a prodseg folder also holds instances.json and a
YOLO dataset.yaml; a colour-mask folder looks like a prodseg one but for its RGB masks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prodseg.data.formats.importers import COCO_PATTERNS
from prodseg.data.formats.labelme import is_labelme
from prodseg.data.formats.ultralytics import YAML_NAMES, has_names
from prodseg.data.formats.voc import LABELMAP
from prodseg.data.imageio import channels
from prodseg.errors import BadInput


@dataclass(frozen=True)
class Detector:
    fmt: str
    looks_for: str  # what the "unknown layout" message says was looked for
    found: Callable[[Path], bool]


def _first_mask(src: Path) -> Path | None:
    masks = src / "masks"
    return next(iter(sorted(masks.glob("*.png"))), None) if masks.is_dir() else None


def _mask_folder(src: Path, wanted_channels: Callable[[int], bool]) -> bool:
    mask = _first_mask(src) if (src / "images").is_dir() else None
    return mask is not None and wanted_channels(channels(mask))


def _coco(src: Path) -> bool:
    if src.is_file():
        return src.suffix.lower() == ".json" and not is_labelme(src)
    return any(p.is_file() for pattern in COCO_PATTERNS for p in src.glob(pattern))


def _voc(src: Path) -> bool:
    return (src / LABELMAP).is_file() or (src / "SegmentationClass").is_dir()


def _yolo(src: Path) -> bool:
    if src.is_file():
        return src.suffix.lower() in (".yaml", ".yml")
    if (src / "labels").is_dir() and (src / "images").is_dir():
        return True
    return any((src / n).is_file() for n in YAML_NAMES) or any(has_names(p) for p in src.glob("*.y*ml"))


def _labelme(src: Path) -> bool:
    return src.is_dir() and any(is_labelme(p) for p in src.rglob("*.json"))


DETECTORS = (
    Detector(
        "prodseg",
        "classes.yaml with images/ and masks/",
        lambda s: (s / "classes.yaml").is_file() and _mask_folder(s, lambda c: c == 1),
    ),
    Detector("color-masks", "images/ with colour masks/", lambda s: _mask_folder(s, lambda c: c >= 3)),
    Detector("coco", ", ".join(COCO_PATTERNS), _coco),
    Detector("voc", f"{LABELMAP}, SegmentationClass/", _voc),
    Detector("yolo", f"{', '.join(YAML_NAMES)}, *.yaml with 'names', labels/", _yolo),
    Detector("labelme", "*.json with 'shapes'", _labelme),
)


def detect(src: Path) -> str:
    """The format of source SRC; BadInput listing what was looked for when none matches."""
    if not src.exists():
        raise BadInput(f"{src}: source not found")
    for d in DETECTORS:
        if d.found(src):
            return d.fmt
    looked = ", ".join(d.looks_for for d in DETECTORS)
    raise BadInput(
        f"{src}: unknown dataset layout: no {looked} found; "
        f"pass --from ({', '.join(d.fmt for d in DETECTORS)})"
    )
