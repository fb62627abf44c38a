"""Atomic artifact folders (an OpenVINO IR is .xml + .bin + sidecar): build aside, then swap in."""

from __future__ import annotations

import os
from pathlib import Path


def size_mb(path: str | os.PathLike) -> float:
    """Size of an artifact in MB, counting an IR's .bin weights with its .xml."""
    p = Path(path)
    files = [p, p.with_suffix(".bin")] if p.suffix == ".xml" else [p]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6
