"""Atomic file writes: write to a temporary name beside the target, rename when complete."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prodseg.errors import BadInput


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create a directory (and parents) or raise BadInput saying why it cannot be written."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"{p}: cannot create the output folder ({exc.strerror}); choose another --out"
        ) from exc
    if not os.access(p, os.W_OK):
        raise BadInput(f"{p}: the output folder is not writable; choose another --out or fix its permissions")
    return p


def check_output_path(path: str | os.PathLike, option: str, folder: bool = False) -> Path:
    """BadInput, before any work, when `path` cannot become an output file (or folder, with `folder`).

    Nothing is created: the nearest existing ancestor must be a writable folder, and an existing
    `path` must be of the kind asked for.
    """
    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        kind = "a folder; give a file path" if p.is_dir() else "a file, not a folder; give a folder path"
        raise BadInput(f"{option} {p}: is {kind}")
    start = p if folder else p.parent
    anchor = next((a for a in [start, *start.parents] if a.exists()), Path("."))
    if not anchor.is_dir():
        raise BadInput(f"{option} {p}: {anchor} is a file, not a folder; choose another {option}")
    if not os.access(anchor, os.W_OK):
        raise BadInput(
            f"{option} {p}: {anchor} is not writable; choose another {option} or fix its permissions"
        )
    return p


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends (main thread only; elsewhere Python never sees them)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where that is not available.

    With it a folder is replaced without a moment in which neither the old nor the new one exists.
    """
    rename_exchange, at_fdcwd = 2, -100
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # the filesystem or kernel cannot do it: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto the target only if the block succeeds.

    The temporary name keeps the target's extension (libraries such as OpenCV and ONNX pick the
    format from it) and starts with a dot so globs for finished artifacts never match it.
    """
    target = Path(target)
    ensure_writable_dir(target.parent)
    ext = suffix if suffix is not None else "".join(target.suffixes)
    with deferred_signals():  # Ctrl-C between creating the file and the `try` would strand it
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{ext}", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the final file the mode a plain open() would have.
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write bytes atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8) atomically and return the target path."""
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (indented, sorted keys) atomically and return the target path."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only if the block succeeds."""
    target = Path(target)
    ensure_writable_dir(target.parent)
    with deferred_signals():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; the final folder gets normal permissions
        yield tmp
        if target.exists() and exchange(tmp, target):
            return  # tmp now holds the old folder, removed below
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
