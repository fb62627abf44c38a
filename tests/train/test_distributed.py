"""DDP plumbing: samplers and collectives in a real 2-process gloo group, and torchrun training runs
(2 processes vs 1 process on the same data, global batch and seed; resume under DDP; rank 0 writes)."""

from __future__ import annotations

import csv
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from prodseg.errors import ConfigError
from prodseg.train import distributed
from prodseg.train.instance_metrics import MaskMAP
from prodseg.train.metrics import ConfusionMatrix


@pytest.mark.parametrize("length", [0, 1, 5, 8])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_shard_sampler_covers_each_val_image_exactly_once(length: int, size: int) -> None:
    shards = [list(distributed.ShardSampler(length, rank, size)) for rank in range(size)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(distributed.ShardSampler(length, r, size)) for r in range(size)] == [len(s) for s in shards]


def test_train_sampler_reshuffles_per_epoch_and_repeats_per_seed() -> None:
    data = list(range(10))
    first, again, other = (distributed.train_sampler(data, seed=3) for _ in range(3))
    first.set_epoch(1)
    again.set_epoch(1)
    other.set_epoch(2)
    assert list(first) == list(again)
    assert list(first) != list(other)
    assert sorted(first) == data


def test_single_process_is_rank_zero_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    assert distributed.init("cpu") == distributed.World(0, 0, 1)
    assert distributed.per_rank_batch(6) == 6
    assert distributed.gather("x") == ["x"]
    assert distributed.broadcast(7) == 7
    row = {"train/loss": 1.5}
    assert distributed.reduce_epoch_row(row) is row
    model = nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu"), sync_batchnorm=False) is model


def test_distributed_flag_without_torchrun_names_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match=r"--distributed: not started by torchrun \(RANK.*torchrun"):
        distributed.init("cpu", required=True)


def test_sync_batchnorm_on_cpu_is_refused_before_training() -> None:
    with pytest.raises(ConfigError, match="training.sync_batchnorm: .*CUDA only"):
        distributed.wrap(nn.BatchNorm2d(3), torch.device("cpu"), sync_batchnorm=True)


def _collectives_worker(rank: int, init_file: str, results: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        bn = nn.BatchNorm2d(2)
        bn.running_mean.fill_(float(rank * 2))  # ranks hold 0 and 2 -> mean 1
        distributed.average_buffers(bn)
        row = distributed.reduce_epoch_row({"train/loss": 1.0 + rank, "train/images_per_s": 10.0})
        maps = MaskMAP(num_classes=2)
        semantic = torch.zeros(4, 4, dtype=torch.uint8)
        semantic[rank : rank + 2, :2] = 1
        instances = semantic.clone()
        maps.add(semantic, instances, [{"class_id": 1, "score": 0.9, "mask": instances.numpy() == 1}])
        maps.merge_from_all_processes()
        cm = ConfusionMatrix(3)
        if rank == 0:  # rank 1 holds no val image: it must still join the all-reduce
            cm.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 1]))
        cm.reduce_from_all_processes()
        out = {
            "matrix": cm.mat.tolist(),
            "device": distributed.collective_device(),
            "mean": bn.running_mean.tolist(),
            "batches": int(bn.num_batches_tracked),
            "row": row,
            "world": distributed.world(),
            "images": [im["id"] for im in maps.images],
            "gt_ids": [(a["id"], a["image_id"]) for a in maps.gts],
            "dt_images": [d["image_id"] for d in maps.dts],
            "map": maps.compute(),
            "per_rank": distributed.per_rank_batch(8),
            "shared": distributed.broadcast(f"rank{rank}"),
        }
        torch.save(out, f"{results}.{rank}")
    finally:
        dist.destroy_process_group()


def test_collectives_in_a_real_two_process_gloo_group(tmp_path: Path) -> None:
    results = str(tmp_path / "out")
    torch.multiprocessing.start_processes(
        _collectives_worker, args=(str(tmp_path / "rdzv"), results), nprocs=2, start_method="spawn"
    )
    outs = [torch.load(f"{results}.{r}", weights_only=False) for r in range(2)]
    for rank, out in enumerate(outs):
        assert out["world"] == distributed.World(rank, 0, 2)
        assert out["mean"] == [1.0, 1.0]
        assert out["batches"] == 0  # integer counters are left alone
        assert out["row"] == {"train/loss": 1.5, "train/images_per_s": 20.0}
        assert out["images"] == [1, 2]  # rank 1's image renumbered after rank 0's
        assert out["gt_ids"] == [(1, 1), (2, 2)]
        assert out["dt_images"] == [1, 2]
        assert out["map"]["map50"] == pytest.approx(1.0)
        assert out["per_rank"] == 4
        assert out["shared"] == "rank0"
        assert out["matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
        assert out["device"] == torch.device("cpu")  # gloo; NCCL would need CUDA tensors


# --- torchrun training runs -------------------------------------------------------------------------

TRAIN = [
    "--arch",
    "unet",
    "--image-size",
    "64",
    "--augmentation-strength",
    "0",
    "--device",
    "cpu",
    "--no-amp",
    "--workers",
    "0",
    "--no-progress",
]


def _train(args: list[str], torchrun: bool, cwd: Path) -> None:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if torchrun else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in distributed.TORCHRUN_ENV:
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, *launcher, "-m", "prodseg.train", *TRAIN, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))


def _constant_lr_config(folder: Path, gradient_checkpointing: bool) -> Path:
    """fast_cpu with a constant learning rate: the schedule must not depend on --epochs, or a run stopped
    after epoch 1 and resumed to 2 would follow another LR curve than an uninterrupted 2-epoch run."""
    from prodseg.config import load_config
    from prodseg.train.cli import resolve_config_path

    cfg = load_config(
        resolve_config_path("fast_cpu"),
        {
            "training.scheduler.type": "constant",
            "training.scheduler.warmup_epochs": 0,
            "model.gradient_checkpointing": gradient_checkpointing,
        },
    )
    path = folder / f"constant_ckpt{int(gradient_checkpointing)}.yaml"
    path.write_text(cfg.to_yaml())
    return path


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prodseg.data.synth import generate_dataset

    # 10 train images (5 per rank), 3 val images (shards of 2 and 1)
    return generate_dataset(tmp_path_factory.mktemp("ddp") / "data", images=13, size=64, seed=5)


@pytest.mark.slow
def test_two_processes_match_one_and_resume_under_ddp(ddp_data: Path, tmp_path: Path) -> None:
    """Global batch 2 and seed 0 in both runs. torch's SyncBatchNorm is CUDA-only, so under gloo each rank
    normalises its own image; the one-process run that computes the same thing is micro-batch 1 with
    2-step accumulation (same images per optimizer step, same BatchNorm groups: DistributedSampler
    hands rank r images r, r+2, ... of one shared permutation). Both then take the same float operations
    (each gradient halved, then summed), so they agree to float32 rounding; 1e-6 absolute on metrics and
    weights leaves room only for a different summation order in another gloo/BLAS build. The 2-process
    run stops after epoch 1 and is resumed by `--resume`, so this also checks resume under DDP. The
    2-process runs use gradient checkpointing (the forward is recomputed, the numbers are the same) to
    check that it works inside DDP."""
    data = ["--config", str(_constant_lr_config(tmp_path, False)), "--data", str(ddp_data)]
    one, two = tmp_path / "one", tmp_path / "two"
    _train(
        [*data, "--epochs", "2", "--batch-size", "1", "--accumulate-grad-batches", "2", "--out", str(one)],
        torchrun=False,
        cwd=tmp_path,
    )
    data = ["--config", str(_constant_lr_config(tmp_path, True)), "--data", str(ddp_data)]
    _train([*data, "--epochs", "1", "--batch-size", "2", "--out", str(two)], torchrun=True, cwd=tmp_path)
    (run_two,) = [p for p in two.iterdir() if p.is_dir() and p.name.startswith("unet-")]  # rank 0's only
    resume = ["--resume", str(run_two / "last.pt"), "--distributed"]
    _train([*data, "--epochs", "2", "--batch-size", "2", *resume], torchrun=True, cwd=tmp_path)

    (run_one,) = [p for p in one.iterdir() if p.is_dir() and p.name.startswith("unet-")]
    rows_one, rows_two = _rows(run_one), _rows(run_two)
    assert [r["epoch"] for r in rows_two] == ["0", "1", "2"]
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in ("val/miou", "val/pixel_accuracy", "train/loss"):
            if a.get(key):
                assert float(b[key]) == pytest.approx(float(a[key]), abs=1e-6), (a["epoch"], key)
    assert not math.isclose(float(rows_one[2]["val/miou"]), float(rows_one[0]["val/miou"]))  # it trained

    ckpt_one = torch.load(run_one / "last.pt", weights_only=True)
    ckpt_two = torch.load(run_two / "last.pt", weights_only=True)
    assert ckpt_two["global_step"] == ckpt_one["global_step"] == 10
    assert ckpt_two["config"]["model"]["gradient_checkpointing"] is True
    assert ckpt_one["config"]["model"]["gradient_checkpointing"] is False
    for key, value in ckpt_one["model"].items():
        if value.is_floating_point() and "running" not in key:
            torch.testing.assert_close(ckpt_two["model"][key], value, atol=1e-6, rtol=0, msg=key)

    # rank 0 alone tracked: one MLflow run (continued by the resume), one TensorBoard folder
    with sqlite3.connect(two / "mlflow.db") as db:
        assert db.execute("select count(*) from runs").fetchone() == (1,)
    assert len(list((run_two / "tensorboard").glob("events.*"))) >= 1
    assert sorted(p.name for p in run_two.iterdir()) == ["best.pt", "last.pt", "metrics.csv", "tensorboard"]


@pytest.mark.parametrize(
    "gpus, processes, local_rank, visible, phrase",
    [
        (
            2,
            4,
            0,
            None,
            "torchrun --nproc_per_node 4: 4 processes on this node but it has 2 CUDA GPU(s), and ",
        ),
        (2, 4, 3, "0,1", "it has 2 CUDA GPU(s) (CUDA_VISIBLE_DEVICES=0,1)"),
        (1, None, 1, None, "--nproc_per_node 2: 2 processes"),  # a launcher that sets no LOCAL_WORLD_SIZE
        (0, 2, 0, None, "it has 0 CUDA GPU(s), and NCCL needs one GPU per process; use --device cpu"),
    ],
)
def test_more_processes_than_gpus_is_a_config_error_before_any_work(
    monkeypatch: pytest.MonkeyPatch, gpus: int, processes: int | None, local_rank: int, visible, phrase: str
) -> None:
    """No GPU here: torch.cuda's counts are monkeypatched stand-ins for a node with `gpus` GPUs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    for key, value in {"LOCAL_WORLD_SIZE": processes, "CUDA_VISIBLE_DEVICES": visible}.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, str(value))
    with pytest.raises(ConfigError) as err:
        distributed.check_one_gpu_per_process(local_rank)
    assert phrase in str(err.value)
    if gpus:
        assert f"use --nproc_per_node <= {gpus}" in str(err.value)


def test_one_process_per_gpu_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    for rank in range(4):
        distributed.check_one_gpu_per_process(rank)
