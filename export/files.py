"""Atomic artifact folders (an OpenVINO IR is .xml + .bin + sidecar): build aside, then swap in."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prodseg.atomic import ensure_writable_dir


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only if the block succeeds."""
    target = Path(target)
    ensure_writable_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the final folder gets normal permissions
    try:
        yield tmp
        old = None
        if target.exists():
            # os.replace cannot overwrite a non-empty folder: move the old one aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "x")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def size_mb(path: str | os.PathLike) -> float:
    """Size of an artifact in MB, counting an IR's .bin weights with its .xml."""
    p = Path(path)
    files = [p, p.with_suffix(".bin")] if p.suffix == ".xml" else [p]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6
