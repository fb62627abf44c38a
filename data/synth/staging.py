"""Build an output folder under a hidden temporary name and swap it in only when complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prodseg.atomic import ensure_writable_dir
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
    ensure_writable_dir(root.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset should look like any folder
    try:
        yield tmp
        old = None
        if root.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".old", dir=root.parent))
            os.replace(root, old / "d")
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
