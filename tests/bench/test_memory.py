import time

import numpy as np
import pytest

from prodseg.bench.cpu import CpuMeter
from prodseg.bench.memory import PeakRSS, cuda_index, gpu_memory_used_mb


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
