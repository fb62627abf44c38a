"""OpenVINO runners keep signal delivery working: a process that ran several of them still survives a
signal with a Python handler (here SIGCHLD, as torch's DataLoader installs, from subprocess.run).

OpenVINO's CPU plugin (one per ov.Core) swaps the calling thread's alternate signal stack for one it maps
and, when destroyed, puts back the stack it found. Runners that each made a Core and were released in
the order they were made left the thread on an unmapped stack, and the next handled signal killed the
process with SIGSEGV and no traceback (an intermittent crash of a pytest process holding PyAV, DataLoader
workers, OpenVINO and ONNX Runtime). The code runs in a child process: the crash would take pytest along.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino")

# A tiny IR (Relu), two runners made and released in the order they were made, then a handled SIGCHLD.
TWO_RUNNERS = r"""
import ctypes, gc, signal, subprocess, sys
import numpy as np
import openvino as ov
from prodseg.runtime.runners.openvino_runner import OpenVinoRunner


class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]


def mapped():
    stack = Stack()
    ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack))
    spans = (line.split(maxsplit=1)[0].split("-") for line in open("/proc/self/maps"))
    ok = not stack.sp or any(int(lo, 16) <= stack.sp < int(hi, 16) for lo, hi in spans)
    return "signal stack mapped" if ok else "signal stack unmapped"


xml = sys.argv[1]
x = ov.opset13.parameter([1, 3, 8, 8], ov.Type.f32, name="images")
ov.save_model(ov.Model([ov.opset13.relu(x)], [x], "relu"), xml)
first, second = OpenVinoRunner(xml), OpenVinoRunner(xml)
for runner in (first, second):
    runner.activate()
    runner.infer({"images": np.ones((1, 3, 8, 8), np.float32)})
for runner in (first, second):
    runner.deactivate()
del first, second
gc.collect()
print(mapped(), flush=True)  # the crash below needs the hole left unused: check it directly too
signal.signal(signal.SIGCHLD, lambda *_: None)
subprocess.run(["true"], check=True)
print("survived")
"""


def test_runners_released_in_creation_order_leave_signals_deliverable(tmp_path: Path) -> None:
    # -X faulthandler: the thread starts with an alternate signal stack, as under pytest.
    cmd = [sys.executable, "-X", "faulthandler", "-c", TWO_RUNNERS, str(tmp_path / "relu.xml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines == ["signal stack mapped", "survived"], (proc.returncode, lines, proc.stderr[-2000:])


def test_one_core_per_process() -> None:
    from prodseg.runtime.runners.openvino_runner import shared_core

    assert shared_core() is shared_core()
