"""The export folder: a whole artifact set and its manifest built aside, then swapped in together."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from prodseg.atomic import atomic_dir
from prodseg.errors import BadInput

MANIFEST = "export_manifest.json"
CALIB_CACHE = "calib_cache"
TRT_TIMING_CACHE = "trt_timing.cache"
# Caches carried from the previous export into the new set: they are keyed by their inputs, so reusing
# them is safe, and dropping them would recalibrate (or re-time TensorRT tactics) on every run.
CACHES = (CALIB_CACHE, TRT_TIMING_CACHE)


def nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def check_output_folder(out: Path, inputs: tuple[Path | None, ...] = ()) -> None:
    """BadInput unless `out` can become (or be replaced by) an export folder; creates nothing."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: is a file, not a folder; pass a new or earlier export folder to --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BadInput(
            f"{out}: holds files but no {MANIFEST}, so it is not an earlier export; an export "
            "replaces the whole folder: pass a new or empty folder to --out"
        )
    for given in inputs:
        if given is not None and Path(given).resolve().is_relative_to(out.resolve()):
            raise BadInput(
                f"{out}: contains the input {given}, and an export replaces the whole folder; "
                "pass an --out outside it"
            )
    base = nearest_existing(out.parent)
    if not base.is_dir():
        raise BadInput(f"{out}: cannot create the output folder ({base} is a file); choose another --out")
    # The swap renames `out` itself, which needs write access to its parent and, to move it aside, to it.
    for folder in (base, out) if out.is_dir() else (base,):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BadInput(
                f"{out}: the output folder is not writable ({folder}); choose another --out "
                "or fix its permissions"
            )


def leftovers(out: Path) -> list[Path]:
    """Temporary folders beside `out` that an export killed outright (no cleanup ran) left behind."""
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.glob(f".{out.name}.*") if p.suffix in (".tmp", ".old"))


def _copy_caches(old: Path, new: Path) -> None:
    for name in CACHES:
        src = old / name
        if src.is_dir():
            shutil.copytree(src, new / name)
        elif src.is_file():
            shutil.copy2(src, new / name)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def export_folder(out: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `out` (seeded with its caches) that replaces `out` on success.

    On any failure `out` keeps its earlier complete set (or stays absent), the temporary folder is
    removed, and so are the parent folders this call created.
    """
    out = Path(out)
    created = missing_folders(out.parent)
    try:
        with atomic_dir(out) as tmp:
            if out.is_dir():
                _copy_caches(out, tmp)
            yield tmp
    except BaseException:
        _remove_empty(created)
        raise


def relocate(path: str | os.PathLike, tmp: Path, out: Path) -> Path:
    """Where a file written under the temporary folder `tmp` lives once it has become `out`."""
    return out / Path(path).relative_to(tmp)
