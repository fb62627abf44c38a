"""Training on the test device (PRODSEG_TEST_DEVICE, default cuda; tests/gpu_device.py): AMP steps of each
architecture through the real setup and loop, a 1-epoch prodseg-train, and a 2-process NCCL torchrun.

With `cuda` these skip without a GPU; with `cpu` the same code runs on the CPU in bf16 (prodseg refuses
fp16 autocast there), so the plumbing stays tested where no GPU is.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.gpu_device import DEVICE, ON_CPU, amp_dtypes, gpu_count, torch_device

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

SIZE = 64
# architecture -> shipped config it starts from (YOLOv8-seg's own recipe: its loss, EMA and groups)
CONFIGS = {"deeplabv3plus": "fast_cpu", "unet": "unet", "yolov8_seg": "yolov8_seg_fast"}


def _config(arch: str, data: Path, out: Path, amp_dtype: str, **extra: object):
    from prodseg.config import load_config
    from prodseg.train.cli import resolve_config_path

    overrides = {
        "model.architecture": arch,
        "model.num_classes": None,
        "data.root": str(data),
        "data.image_size": [SIZE, SIZE],
        "data.num_workers": 0,
        "training.device": DEVICE,
        "training.hyperparameters.batch_size": 2,
        "training.hyperparameters.accumulate_grad_batches": 2,
        "training.hyperparameters.amp": True,
        "training.hyperparameters.amp_dtype": amp_dtype,
        "training.hyperparameters.precise_bn_batches": 0,
        "training.augmentation.strength": 0.0,
        "logging.out_dir": str(out),
        "logging.tensorboard": False,
        "logging.mlflow": False,
        **extra,
    }
    return load_config(resolve_config_path(CONFIGS[arch]), overrides)


def _first_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("amp_dtype", amp_dtypes())
@pytest.mark.parametrize("arch", list(CONFIGS))
def test_amp_steps_with_accumulation(arch: str, amp_dtype: str, tiny_dataset: Path, tmp_path: Path) -> None:
    """4 micro-batches of 2 at 64², 2-step accumulation: 2 optimizer steps under autocast (GradScaler
    for fp16), channels-last on CUDA; the loss stays finite, the weights move, convolutions run in the
    autocast dtype."""
    device = torch_device()
    if amp_dtype == "bf16" and not ON_CPU and not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name(DEVICE)} has no bf16: fp16 + GradScaler covers it")
    if arch == "yolov8_seg" and importlib.util.find_spec("ultralytics") is None:
        pytest.skip("yolov8_seg needs ultralytics (prodseg[yolo])")
    from prodseg.train.engine import train_one_epoch, unwrap
    from prodseg.train.fit import setup

    run = setup(_config(arch, tiny_dataset, tmp_path, amp_dtype))
    want = {"fp16": torch.float16, "bf16": torch.bfloat16}[amp_dtype]
    assert run.precision.enabled and run.precision.dtype == want
    assert run.scaler.is_enabled() == (want == torch.float16)  # GradScaler: fp16 on CUDA only
    conv = _first_conv(unwrap(run.model))
    assert conv.weight.device.type == torch.device(device).type
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == (not ON_CPU)
    seen: list[torch.dtype] = []
    conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    before = [p.detach().clone() for p in run.model.parameters()]
    batches = list(itertools.islice(itertools.cycle(run.train_loader), 4))

    row = train_one_epoch(
        run.model, run.criterion, run.optimizer, run.scheduler, run.scaler, batches,
        run.precision, run.cfg.training.hyperparameters, run.state,
    )  # fmt: skip

    assert run.state.global_step == 2
    assert torch.isfinite(torch.tensor(row["train/loss"])), row
    assert seen and set(seen) == {want}
    moved = [not torch.equal(a, p.detach()) for a, p in zip(before, run.model.parameters(), strict=True)]
    assert sum(moved) > len(moved) // 2, f"only {sum(moved)} of {len(moved)} parameter tensors changed"
    if run.scaler.is_enabled():
        assert run.scaler.get_scale() > 0


def test_one_epoch_of_prodseg_train(tiny_dataset: Path, tmp_path: Path) -> None:
    """`prodseg-train --device DEVICE --epochs 1`: exit 0, one validated epoch, checkpoints that load."""
    device = torch_device()
    from prodseg.train.cli import main

    args = ["--arch", "unet", "--data", str(tiny_dataset), "--out", str(tmp_path), "--device", device]
    args += ["--epochs", "1", "--image-size", str(SIZE), "--batch-size", "2", "--workers", "0"]
    args += ["--augmentation-strength", "0", "--amp", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("unet-")]
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert rows[-1]["epoch"] == "1" and 0.0 <= float(rows[-1]["val/miou"]) <= 1.0
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["config"]["training"]["device"] == device and ckpt["global_step"] >= 1
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())  # loads on a machine without a GPU


def test_two_process_nccl_torchrun(tmp_path: Path) -> None:
    """torchrun with 2 processes on 2 GPUs (NCCL, SyncBatchNorm): 1 epoch, rank 0 alone writes the run."""
    torch_device()
    if ON_CPU:
        pytest.skip("NCCL needs CUDA: the 2-process gloo runs are tests/train/test_distributed.py's")
    if gpu_count() < 2:
        pytest.skip(f"needs 2 CUDA GPUs for 2 NCCL processes; torch sees {gpu_count()}")
    from prodseg.data.synth import generate_dataset
    from tests.train.test_distributed import _train

    data = generate_dataset(tmp_path / "data", images=13, size=SIZE, seed=5)
    out = tmp_path / "runs"
    args = ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "4"]
    _train([*args, "--device", "cuda", "--amp", "--sync-bn", "--distributed"], torchrun=True, cwd=tmp_path)
    (run,) = [p for p in out.iterdir() if p.is_dir() and p.name.startswith("unet-")]
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["config"]["training"]["sync_batchnorm"] is True and ckpt["global_step"] >= 1
