"""Output folders of prodseg-train and -tune (checked up front by prodseg.atomic.check_output_path):
what a failed start created is removed again, so it leaves no empty run or output folder behind."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("prodseg.train")


def first_missing(path: str | os.PathLike) -> Path | None:
    """The outermost folder of `path` that does not exist yet (what creating `path` would create), or None."""
    target, missing = Path(path).absolute(), None
    while not target.exists() and target != target.parent:
        missing, target = target, target.parent
    return missing


@contextlib.contextmanager
def removed_on_failure(folder: Path, created: Path | None, keep: Callable[[], bool]) -> Iterator[None]:
    """Delete `folder` when the block raises and `keep()` is False (nothing worth keeping was written).

    `created` is the outermost folder above it that this command created (see `first_missing`): the
    folders from `folder`'s parent up to it go too while they are empty, so a failed start leaves no
    empty output folder behind.
    """
    try:
        yield
    except BaseException:
        if folder.is_dir() and not keep():
            shutil.rmtree(folder, ignore_errors=True)
            log.debug("removed %s: the run failed before its first checkpoint", folder)
            remove_empty_dirs(folder.parent, created)
        raise


def remove_empty_dirs(folder: Path, created: Path | None) -> None:
    """Remove `folder` and its parents while empty, up to and including `created` (None: remove nothing)."""
    if created is None:
        return
    folder = folder.absolute()
    while folder.is_relative_to(created) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
