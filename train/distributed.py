"""DistributedDataParallel plumbing for `fit`: process group from torchrun's environment, samplers,
the model wrapper, and the few collectives training needs.

`fit` calls these unconditionally; outside torchrun every function is the single-process identity
(world size 1, rank 0), so there is one training code path. The config's batch size is the GLOBAL
batch: each of N ranks loads batch_size / N images per step, and DDP averages the gradients, so an
optimizer step sees the same number of images as a single-process run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

from prodseg.errors import ConfigError

log = logging.getLogger("prodseg.train")

# Set by torchrun (and by `torch.distributed.run`) for every worker process.
TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

# Which collective backend drives which device type.
BACKENDS = {"cuda": "nccl", "cpu": "gloo"}


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank 0 of 1 outside torchrun."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, trackers and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def launched_by_torchrun() -> bool:
    """True when torchrun set up this process's rendezvous environment."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def world() -> World:
    """The current process group's rank/size (rank 0 of 1 when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size())


def init(device_type: str, required: bool = False) -> World:
    """Join the process group torchrun describes (NCCL for CUDA, gloo for CPU); no-op outside torchrun.

    `required` (prodseg-train --distributed) turns a missing torchrun environment into a ConfigError.
    """
    if dist.is_available() and dist.is_initialized():
        return world()
    if not launched_by_torchrun():
        if required:
            missing = ", ".join(k for k in TORCHRUN_ENV if k not in os.environ)
            raise ConfigError(
                f"--distributed: not started by torchrun ({missing} unset); launch with "
                "`torchrun --nproc_per_node N -m prodseg.train ...`"
            )
        return World()
    backend = BACKENDS.get(device_type, "gloo")
    local_rank = int(os.environ["LOCAL_RANK"])
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    current = world()
    if not current.is_main:  # one voice: the other ranks only report warnings and errors
        logging.getLogger("prodseg").setLevel(logging.WARNING)
    log.info("distributed: %d processes, backend %s", current.size, backend)
    return current


def shutdown(barrier: bool = True) -> None:
    """Leave the process group, after a barrier so rank 0's last writes finish before anyone exits."""
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process drives the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and world().distributed:
        return torch.device("cuda", world().local_rank)
    return device


def collective_device() -> torch.device:
    """Where tensors for a collective must live: NCCL only moves CUDA tensors, gloo takes CPU ones."""
    if world().distributed and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def per_rank_batch(global_batch: int) -> int:
    """The config's batch size split evenly over the ranks."""
    size = world().size
    if global_batch % size:
        raise ConfigError(
            f"training.hyperparameters.batch_size: {global_batch} is the global batch and must divide "
            f"evenly over {size} processes; use a multiple of {size}"
        )
    return global_batch // size


def train_sampler(dataset: Any, seed: int) -> DistributedSampler:
    """Shuffled shard of the training set; `set_epoch` reshuffles (one code path for 1 or N ranks)."""
    w = world()
    return DistributedSampler(dataset, num_replicas=w.size, rank=w.rank, shuffle=True, seed=seed)


class ShardSampler(Sampler[int]):
    """Indices rank, rank+N, rank+2N, ... without padding, so a sharded evaluation counts every
    validation image exactly once (DistributedSampler repeats images to even out the shards)."""

    def __init__(self, length: int, rank: int, size: int) -> None:
        self.indices = list(range(rank, length, size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def val_sampler(dataset: Any) -> ShardSampler:
    """This rank's unpadded share of the validation set."""
    w = world()
    return ShardSampler(len(dataset), w.rank, w.size)


def wrap(model: nn.Module, device: torch.device, sync_batchnorm: bool) -> nn.Module:
    """DistributedDataParallel around `model` (SyncBatchNorm first when asked); unchanged outside torchrun."""
    if sync_batchnorm and device.type != "cuda":
        # torch's SyncBatchNorm raises on CPU tensors: refuse before any step instead of mid-epoch.
        raise ConfigError(
            "training.sync_batchnorm: torch's SyncBatchNorm runs on CUDA only; set it false for CPU "
            "(gloo) training, where each process normalises over its own share of the batch"
        )
    if not world().distributed:
        return model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def broadcast(obj: Any) -> Any:
    """Rank 0's value of `obj` on every rank (e.g. the run folder it created)."""
    if not world().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_buffers(model: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the ranks.

    Without SyncBatchNorm every rank estimates its own statistics from its shard; their mean is the
    statistic over all shards (equal batch counts), and every rank then validates - and rank 0 saves -
    the same model.
    """
    if not world().distributed:
        return
    size = world().size
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf.div_(size)


def reduce_epoch_row(row: dict[str, float]) -> dict[str, float]:
    """Average per-rank training means over the ranks; images/s adds up."""
    w = world()
    if not w.distributed:
        return row
    keys = sorted(row)
    values = torch.tensor([row[k] for k in keys], dtype=torch.float64, device=collective_device())
    dist.all_reduce(values)
    summed = {"train/images_per_s"}
    return {k: float(v) if k in summed else float(v) / w.size for k, v in zip(keys, values, strict=True)}


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order ([obj] outside torchrun)."""
    w = world()
    if not w.distributed:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out
