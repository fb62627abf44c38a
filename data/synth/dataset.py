"""`generate_dataset`: a synthetic shelf dataset folder with masks, COCO and YOLO-seg instances."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import cv2
import numpy as np

from prodseg.atomic import write_json
from prodseg.data.imageio import write_image, write_mask
from prodseg.data.instances import ImageRecord
from prodseg.data.layout import make_splits, write_splits
from prodseg.data.synth.render import image_rng, instances_from_ids, render_photo
from prodseg.data.synth.staging import MARKER, staged_folder
from prodseg.data.taxonomy import SHELF10
from prodseg.errors import BadInput

log = logging.getLogger(__name__)


@dataclass
class SynthStats:
    """What `generate_dataset` made and how fast it rendered (rendering only, without file writes)."""

    images: int
    render_s: float
    total_s: float

    @property
    def render_per_s(self) -> float:
        return self.images / self.render_s if self.render_s else float("inf")


class _LazyRecords(Sequence[ImageRecord]):
    """ImageRecords whose full-size instance masks are rebuilt on access from PNG-compressed id maps,

    so a dataset of thousands of 512 px images never holds all boolean masks in memory at once.
    """

    def __init__(self) -> None:
        self._items: list[tuple[str, bytes, np.ndarray]] = []

    def append(self, file_name: str, ids: np.ndarray, lut: np.ndarray) -> None:
        ok, buf = cv2.imencode(".png", ids, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok, "OpenCV encodes 16-bit PNG"
        self._items.append((file_name, buf.tobytes(), lut))

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, i: int) -> ImageRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[ImageRecord]: ...

    def __getitem__(self, i: int | slice) -> ImageRecord | list[ImageRecord]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        name, png, lut = self._items[i]
        ids = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert ids is not None, "decoding a PNG this process encoded"
        return ImageRecord(name, ids.shape[0], ids.shape[1], instances_from_ids(ids, lut))

    def __iter__(self) -> Iterator[ImageRecord]:
        return (self[i] for i in range(len(self)))


def parse_size(size: int | str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(H, W) from 512, "512", "384x512" (HxW) or (H, W); BadInput on anything else."""
    parts: list[object]
    if isinstance(size, str):
        try:
            parts = [int(p) for p in size.lower().split("x")]
        except ValueError:
            raise BadInput(f"size '{size}': expected N or HxW in pixels, e.g. 512 or 384x512") from None
    else:
        parts = [size] if isinstance(size, int | np.integer) else list(size)
    hw = [p for p in parts if isinstance(p, int | np.integer) and not isinstance(p, bool)]
    if len(parts) == 1:
        hw = hw * 2
    if len(hw) != 2 or len(parts) > 2 or not all(16 <= v <= 8192 for v in hw):
        raise BadInput(f"size {size}: each side must be an integer between 16 and 8192 pixels")
    return int(hw[0]), int(hw[1])


def _check_args(images: int, val_fraction: float) -> None:
    if not isinstance(images, (int, np.integer)) or images < 1:
        raise BadInput(f"images={images}: need at least 1 image")
    if not 0.0 <= val_fraction < 1.0:
        raise BadInput(f"val_fraction={val_fraction}: must be in [0, 1)")


def _write_instances(root: Path, records: Sequence[ImageRecord], splits: dict[str, list[str]]) -> None:
    from prodseg.data.formats.coco import write_coco
    from prodseg.data.formats.yolo import write_yolo

    write_coco(root / "instances.json", records, SHELF10)  # type: ignore[arg-type]
    write_yolo(root, records, SHELF10, splits)  # type: ignore[arg-type]


def _render_all(root: Path, images: int, hw: tuple[int, int], seed: int, val_fraction: float) -> float:
    """Render and write every image, mask and annotation; return the seconds spent rendering."""
    records, stems, render_s = _LazyRecords(), [], 0.0
    for i in range(images):
        stem = f"shelf_{i:06d}"
        t = time.perf_counter()
        shot = render_photo(hw, image_rng(seed, i))
        render_s += time.perf_counter() - t
        write_image(root / "images" / f"{stem}.jpg", shot.image, quality=92)
        write_mask(root / "masks" / f"{stem}.png", shot.mask)
        records.append(f"{stem}.jpg", shot.ids, shot.lut)
        stems.append(stem)
    SHELF10.save(root / "classes.yaml")
    splits = make_splits(stems, val_fraction)
    write_splits(root, splits)
    _write_instances(root, records, splits)
    return render_s


def generate_dataset(
    root: str | Path,
    images: int,
    size: int | tuple[int, int] | str,
    seed: int,
    val_fraction: float = 0.2,
    stats: list[SynthStats] | None = None,
) -> Path:
    """Render `images` shelf photos into a dataset folder (images, masks, classes, splits, COCO, YOLO-seg).

    Image i depends only on (seed, i). Pass a list as `stats` to receive the timing of this run.
    """
    hw = parse_size(size)
    _check_args(images, val_fraction)
    root, t0 = Path(root), time.perf_counter()
    with staged_folder(root, MARKER) as tmp:
        render_s = _render_all(tmp, images, hw, seed, val_fraction)
        write_json(
            tmp / MARKER,
            {
                "generator": "prodseg.data.synth",
                "images": images,
                "size": list(hw),
                "seed": seed,
                "val_fraction": val_fraction,
            },
        )
    run = SynthStats(images, render_s, time.perf_counter() - t0)
    if stats is not None:
        stats.append(run)
    log.debug("synth: %d images in %.2fs (%.1f rendered/s)", images, run.total_s, run.render_per_s)
    return root
