"""`prodseg-data check`: validate a dataset folder and list every problem, not just the first."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import numpy as np

from prodseg.data.formats.coco import CocoFile
from prodseg.data.formats.yolo import parse_label_line, read_names
from prodseg.data.imageio import IMAGE_EXTS, max_image_pixels, read_image, read_mask
from prodseg.data.layout import SPLITS, Sample, ShelfDataset
from prodseg.data.taxonomy import IGNORE_INDEX, ClassList
from prodseg.errors import BadInput


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Scan:
    """What the checks share: the folder, its classes (None when unreadable) and its images by stem."""

    root: Path
    classes: ClassList | None
    images: dict[str, Path]
    problems: list[Problem]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (H, W) of images that decode

    def add(self, path: Path, message: str) -> None:
        self.problems.append(Problem(path, message))


def _classes(scan: Scan) -> None:
    try:
        scan.classes = ClassList.load(scan.root / "classes.yaml")
    except BadInput as exc:
        scan.add(scan.root / "classes.yaml", str(exc).split(": ", 1)[-1])


def _images_and_masks(scan: Scan) -> None:
    images_dir, masks_dir = scan.root / "images", scan.root / "masks"
    if not images_dir.is_dir():
        scan.add(images_dir, "folder missing; a dataset keeps its photos in images/")
    if not masks_dir.is_dir():
        scan.add(masks_dir, "folder missing; a dataset keeps its label PNGs in masks/")
    for stem, image in scan.images.items():
        check_pair(scan, image, masks_dir / f"{stem}.png")
    if masks_dir.is_dir():
        for mask in sorted(masks_dir.glob("*.png")):
            if mask.stem not in scan.images:
                scan.add(mask, "mask without an image in images/")


def _load(scan: Scan, path: Path, reader: Callable[[Path], np.ndarray]) -> np.ndarray | None:
    try:
        return reader(path)
    except BadInput as exc:
        scan.add(path, str(exc).split(": ", 1)[-1])
        return None


def check_pair(scan: Scan, image_path: Path, mask_path: Path) -> None:
    image = _load(scan, image_path, read_image)
    if image is not None:
        scan.sizes[image_path.stem] = image.shape[:2]
    if not mask_path.is_file():
        scan.add(mask_path, f"mask missing for image {image_path.name}")
        return
    mask = _load(scan, mask_path, read_mask)
    if mask is None:
        return
    if image is not None and image.shape[:2] != mask.shape:
        scan.add(
            mask_path,
            f"size {mask.shape[1]}x{mask.shape[0]} differs from its image "
            f"{image.shape[1]}x{image.shape[0]} (WxH)",
        )
    if scan.classes is not None:
        values = np.unique(mask)
        bad = values[(values >= scan.classes.num_classes) & (values != IGNORE_INDEX)]
        if bad.size:
            scan.add(
                mask_path,
                f"label values {bad.tolist()} are outside the {scan.classes.num_classes} "
                f"classes of classes.yaml (0..{scan.classes.num_classes - 1}, 255 = ignore)",
            )


def _splits(scan: Scan) -> None:
    folder = scan.root / "splits"
    files = {p.stem: p for p in sorted(folder.glob("*.txt"))} if folder.is_dir() else {}
    for name in ("train", "val"):
        if name not in files:
            scan.add(folder / f"{name}.txt", "split list missing (one image stem per line)")
    owner: dict[str, str] = {}
    for name, path in files.items():
        stems = [s.strip() for s in path.read_text().splitlines() if s.strip()]
        if not stems:
            scan.add(path, "split is empty")
        for stem in stems:
            if stem not in scan.images:
                scan.add(path, f"names '{stem}', which is not in images/")
            elif stem in owner and owner[stem] != name:
                scan.add(path, f"'{stem}' is also in split '{owner[stem]}' (splits overlap)")
            else:
                owner[stem] = name


def _coco(scan: Scan) -> None:
    path = scan.root / "instances.json"
    if not path.exists():
        return
    try:
        for rec in CocoFile(path):  # decodes every mask, one image at a time
            if Path(rec.file_name).stem not in scan.images:
                scan.add(path, f"image '{rec.file_name}' is not in images/")
            elif scan.sizes.get(Path(rec.file_name).stem, (rec.height, rec.width)) != (rec.height, rec.width):
                h, w = scan.sizes[Path(rec.file_name).stem]
                scan.add(
                    path,
                    f"image '{rec.file_name}' is {rec.width}x{rec.height} here but {w}x{h} in images/ (WxH)",
                )
    except BadInput as exc:
        scan.add(path, str(exc).split(": ", 1)[-1])


def _yolo(scan: Scan) -> None:
    labels = scan.root / "labels"
    if not labels.is_dir():
        return
    try:
        num_things = len(read_names(scan.root / "dataset.yaml").thing_names)
    except BadInput as exc:
        scan.add(scan.root / "dataset.yaml", str(exc).split(": ", 1)[-1])
        num_things = len(scan.classes.thing_names) if scan.classes else 254
    for path in sorted(labels.glob("*.txt")):
        if path.stem not in scan.images:
            scan.add(path, "label file without an image in images/")
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if line.strip():
                try:
                    parse_label_line(line, num_things, f"line {n}")
                except BadInput as exc:
                    scan.add(path, str(exc))


CHECKS: tuple[Callable[[Scan], None], ...] = (_classes, _images_and_masks, _splits, _coco, _yolo)


def check_dataset(root: str | Path) -> list[Problem]:
    """Every problem of a dataset folder (empty list = clean); BadInput if the folder itself is missing."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"{root}: dataset folder not found")
    max_image_pixels()  # a bad PRODSEG_MAX_IMAGE_PIXELS is one error, not a problem per image
    images_dir = root / "images"
    scan = Scan(root, None, {}, [])
    if images_dir.is_dir():
        for p in sorted(images_dir.iterdir()):
            if p.suffix.lower() not in IMAGE_EXTS:
                continue
            if p.stem in scan.images:
                scan.add(
                    p,
                    f"same name as {scan.images[p.stem].name}; keep one image per stem "
                    "(masks pair with images by stem)",
                )
            scan.images[p.stem] = p
    for check in CHECKS:
        check(scan)
    return scan.problems


def summary(root: str | Path) -> dict[str, int]:
    """Counts for the CLI's closing line: images, masks and stems per split."""
    root = Path(root)
    counts = {
        "images": len([p for p in (root / "images").glob("*") if p.suffix.lower() in IMAGE_EXTS]),
        "masks": len(list((root / "masks").glob("*.png"))),
    }
    for name in SPLITS:
        path = root / "splits" / f"{name}.txt"
        if path.is_file():
            counts[name] = len([s for s in path.read_text().splitlines() if s.strip()])
    return counts


# --- the same checks on what a training or evaluation run is about to read ---

# Remedies for the problems `prodseg-data check` reports, by the start of the problem's message.
REMEDIES = {
    "label values": "fix these masks, or list the missing classes in classes.yaml and set model.num_classes "
    "to match",
}


def check_samples(data: ShelfDataset, samples: list[Sample], threads: int = 4) -> None:
    """Run `prodseg-data check`'s image/mask checks on the samples a loader will read; BadInput if any fail.

    Each image and mask is decoded once (in threads: OpenCV releases the GIL), which finds labels beyond
    classes.yaml, undecodable files and size mismatches before training instead of as a crash mid-epoch.
    """
    scan = Scan(data.root, data.classes, {s.stem: s.image for s in samples}, [])
    masks = [s.mask or data.masks_dir / f"{s.stem}.png" for s in samples]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(check_pair, repeat(scan), [s.image for s in samples], masks))
    if not scan.problems:
        return
    first = min(scan.problems, key=lambda p: str(p.path))
    remedy = next((f"; {r}" for start, r in REMEDIES.items() if first.message.startswith(start)), "")
    count = len(scan.problems)
    raise BadInput(
        f"{first}{remedy} ({count} problem{'s' if count > 1 else ''}; "
        f"`prodseg-data check {data.root}` lists every problem)"
    )


def split_samples(data: ShelfDataset, split: str) -> list[Sample]:
    """The samples of a split, each with a mask (BadInput when the split is missing or empty)."""
    samples = data.split(split)
    if not samples:
        raise BadInput(f"{data.root}: split '{split}' is empty; list images in splits/{split}.txt")
    return samples


def checked_split(data: ShelfDataset, split: str) -> list[Sample]:
    """`split_samples`, after `check_samples` found no problem in them."""
    samples = split_samples(data, split)
    check_samples(data, samples)
    return samples
