"""prodseg-predict's --out folder: checked before any work, cleared only when it holds a predict run.

Rules: --out must be a folder path (created when missing). A folder that already holds files is refused
unless --overwrite, and --overwrite clears only a prodseg-predict output folder (the files named in
OUTPUTS, `masks/` of numbered PNGs, hidden temporary files of a killed run); anything else in it makes
the command refuse rather than delete a user's file. A failed run removes what it wrote (and the folder
when it created it); an interrupted run keeps the frames finished so far and says what is on disk.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

from prodseg.atomic import check_output_path
from prodseg.errors import BadInput

OUTPUT_FILES = ("predictions.jsonl", "summary.json", "overlay.mp4")
IMAGE_FOLDERS = ("masks", "overlays")  # one PNG per frame (video) or per input image (image folder)
OUTPUTS = (*OUTPUT_FILES, *IMAGE_FOLDERS)
_MASK_NAME = re.compile(r"\d+\.png")
_TEMP_NAME = re.compile(r"\..*\.tmp.*")  # prodseg.atomic's temporary names


def _is_ours(entry: Path) -> bool:
    """A file a prodseg-predict run writes at the top of --out (never a folder of the same name)."""
    return entry.is_file() and (entry.name in OUTPUT_FILES or bool(_TEMP_NAME.fullmatch(entry.name)))


def _foreign_entries(out: Path) -> list[str]:
    """Names in `out` (and its image folders) that a prodseg-predict run does not write."""
    foreign = [p.name for p in out.iterdir() if p.name not in IMAGE_FOLDERS and not _is_ours(p)]
    # PNGs named after input images are ours only beside the predictions.jsonl of the run that wrote them
    image_name = re.compile(r"[^/]+\.png" if (out / "predictions.jsonl").is_file() else _MASK_NAME.pattern)
    for name in IMAGE_FOLDERS:
        folder = out / name
        if folder.is_symlink() or folder.exists() and not folder.is_dir():
            foreign.append(name)
        elif folder.is_dir():
            foreign += [
                f"{name}/{p.name}"
                for p in folder.iterdir()
                if not (p.is_file() and (image_name.fullmatch(p.name) or _TEMP_NAME.fullmatch(p.name)))
            ]
    return sorted(foreign)


def check_out(out: Path, overwrite: bool) -> None:
    """BadInput (before any work) when `out` cannot be this run's output folder."""
    check_output_path(out, "--out", folder=True)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise BadInput(
            f"--out {out}: the folder is not empty (an earlier run?); choose an empty or new "
            "folder, or pass --overwrite to replace an earlier prodseg-predict output"
        )
    foreign = _foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise BadInput(
            f"--out {out}: holds files prodseg-predict did not write ({shown}); --overwrite only "
            "replaces a prodseg-predict output folder: choose another --out"
        )


def clear_outputs(out: Path) -> None:
    """Delete an earlier run's outputs (check_out has verified that nothing else is there)."""
    for entry in out.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up, so a second signal cannot leave a half-cleaned folder."""
    try:
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals are not delivered here anyway
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class OutputFolder:
    """The --out folder of one run: made (or cleared) when writing starts, emptied again if the run fails."""

    def __init__(self, out: Path, overwrite: bool):
        check_out(out, overwrite)
        self.path = out
        self._created = not out.exists()

    def prepare(self) -> Path:
        """Create the folder, or clear the earlier run's outputs from it (--overwrite was checked)."""
        if self._created:
            self.path.mkdir(parents=True, exist_ok=True)
        else:
            clear_outputs(self.path)
        return self.path

    def discard(self) -> None:
        """Remove what this run wrote; the folder itself too when this run created it."""
        if not self.path.is_dir():
            return
        clear_outputs(self.path)
        if self._created:
            with contextlib.suppress(OSError):
                self.path.rmdir()

    def sweep_temps(self) -> None:
        """Delete temporary files a signal can strand (one landing between creating a temp file and the
        block that would remove it); everything in the folder is this run's, so any temp name is too."""
        for folder in (self.path, *(self.path / name for name in IMAGE_FOLDERS)):
            if folder.is_dir():
                for entry in folder.iterdir():
                    if entry.is_file() and _TEMP_NAME.fullmatch(entry.name):
                        entry.unlink(missing_ok=True)

    def describe(self) -> str:
        """What is on disk now, e.g. 'OUT/predictions.jsonl holds 12 frames, OUT/masks 12 PNGs'."""
        parts = []
        jsonl = self.path / "predictions.jsonl"
        if jsonl.is_file():
            with jsonl.open("rb") as fh:
                parts.append(f"{jsonl} holds {sum(1 for _ in fh)} frames")
        for name in IMAGE_FOLDERS:
            folder = self.path / name
            if folder.is_dir():
                pngs = sum(1 for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith("."))
                parts.append(f"{folder} {pngs} PNGs")
        if (self.path / "overlay.mp4").is_file():
            parts.append(f"{self.path / 'overlay.mp4'} the overlay video of those frames")
        return ", ".join(parts)
