"""ONNX Runtime runner: the providers asked for (TensorRT's caches beside the artifact), the refusal of a
session that fell back to the CPU, DLL preloading, and several ONNX Runtime builds installed together.

ONNX Runtime's CPU build is what installs here. Where a test needs the GPU build's view, it makes
get_available_providers list the GPU providers (the GPU build lists them even where their libraries cannot
load); the sessions are ONNX Runtime's own, which really fall back to the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import prodseg.runtime as rt
from prodseg.errors import BadInput

ort = pytest.importorskip("onnxruntime")
from prodseg.runtime.runners import onnxrt  # noqa: E402 - needs onnxruntime

TRT, CUDA, CPU = onnxrt.TENSORRT, onnxrt.CUDA, onnxrt.CPU


def test_tensorrt_provider_caches_engines_beside_the_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "models" / "m.onnx"
    cache = onnxrt.trt_cache_folder(artifact, "1.32.0")
    assert cache == tmp_path / "models" / "m.onnx.ort-trt-cache" / "ort-1.32.0"
    providers = onnxrt.providers_for("tensorrt:1", [TRT, CUDA, CPU], cache)
    assert providers == [
        (
            TRT,
            {
                "device_id": 1,
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(cache),
            },
        ),
        (CUDA, {"device_id": 1}),
        CPU,
    ]
    # only the TensorRT provider takes cache options; a folder given instead of the default is used as is
    assert onnxrt.providers_for("cuda", [TRT, CUDA, CPU], cache) == [CUDA, CPU]
    assert onnxrt.trt_cache_folder(artifact, "1.32.0", tmp_path / "c") == tmp_path / "c" / "ort-1.32.0"


def test_cache_folders_are_made_and_removed_when_empty(tmp_path: Path) -> None:
    cache = onnxrt.trt_cache_folder(tmp_path / "m.onnx", "1.0")
    providers = onnxrt.providers_for("tensorrt", [TRT, CUDA, CPU], cache)
    made = onnxrt.make_cache_dirs(providers)
    assert made == [cache.parent, cache] and cache.is_dir()
    assert onnxrt.make_cache_dirs(providers) == []  # already there: nothing new
    onnxrt.remove_empty(made)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_model_folder_names_the_cache_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        providers = onnxrt.providers_for(
            "tensorrt", [TRT, CUDA, CPU], onnxrt.trt_cache_folder(folder / "m.onnx", "1")
        )
        with pytest.raises(
            BadInput, match=r"m\.onnx\.ort-trt-cache/ort-1: cannot create the TensorRT engine cache"
        ):
            onnxrt.make_cache_dirs(providers)
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize(
    "wanted, available, builds, expect",
    [
        (CUDA, [CUDA, CPU], ["onnxruntime-gpu"], ""),  # the GPU build alone
        (CPU, [CPU], ["onnxruntime", "onnxruntime-gpu"], ""),  # a CPU run does not care
        (CUDA, [CUDA, CPU], ["onnxruntime", "onnxruntime-gpu"], "warn"),  # the GPU build won, for now
        (TRT, [CPU], ["onnxruntime", "onnxruntime-gpu"], "refuse"),  # the CPU build shadows it
    ],
)
def test_several_onnxruntime_builds(monkeypatch, wanted, available, builds, expect) -> None:
    monkeypatch.setattr(onnxrt, "onnxruntime_builds", lambda: builds)
    if expect == "refuse":
        with pytest.raises(BadInput, match=f"{wanted} is missing because onnxruntime and onnxruntime-gpu"):
            onnxrt.shadowed_build(wanted, available)
        return
    warning = onnxrt.shadowed_build(wanted, available)
    assert ("pip uninstall -y onnxruntime onnxruntime-gpu" in warning) == (expect == "warn")


def test_onnxruntime_builds_reads_the_installed_distributions() -> None:
    assert "onnxruntime" in onnxrt.onnxruntime_builds()


def _claim_gpu(monkeypatch) -> None:
    available = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, *available])


def test_gpu_session_preloads_libraries_and_reports_what_failed(deeplab, monkeypatch, capsys) -> None:
    """preload_dlls runs before a GPU session; what it prints goes into the refusal, not onto stdout."""
    _claim_gpu(monkeypatch)
    calls: list[str] = []

    def preload_dlls() -> None:
        calls.append("preload")
        print("Failed to load libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(ort, "preload_dlls", preload_dlls, raising=False)
    with pytest.raises(
        BadInput, match=r"asked for CUDAExecutionProvider but runs on CPUExecutionProvider"
    ) as err:
        rt.load(deeplab[0], backend="onnxruntime", device="cuda")
    assert calls == ["preload"] and "preload_dlls said: Failed to load libcudnn.so.9" in str(err.value)
    assert capsys.readouterr().out == ""
    # ONNX Runtime before 1.21 has no preload_dlls: the same refusal
    monkeypatch.delattr(ort, "preload_dlls")
    with pytest.raises(BadInput, match="asked for CUDAExecutionProvider"):
        rt.load(deeplab[0], backend="onnxruntime", device="cuda")


def test_cpu_session_runs_on_the_cpu_untouched(deeplab, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append("preload"), raising=False)
    pred = rt.load(deeplab[0], backend="onnxruntime", device="cpu")
    try:
        assert pred.runner.effective_settings()["providers"] == [CPU] and calls == []
        assert not list(deeplab[0].parent.glob("*.ort-trt-cache"))
    finally:
        pred.close()


def test_explicit_providers_are_checked_too(deeplab, monkeypatch) -> None:
    _claim_gpu(monkeypatch)
    with pytest.raises(
        BadInput, match="asked for TensorrtExecutionProvider but runs on CPUExecutionProvider"
    ):
        rt.load(deeplab[0], backend="onnxruntime", providers=[TRT, CPU])
