"""The device the `gpu` tests run on: PRODSEG_TEST_DEVICE, `cuda` (the default) or `cpu`.

With `cuda` a test skips, naming what is missing, where this machine has no usable GPU; with `cpu` the same
plumbing runs on the CPU (fp16 autocast becomes bf16 there), so CI keeps the GPU tests working. Nothing
here imports torch at module level: the runtime and bench tests also run on the edge install.
"""

from __future__ import annotations

import os

import pytest

DEVICE = os.environ.get("PRODSEG_TEST_DEVICE", "cuda").strip().lower() or "cuda"
if DEVICE != "cpu" and not DEVICE.startswith("cuda"):
    raise pytest.UsageError(f"PRODSEG_TEST_DEVICE={DEVICE!r}: choose cuda, cuda:N or cpu")
ON_CPU = DEVICE == "cpu"
CPU_HINT = "PRODSEG_TEST_DEVICE=cpu runs the same test on the CPU"


def torch_device() -> str:
    """DEVICE for torch; skips when torch is absent or, for cuda, when torch sees no usable GPU."""
    torch = pytest.importorskip("torch", reason="needs torch (prodseg[train])")
    if ON_CPU:
        return DEVICE
    if not torch.cuda.is_available():
        pytest.skip(
            f"PRODSEG_TEST_DEVICE={DEVICE}: torch.cuda.is_available() is False (no NVIDIA GPU or driver, "
            f"or a CPU-only torch {torch.__version__}); {CPU_HINT}"
        )
    return DEVICE


def gpu_count() -> int:
    """CUDA devices torch sees (0 on CPU or without torch)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def amp_dtypes() -> list[str]:
    """Autocast dtypes worth training with on DEVICE: fp16 (with GradScaler) and bf16 on CUDA, bf16 on CPU
    (fp16 autocast is CUDA-only in prodseg's policy). bf16 on a GPU without it skips in the test."""
    return ["bf16"] if ON_CPU else ["fp16", "bf16"]


def reduced_precision() -> str:
    """The reduced precision the torch runner is tested at: fp16 on CUDA, bf16 on CPU."""
    return "bf16" if ON_CPU else "fp16"
