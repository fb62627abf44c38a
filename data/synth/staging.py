"""Build an output folder under a hidden temporary name and swap it in only when complete."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from prodseg.atomic import atomic_dir
from prodseg.errors import BadInput

# Written into every generated folder: marks it as safe to regenerate in place and records how it was made.
MARKER = "synth.json"


@contextlib.contextmanager
def staged_folder(root: Path, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside `root`; on success it replaces `root`.

    `root` may be missing, empty, or an earlier output of the same generator (it holds `marker`);
    anything else is refused so a user's folder is never overwritten.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise BadInput(f"{root}: exists and is not a folder; choose another output folder")
    if root.is_dir() and any(root.iterdir()) and not (root / marker).is_file():
        raise BadInput(f"{root}: folder is not empty and was not made by this generator; choose a new folder")
    with atomic_dir(root) as tmp:
        yield tmp
