"""Device selection: a GPU that is present but unusable is named (warning for `auto`, BadInput for `cuda`).

There is no GPU here: the GPU states are stand-ins (monkeypatched torch.cuda functions, a fake driver
version file, RuntimeErrors worded as torch words them), which is all that can be tested without one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from prodseg.errors import BadInput
from prodseg.train import devices
from prodseg.train.engine import resolve_device

TOO_OLD = (
    "The NVIDIA driver on your system is too old (found version 12020). Please update your GPU driver by "
    "downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx"
)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    devices.nvidia_driver.cache_clear()
    devices.warn_unusable_gpu.cache_clear()
    yield
    devices.nvidia_driver.cache_clear()
    devices.warn_unusable_gpu.cache_clear()


def gpu_present_but_unusable(monkeypatch: pytest.MonkeyPatch, error: str = TOO_OLD) -> None:
    """A machine with an NVIDIA driver (R535, CUDA 12.2) that this torch build cannot start CUDA on."""

    def init() -> None:
        raise RuntimeError(error)

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(devices, "nvidia_driver", lambda: devices.Driver("535.104.05", "12.2"))
    monkeypatch.setattr(torch.version, "cuda", "13.0")


@pytest.mark.parametrize(
    "message, name",
    [
        (TOO_OLD, "cudaErrorInsufficientDriver"),
        ("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU", None),
        ("CUDA error: no kernel image is available for execution on the device", None),
        ("CUDA error: invalid device ordinal", "cudaErrorInvalidDevice"),
        (
            "Unexpected error from cudaGetDeviceCount(). Did you run some cuda functions before calling "
            "NumCudaDevices() that might have already set an error? Error 804: forward compatibility was "
            "attempted on non supported HW",
            "cudaErrorCompatNotSupportedOnDevice",
        ),
        ("Error 803: system has unsupported display driver / cuda driver combination", None),
        ("CUDA driver initialization failed, you might not have a CUDA gpu.", "cudaErrorInitializationError"),
        ("CUDA unknown error - this may be due to an incorrectly set up environment", "cudaErrorUnknown"),
        ("CUDA error: cudaErrorDevicesUnavailable", "cudaErrorDevicesUnavailable"),
    ],
)
def test_a_cuda_runtime_error_is_named_by_its_enum_name(message: str, name: str | None) -> None:
    expected = {
        "Found no NVIDIA driver": "cudaErrorInsufficientDriver",
        "no kernel image": "cudaErrorNoKernelImageForDevice",
        "Error 803": "cudaErrorSystemDriverMismatch",
    }
    name = name or next(v for k, v in expected.items() if k in message)
    error = devices.classify_cuda_error(RuntimeError(message))
    assert error is not None and error.name == name


def test_an_unknown_error_still_gives_one_line_with_a_remedy() -> None:
    text = devices.cuda_error_message("cuda", RuntimeError("something new\nsecond line"))
    assert "\n" not in text and text.startswith(
        "--device cuda: CUDA cannot start (CUDA error: something new)"
    )
    assert "; run nvidia-smi" in text


def test_auto_warns_naming_torchs_cuda_and_the_driver_when_the_gpu_is_unusable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gpu_present_but_unusable(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="prodseg.train"):
        assert resolve_device("auto") == torch.device("cpu")
        resolve_device("auto")  # once per process
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "an NVIDIA GPU is present but torch cannot use it, so training runs on the CPU" in warning
    assert "cudaErrorInsufficientDriver" in warning
    assert "built for CUDA 13.0; NVIDIA driver 535.104.05 (CUDA 12.2)" in warning
    assert f"--index-url {devices.CU12_INDEX}" in warning and "--device cpu" in warning


@pytest.mark.parametrize("state", ["no driver", "hidden", "usable"])
def test_auto_is_silent_without_a_gpu_when_it_is_hidden_or_usable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, state: str
) -> None:
    gpu_present_but_unusable(monkeypatch)
    if state == "no driver":
        monkeypatch.setattr(devices, "nvidia_driver", lambda: None)
    elif state == "hidden":
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    else:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.WARNING, logger="prodseg.train"):
        assert resolve_device("auto").type == ("cuda" if state == "usable" else "cpu")
    assert not caplog.records


def test_a_cpu_only_torch_beside_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_present_but_unusable(monkeypatch)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "this torch is a CPU-only build" in (devices.unusable_gpu_reason() or "")
    with pytest.raises(
        BadInput, match="--device cuda: this torch .* is a CPU-only build; install a CUDA build"
    ):
        resolve_device("cuda")


def test_device_cuda_names_the_cuda_error_and_the_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_present_but_unusable(monkeypatch)
    with pytest.raises(BadInput) as err:
        resolve_device("cuda")
    text = str(err.value)
    assert text.startswith("--device cuda: CUDA cannot start (cudaErrorInsufficientDriver: The NVIDIA driver")
    assert "NVIDIA driver 535.104.05 (CUDA 12.2)" in text and "error 35" not in text.lower()
    version = torch.__version__.split("+")[0]
    assert f"pip install torch=={version} --index-url {devices.CU12_INDEX}" in text


def test_device_cuda_n_past_the_gpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(BadInput, match=r"--device cuda:2: this machine has 2 CUDA GPU\(s\).*cuda:0..cuda:1"):
        resolve_device("cuda:2")


def test_the_first_kernel_failing_is_caught_too(monkeypatch: pytest.MonkeyPatch) -> None:
    real_ones = torch.ones

    def ones(*size, device=None, **kwargs):
        if device is not None and torch.device(device).type == "cuda":
            raise torch.AcceleratorError(
                "CUDA error: no kernel image is available for execution on the device"
            )
        return real_ones(*size, device=device, **kwargs)

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch, "ones", ones)
    with pytest.raises(BadInput, match=r"\(cudaErrorNoKernelImageForDevice: .*torch.cuda.get_arch_list"):
        resolve_device("cuda:0")


def test_the_driver_version_comes_from_proc_or_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder)\n"
        "GCC version:  gcc version 12.3.0\n"
    )
    monkeypatch.setattr(devices, "NVIDIA_PROC_VERSION", str(proc))
    monkeypatch.setattr(devices, "_libcuda_cuda_version", lambda: "12.8")
    assert devices.nvidia_driver() == devices.Driver("570.86.15", "12.8")
    devices.nvidia_driver.cache_clear()
    monkeypatch.setattr(devices, "NVIDIA_PROC_VERSION", str(tmp_path / "absent"))
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    assert devices.nvidia_driver() is None


def test_this_machine_probe_is_absent_safe() -> None:
    """The real probes on this machine (no GPU expected): they answer without raising."""
    driver = devices.nvidia_driver()
    assert driver is None or driver.version
    assert devices.driver_summary().startswith(f"[torch {torch.__version__} ")
