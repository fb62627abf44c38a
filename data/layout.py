"""The dataset folder contract:

    root/
      images/<stem>.jpg|png      RGB photos
      masks/<stem>.png           uint8 class index per pixel, 255 = ignore
      classes.yaml               names and colours (index = label value)
      splits/train.txt val.txt   one stem per line (test.txt optional)
      instances.json             optional COCO instances (polygons or RLE) for instance models
      labels/<stem>.txt          optional YOLO-seg labels (class = semantic index - 1)

Containment: a dataset entry never resolves outside its dataset folder. Names read from a file
(a COCO `file_name`, a line of an image list, a list named by dataset.yaml) must be relative and must
not climb out with `..`; files and folders found in the dataset may be symlinks only to places inside
it. Importers and `prodseg-data convert` refuse anything else (`inside`, `entry`, `check_tree`), so
that converting a dataset someone sent you never reads, and copies into the output, a file from
elsewhere on the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prodseg.atomic import write_text
from prodseg.data.imageio import IMAGE_EXTS
from prodseg.data.taxonomy import ClassList
from prodseg.errors import BadInput

SPLITS = ("train", "val", "test")
_OUTSIDE_REMEDY = (
    "copy the file into the dataset folder and name it by a relative path "
    "(absolute paths, '..' and symlinks to elsewhere are refused)"
)


def inside(root: str | Path, path: str | Path, what: str) -> Path:
    """`path` itself, BadInput unless it stays inside dataset folder `root` once `..` and symlinks are
    followed; `what` names the entry in the message (e.g. "image id 3 file_name '../x.jpg'")."""
    try:
        real, top = Path(path).resolve(), Path(root).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long
        raise BadInput(f"{what}: not a usable path ({exc}); fix the entry") from exc
    if not real.is_relative_to(top):
        raise BadInput(
            f"{what}: resolves to {str(real)!r}, outside the dataset folder {top}; {_OUTSIDE_REMEDY}"
        )
    return Path(path)


def entry(root: str | Path, base: str | Path, name: str, what: str) -> Path:
    """`base / name` for a name read from a dataset file: relative, and inside `root` (see `inside`)."""
    if Path(name).is_absolute():
        raise BadInput(f"{what}: is an absolute path; {_OUTSIDE_REMEDY}")
    return inside(root, Path(base) / name, what)


def check_tree(root: str | Path) -> None:
    """BadInput naming the first entry under `root` that a copy of the folder must not follow: a symlink
    to outside it, to a folder above itself (a copy would never end) or to nothing, or a special file."""
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink():
                inside(root, path, str(path))
                if path.is_dir() and Path(folder).resolve().is_relative_to(path.resolve()):
                    raise BadInput(f"{path}: a symlink to a folder above it (a loop); remove the link")
            if not (path.is_file() or path.is_dir()):
                raise BadInput(
                    f"{path}: not a regular file or folder (a broken symlink, a pipe or a "
                    "device); remove it from the dataset folder"
                )


def read_text(path: Path) -> str:
    """A text file of a dataset (a list, a label file, a YAML); BadInput when it is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not a UTF-8 text file ({exc.reason}); fix or remove it") from exc


def read_split_dir(root: Path) -> dict[str, list[str]]:
    """splits/<name>.txt stem lists of a source folder, if it has them (each inside the folder)."""
    folder = root / "splits"
    if not folder.is_dir():
        return {}
    return {
        p.stem: [s.strip() for s in read_text(inside(root, p, str(p))).splitlines() if s.strip()]
        for p in sorted(folder.glob("*.txt"))
    }


@dataclass(frozen=True)
class Sample:
    stem: str
    image: Path
    mask: Path | None


class ShelfDataset:
    """Read-only view of a dataset folder: classes, splits and the files of each sample."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BadInput(f"{self.root}: dataset folder not found; create one with `prodseg-data synth DIR`")
        if not self.images_dir.is_dir():
            raise BadInput(f"{self.root}: no images/ folder; is this a prodseg dataset folder?")
        self.classes = ClassList.load(self.root / "classes.yaml")
        files = sorted(self.images_dir.iterdir())
        self._images = {p.stem: p for p in files if p.suffix.lower() in IMAGE_EXTS}

    images_dir = property(lambda self: self.root / "images")
    masks_dir = property(lambda self: self.root / "masks")
    labels_dir = property(lambda self: self.root / "labels")
    instances_json = property(lambda self: self.root / "instances.json")

    @property
    def stems(self) -> list[str]:
        return list(self._images)

    def sample(self, stem: str) -> Sample:
        if stem not in self._images:
            raise BadInput(f"{self.root}: no image named '{stem}' in images/")
        mask = self.masks_dir / f"{stem}.png"
        return Sample(stem, self._images[stem], mask if mask.is_file() else None)

    def split_stems(self, name: str) -> list[str]:
        """Stems listed in splits/<name>.txt ('all' = every image)."""
        if name == "all":
            return self.stems
        path = self.root / "splits" / f"{name}.txt"
        if not path.is_file():
            have = sorted(p.stem for p in (self.root / "splits").glob("*.txt"))
            raise BadInput(
                f"{path}: split '{name}' not found; available: {', '.join(have) or 'none'} (or 'all')"
            )
        return [s.strip() for s in path.read_text().splitlines() if s.strip()]

    def split(self, name: str) -> list[Sample]:
        """Samples of a split, each with an existing mask (BadInput names the first missing one)."""
        samples = [self.sample(s) for s in self.split_stems(name)]
        for s in samples:
            if s.mask is None:
                raise BadInput(f"{self.masks_dir / (s.stem + '.png')}: mask missing for image {s.image.name}")
        return samples


def write_splits(root: str | Path, splits: dict[str, list[str]]) -> None:
    """Write splits/<name>.txt files atomically."""
    for name, stems in splits.items():
        write_text(Path(root) / "splits" / f"{name}.txt", "".join(f"{s}\n" for s in stems))


def make_splits(
    stems: list[str], val_fraction: float = 0.2, test_fraction: float = 0.0
) -> dict[str, list[str]]:
    """Deterministic split by position (stems are already shuffled or synthetic)."""
    n = len(stems)
    n_val = max(1, round(n * val_fraction)) if n > 1 and val_fraction > 0 else 0
    n_test = round(n * test_fraction)
    n_train = n - n_val - n_test
    out = {"train": stems[:n_train], "val": stems[n_train : n_train + n_val]}
    if n_test:
        out["test"] = stems[n_train + n_val :]
    return out
