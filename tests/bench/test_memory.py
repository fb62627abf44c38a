"""Process RSS, CPU time and GPU memory of a run, and which GPU source a run's figure comes from."""

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from prodseg.bench import measure
from prodseg.bench.cpu import CpuMeter
from prodseg.bench.memory import (
    NVML_USED,
    TORCH_PEAK,
    GpuMemory,
    PeakRSS,
    cuda_index,
    gpu_memory_meter,
    gpu_memory_used_mb,
)
from tests.bench.test_report import make_result


def test_peak_rss_sees_a_short_lived_allocation():
    with PeakRSS(interval_s=0.001) as mem:
        block = np.ones(96 * 2**20, np.uint8)  # 96 MB, touched
        time.sleep(0.05)
        del block
    assert mem.peak_mb - mem.start_mb >= 80
    assert mem.method == "psutil-rss-sampled-1ms"


def test_cpu_meter_counts_this_process():
    with CpuMeter() as cpu:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
    # psutil's CPU times tick every 10 ms.
    assert cpu.cpu_s >= 0.03 and cpu.wall_s >= 0.05
    assert cpu.percent == pytest.approx(100 * cpu.cpu_s / cpu.wall_s / cpu.cores)


def test_gpu_helpers_on_cpu_devices():
    assert cuda_index("cpu") is None and cuda_index("cuda") == 0 and cuda_index("cuda:1") == 1
    # No GPU here: NVML is absent or finds nothing, never an exception.
    assert gpu_memory_used_mb(0) is None or gpu_memory_used_mb(0) >= 0


@pytest.mark.parametrize(
    "backend, device, source",
    [
        ("torch", "cuda:1", TORCH_PEAK),  # torch's allocator sees the model's own tensors
        ("onnxruntime", "cuda", NVML_USED),  # the rest allocate outside torch: the whole device
        ("tensorrt", "cuda:1", NVML_USED),
        ("openvino", "gpu", NVML_USED),
        ("torch", "cpu", None),
        ("onnxruntime", "cpu", None),
    ],
)
def test_gpu_memory_source_by_backend(backend: str, device: str, source: str | None) -> None:
    meter = gpu_memory_meter(backend, device)
    assert (meter.source if meter else None) == source


def test_torch_peak_resets_and_reads_the_runs_gpu(monkeypatch) -> None:
    """torch.cuda is a stand-in here (no CUDA device): the meter resets and reads the run's own GPU."""
    torch = pytest.importorskip("torch")
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda i: calls.append(("reset", i)))
    monkeypatch.setattr(
        torch.cuda, "max_memory_allocated", lambda i: calls.append(("peak", i)) or 250_000_000
    )
    meter = gpu_memory_meter("torch", "cuda:1")
    assert meter is not None
    meter.reset()
    assert meter.read() == 250.0 and calls == [("reset", 1), ("peak", 1)]


def test_the_gpu_figure_is_labelled_in_the_json() -> None:
    labelled = dataclasses.replace(make_result(), gpu_memory_mb=250.04, gpu_memory_source=TORCH_PEAK)
    assert labelled.as_dict()["memory"] == {
        "peak_rss_mb": 321.0,
        "rss_method": "psutil",
        "gpu_memory_mb": 250.0,
        "gpu_memory_source": TORCH_PEAK,
    }
    assert make_result().as_dict()["memory"]["gpu_memory_source"] is None


def test_bench_resets_the_gpu_peak_after_warm_up_before_the_timed_run(
    tiny_artifacts: dict[str, Path], tiny_video, monkeypatch
) -> None:
    """The run's order of events with a stand-in GPU meter (no GPU here): the peak covers the timed run,
    not loading or warm-up, and the result carries the meter's figure and source."""
    events: list[str] = []
    meter = GpuMemory("stand-in", lambda: events.append("reset"), lambda: events.append("read") or 42.0)
    monkeypatch.setattr(measure, "gpu_memory_meter", lambda backend, device: meter)
    for step in ("warm_up", "_timed_run"):
        original = getattr(measure, step)
        monkeypatch.setattr(
            measure, step, lambda *a, _f=original, _n=step, **k: events.append(_n) or _f(*a, **k)
        )
    opts = measure.BenchOptions(backend="onnxruntime", frames=3, warmup=1)
    result = measure.bench_one(str(tiny_artifacts["onnx"]), str(tiny_video[0]), opts)
    assert events == ["warm_up", "reset", "_timed_run", "read"]
    assert result.as_dict()["memory"]["gpu_memory_mb"] == 42.0 and result.gpu_memory_source == "stand-in"


@pytest.mark.gpu
def test_torch_peak_on_a_real_gpu() -> None:
    torch = pytest.importorskip("torch", reason="needs torch (prodseg[train])")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU: torch.cuda.is_available() is False")
    meter = gpu_memory_meter("torch", "cuda:0")
    assert meter is not None
    meter.reset()
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda:0")  # 67 MB
    del block
    assert meter.read() >= 64 * 2**20 / 1e6
