"""Which device training runs on, and why a GPU that is present cannot be used.

`torch.cuda.is_available()` is False both on a machine without a GPU and on one whose NVIDIA driver is
older than the CUDA version torch was built for (torch only emits a UserWarning then). `device: auto`
would silently train on the CPU in the second case, and `--device cuda` would say "no GPU". This module
tells the two apart: it looks for a driver (absent-safe: /proc/driver/nvidia/version, then nvidia-smi),
reads the CUDA version that driver supports from libcuda, and names torch's CUDA error (the cudaError
enum name, not its number) with a remedy.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import torch

from prodseg.errors import BadInput

log = logging.getLogger("prodseg.train")

NVIDIA_PROC_VERSION = "/proc/driver/nvidia/version"
# The wheel index of CUDA 12 builds: they run on every driver from R525 on (minor-version compatibility).
CU12_INDEX = "https://download.pytorch.org/whl/cu126"


@dataclass(frozen=True)
class CudaError:
    """A cudaError_t value: its enum name, its number, how torch's messages spell it, and the remedy."""

    name: str
    code: int
    phrases: tuple[str, ...]
    remedy: str


def install_command() -> str:
    """The pip command that installs this torch version built for CUDA 12 (runs on older drivers)."""
    return f"`pip install torch=={torch.__version__.split('+')[0]} --index-url {CU12_INDEX}`"


UPDATE_DRIVER = "update the NVIDIA driver, or install a torch built for the driver's CUDA version: {install}"


# torch raises RuntimeErrors whose text is cudaGetErrorString's (or its own wording for driver problems,
# c10/cuda/CUDAFunctions.cpp); some carry the number ("Error 804: ..."). Each maps to its enum name here.
CUDA_ERRORS: tuple[CudaError, ...] = (
    CudaError(
        "cudaErrorInsufficientDriver",
        35,
        ("driver on your system is too old", "driver version is insufficient", "found no nvidia driver"),
        UPDATE_DRIVER,
    ),
    CudaError(
        "cudaErrorNoDevice", 100, ("no cuda-capable device is detected",), "check CUDA_VISIBLE_DEVICES"
    ),
    CudaError(
        "cudaErrorInvalidDevice", 101, ("invalid device ordinal",), "choose a GPU index below the GPU count"
    ),
    CudaError(
        "cudaErrorNoKernelImageForDevice",
        209,
        ("no kernel image is available",),
        "this torch build has no kernels for this GPU's architecture; install a torch build that lists it "
        "in torch.cuda.get_arch_list()",
    ),
    CudaError(
        "cudaErrorDevicesUnavailable",
        46,
        ("busy or unavailable",),
        "another process holds the GPU in exclusive mode; free it or pick another GPU",
    ),
    CudaError(
        "cudaErrorSystemDriverMismatch",
        803,
        ("unsupported display driver / cuda driver combination",),
        "the kernel module and the user-space driver differ in version; reinstall the driver or reboot",
    ),
    CudaError(
        "cudaErrorCompatNotSupportedOnDevice",
        804,
        ("forward compatibility was attempted on non supported hw",),
        "the CUDA forward-compatibility package does not support this GPU: " + UPDATE_DRIVER,
    ),
    CudaError(
        "cudaErrorInitializationError",
        3,
        ("initialization failed", "initialization error"),
        "check that the NVIDIA driver is loaded (nvidia-smi)",
    ),
    CudaError("cudaErrorMemoryAllocation", 2, ("out of memory",), "free GPU memory or pick another GPU"),
    CudaError(
        "cudaErrorUnknown",
        999,
        ("unknown error",),
        "reload the driver (often after suspend: reboot) and do not change CUDA_VISIBLE_DEVICES after start",
    ),
)


def classify_cuda_error(exc: BaseException) -> CudaError | None:
    """The CUDA error torch's exception carries: by enum name, then by number, then by torch's wording."""
    text = str(exc)
    by_name = {e.name: e for e in CUDA_ERRORS}
    named = re.search(r"\b(cudaError\w+)", text)
    if named and named[1] in by_name:
        return by_name[named[1]]
    numbered = re.search(r"\b[Ee]rror (\d+)\b", text)
    by_code = {e.code: e for e in CUDA_ERRORS}
    if numbered and int(numbered[1]) in by_code:
        return by_code[int(numbered[1])]
    lowered = text.lower()
    return next((e for e in CUDA_ERRORS if any(p in lowered for p in e.phrases)), None)


def cuda_error_message(device: str, exc: BaseException) -> str:
    """`--device X: CUDA cannot start (cudaErrorName: torch's first line); remedy` for a BadInput."""
    error = classify_cuda_error(exc)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = error.name if error else "CUDA error"
    remedy = error.remedy if error else "run nvidia-smi to check the GPU and driver"
    return (
        f"--device {device}: CUDA cannot start ({name}: {first_line}) {driver_summary()}; "
        + remedy.format(install=install_command())
    )


@dataclass(frozen=True)
class Driver:
    """The NVIDIA driver found on this machine: its version and the newest CUDA it supports (if known)."""

    version: str
    cuda: str | None


@functools.cache
def nvidia_driver() -> Driver | None:
    """The installed NVIDIA driver, or None when this machine has none (no GPU to warn about)."""
    version = _proc_driver_version() or _nvidia_smi_driver_version()
    if version is None:
        return None
    return Driver(version, _libcuda_cuda_version())


def _proc_driver_version() -> str | None:
    try:
        with open(NVIDIA_PROC_VERSION, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(r"\b(\d{3,}\.\d+(?:\.\d+)?)\b", text)
    return match[1] if match else "unknown"


def _nvidia_smi_driver_version() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _libcuda_cuda_version() -> str | None:
    """cuDriverGetVersion: the newest CUDA the driver runs (12040 -> '12.4'); needs no cuInit."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
            return None
    except (OSError, AttributeError):
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def driver_summary() -> str:
    """`[torch 2.x built for CUDA 13.0; NVIDIA driver 550.54 (CUDA 12.4)]`, the facts a remedy depends on."""
    built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    driver = nvidia_driver()
    if driver is None:
        have = "no NVIDIA driver found"
    else:
        have = f"NVIDIA driver {driver.version}" + (f" (CUDA {driver.cuda})" if driver.cuda else "")
    return f"[torch {torch.__version__} {built}; {have}]"


def gpus_hidden() -> bool:
    """True when CUDA_VISIBLE_DEVICES hides every GPU on purpose (empty, or -1 as many scripts set)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return value is not None and value.strip() in ("", "-1")


def unusable_gpu_reason() -> str | None:
    """Why torch cannot use this machine's NVIDIA GPU, or None (usable, absent, or hidden on purpose)."""
    if torch.cuda.is_available() or gpus_hidden() or nvidia_driver() is None:
        return None
    if torch.version.cuda is None:
        return f"this torch is a CPU-only build {driver_summary()}"
    try:
        torch.cuda.init()
    except (RuntimeError, AssertionError) as exc:
        error = classify_cuda_error(exc)
        return f"{error.name if error else 'CUDA error'}: {str(exc).strip()[:200]} {driver_summary()}"
    return f"torch sees no CUDA device {driver_summary()}"


@functools.cache
def warn_unusable_gpu() -> None:
    """`device: auto` falls back to the CPU: say so once per process when a GPU is there but unusable."""
    reason = unusable_gpu_reason()
    if reason is not None:
        log.warning(
            "device auto: an NVIDIA GPU is present but torch cannot use it, so training runs on the CPU: "
            "%s; %s; or pass --device cpu to train on the CPU without this warning",
            reason,
            UPDATE_DRIVER.format(install=install_command()),
        )


def check_cuda(device: torch.device) -> None:
    """Start CUDA on `device` now, turning torch's error into a BadInput naming the cause and the remedy."""
    name = str(device)
    if torch.version.cuda is None:
        raise BadInput(
            f"--device {name}: this torch {torch.__version__} is a CPU-only build; install a CUDA build "
            f"(`pip install torch --index-url {CU12_INDEX}`) or use --device cpu"
        )
    if not torch.cuda.is_available() and nvidia_driver() is None:
        raise BadInput(
            f"--device {name}: no CUDA GPU is visible here (no NVIDIA driver found: neither "
            f"{NVIDIA_PROC_VERSION} nor nvidia-smi); use --device cpu or auto"
        )
    try:
        torch.cuda.init()
        count = torch.cuda.device_count()
        if count == 0:
            raise BadInput(
                f"--device {name}: no CUDA GPU is visible here {driver_summary()}; check "
                "CUDA_VISIBLE_DEVICES and nvidia-smi, or use --device cpu or auto"
            )
        if (device.index or 0) >= count:
            raise BadInput(
                f"--device {name}: this machine has {count} CUDA GPU(s), numbered from 0; "
                f"choose cuda:0..cuda:{count - 1}"
            )
        # The first kernel: a torch build without this GPU's architecture fails here, not at init.
        torch.ones(1, device=device).add_(1).cpu()
    except (RuntimeError, AssertionError) as exc:
        raise BadInput(cuda_error_message(name, exc)) from exc
