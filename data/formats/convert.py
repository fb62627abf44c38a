"""Format conversion through the prodseg dataset folder: SRC --import--> folder --export--> DST."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from prodseg.data.formats import exporters, importers
from prodseg.data.formats.coco import SEGMENTERS
from prodseg.data.formats.detect import detect
from prodseg.data.formats.folder import atomic_dir
from prodseg.data.formats.importers import CROWD_MODES, ImportOptions
from prodseg.data.formats.labelme import import_labelme
from prodseg.data.formats.ultralytics import import_yolo
from prodseg.data.formats.voc import import_voc
from prodseg.data.imageio import max_image_pixels
from prodseg.data.layout import ShelfDataset
from prodseg.errors import BadInput

Importer = Callable[[Path, Path, ImportOptions], None]
Exporter = Callable[[ShelfDataset, Path, exporters.ExportOptions], None]

READERS: dict[str, Importer] = {
    "coco": importers.import_coco,  # also CVAT COCO 1.0 and Roboflow COCO
    "yolo": import_yolo,  # ultralytics and Roboflow YOLO-seg (any data YAML)
    "color-masks": importers.import_color_masks,
    "voc": import_voc,  # CVAT Segmentation mask 1.1, Pascal VOC
    "labelme": import_labelme,
    "prodseg": importers.import_prodseg,
}
AUTO = "auto"
WRITERS: dict[str, Exporter] = {
    "coco": exporters.export_coco,
    "yolo": exporters.export_yolo,
    "color-masks": exporters.export_color_masks,
    "prodseg": exporters.export_prodseg,
}


def _pick(registry: dict, name: str, what: str) -> Callable:
    if name not in registry:
        raise BadInput(f"unknown {what} format '{name}'; choose one of {', '.join(registry)}")
    return registry[name]


def convert(
    src: str | Path,
    dst: str | Path,
    from_fmt: str = AUTO,
    to_fmt: str = "prodseg",
    coco_encoding: str = "rle",
    import_opts: ImportOptions | None = None,
) -> Path:
    """Convert dataset SRC in `from_fmt` ('auto': detected) into a new folder DST in `to_fmt`; DST
    appears only when complete."""
    src, dst = Path(src), Path(dst)
    opts_in = import_opts or ImportOptions()
    _pick(CROWD_MODES, opts_in.crowd, "--crowd")
    if opts_in.classes is not None and not Path(opts_in.classes).is_file():
        raise BadInput(f"{opts_in.classes}: --classes file not found")
    if from_fmt == AUTO:
        from_fmt = detect(src)
    importer = _pick(READERS, from_fmt, "source")
    exporter = _pick(WRITERS, to_fmt, "target")
    _pick(SEGMENTERS, coco_encoding, "COCO mask")
    opts = exporters.ExportOptions(coco_encoding)
    max_image_pixels()  # a bad PRODSEG_MAX_IMAGE_PIXELS fails here, once, not at the first image
    if not src.exists():
        raise BadInput(f"{src}: source not found")
    if src.is_dir() and dst.resolve() != src.resolve() and dst.resolve().is_relative_to(src.resolve()):
        raise BadInput(f"{dst}: is inside the source folder {src}; choose a --to folder outside it")
    with atomic_dir(dst) as out:
        if to_fmt == "prodseg":
            importer(src, out, opts_in)
        elif from_fmt == "prodseg":
            exporter(importers.open_prodseg(src), out, opts)
        else:
            with tempfile.TemporaryDirectory(prefix=".prodseg-convert.", dir=out.parent) as tmp:
                hub = Path(tmp) / "dataset"
                hub.mkdir()
                importer(src, hub, opts_in)
                exporter(ShelfDataset(hub), out, opts)
    return dst
