"""Where the numbers were measured: CPU model, cores, memory, OS and backend library versions."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

# Distribution names whose versions change the numbers (read from metadata: nothing gets imported).
VERSIONED = (
    "prodseg",
    "numpy",
    "opencv-python-headless",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "tensorrt",
)
IDENTITY_KEYS = ("cpu_model", "logical_cores")


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform.processor())."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


SIMD_PREFIXES = ("avx2", "avx512", "amx", "avx_vnni")  # the instruction sets that change CPU inference speed


def cpu_flags() -> list[str]:
    """The CPU's SIMD flags that matter for inference (AVX2, AVX-512*, AMX*, AVX-VNNI), from /proc/cpuinfo."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.lower().startswith("flags"):
            return sorted({f for f in line.split(":", 1)[1].split() if f.startswith(SIMD_PREFIXES)})
    return []


@lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """A JSON-ready description of this machine; IDENTITY_KEYS decide whether baselines compare."""
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {d: v for d in VERSIONED if (v := _version(d))},
    }


def load_average() -> float:
    """1-minute load average (0 where the OS has none): how busy the machine was, recorded per run."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return 0.0


def same_machine(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two machine descriptions name the same CPU model and core count."""
    return all(a.get(k) == b.get(k) for k in IDENTITY_KEYS)
