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


def _decline_openvino_telemetry() -> None:
    """OpenVINO's model conversion and NNCF send telemetry from a worker thread that forks a process; a
    fork taken while another thread holds a lock can hang the child (seen here: its garbage collector
    freed an OpenCV capture whose FFmpeg threads did not survive the fork), and multiprocessing then waits
    for it at exit, so the test run never ends. The tests decline it, as OpenVINO's tools do in CI."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED


_decline_openvino_telemetry()


@pytest.fixture(scope="session", autouse=True)
def _crash_files_stay_in_the_session(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests that provoke internal errors (exit 3) leave their crash files here, not in the machine's /tmp
    (subprocesses inherit the variable)."""
    os.environ["PRODSEG_CRASH_DIR"] = str(tmp_path_factory.mktemp("crash"))


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


def _sigaltstack(new: tuple[int | None, int, int] | None = None) -> tuple[int | None, int]:
    """Set this thread's alternate signal stack to (address, flags, size) when given; return the current
    (address, size) via sigaltstack(2)."""
    import ctypes

    class Stack(ctypes.Structure):
        _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

    old = Stack()
    ctypes.CDLL(None).sigaltstack(ctypes.byref(Stack(*new)) if new else None, ctypes.byref(old))
    return old.sp, old.size


def _signal_stack_mapped() -> bool:
    """Whether this thread's alternate signal stack, if it has one, lies in mapped memory (Linux)."""
    sp, _ = _sigaltstack()
    if not sp:
        return True
    with open("/proc/self/maps") as maps:
        spans = (line.split(maxsplit=1)[0].split("-") for line in maps)
        return any(int(lo, 16) <= sp < int(hi, 16) for lo, hi in spans)


@pytest.fixture(autouse=True)
def _signal_stack_stays_mapped():
    """Fail the test that leaves the main thread on an unmapped alternate signal stack.

    OpenVINO's CPU plugin (one per ov.Core) swaps the thread's alternate signal stack for its own and
    puts back the one it found when destroyed; Cores released out of creation order leave the thread on
    freed memory. The next signal with a Python handler (SIGCHLD, which torch's DataLoader handles once
    workers ran, from any child: a worker, subprocess.run) then killed pytest with SIGSEGV and no
    traceback. prodseg uses one Core per process; a test that makes its own must not undo that. The
    stack is switched off here so the rest of the session survives, and the culprit fails by name.
    """
    import sys

    yield
    if sys.platform.startswith("linux") and not _signal_stack_mapped():
        _sigaltstack((None, 2, 0))  # SS_DISABLE: signals run on the normal stack again
        pytest.fail(
            "this test left the alternate signal stack unmapped (OpenVINO Cores released out of "
            "creation order?): use prodseg's shared_core(), not a new ov.Core()"
        )
