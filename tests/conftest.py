"""Session-wide fixtures: tiny synthetic shelf data made once and shared (read-only) by all tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two cores are shared by everything: keep each test's math libraries on one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
# Nothing in the tests may reach the internet: weights downloads are tested against a local server.
os.environ.setdefault("PRODSEG_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic shelf images of 96x128 (HxW) with masks, COCO and YOLO-seg labels, train/val splits."""
    from prodseg.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("shelves")
    return generate_dataset(root, images=12, size=(96, 128), seed=0)


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 24-frame 160x96 synthetic shelf video and its per-frame ground-truth masks folder."""
    from prodseg.data.synth import generate_video

    out = tmp_path_factory.mktemp("video")
    masks = out / "masks"
    video = generate_video(out / "shelf.mp4", frames=24, size=(160, 96), fps=30, seed=0, masks_dir=masks)
    return video, masks


@pytest.fixture(autouse=True)
def _restore_sigchld():
    """Undo the SIGCHLD handler that a multi-worker DataLoader leaves in the main process.

    With it installed, a later subprocess.run in the same pytest process (PyAV and OpenVINO loaded)
    crashed the interpreter with SIGSEGV here; a real prodseg-train process never forks afterwards.
    """
    import signal
    import sys

    yield
    handling = sys.modules.get("torch.utils.data._utils.signal_handling")
    if handling is not None and handling._SIGCHLD_handler_set:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        handling._SIGCHLD_handler_set = False
