"""DistributedDataParallel / FSDP plumbing for `fit`: process group from torchrun's environment, samplers,
the model wrapper, the few collectives training needs, and full (single-file) state dicts of a sharded model.

`fit` calls these unconditionally; outside torchrun every function is the single-process identity
(world size 1, rank 0), so there is one training code path. The config's batch size is the GLOBAL
batch: each of N ranks loads batch_size / N images per step, and DDP averages the gradients, so an
optimizer step sees the same number of images as a single-process run.

`training.distributed.strategy: fsdp` shards parameters, gradients and optimizer state over the ranks
with PyTorch's FSDP2 (`fully_shard`, one unit per block as gradient checkpointing finds them, then the
root). Checkpoints hold the full state dict gathered on rank 0 in the same layout as DDP's (optimizer
state keyed by parameter index), so export and resume do not depend on how the model was trained.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
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
        check_one_gpu_per_process(local_rank)
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    current = world()
    if not current.is_main:  # one voice: the other ranks only report warnings and errors
        logging.getLogger("prodseg").setLevel(logging.WARNING)
    log.info("distributed: %d processes, backend %s", current.size, backend)
    return current


def check_one_gpu_per_process(local_rank: int) -> None:
    """NCCL drives one GPU per process: with more processes on a node than GPUs, the extra ranks would fail
    at set_device ("invalid device ordinal") or NCCL would refuse two ranks on one GPU, after the others
    started. Refuse on every rank before any work instead (ConfigError)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    # torchrun sets LOCAL_WORLD_SIZE (its --nproc_per_node); other launchers may only set LOCAL_RANK.
    processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", 0)), local_rank + 1)
    if processes <= gpus:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    raise ConfigError(
        f"torchrun --nproc_per_node {processes}: {processes} processes on this node but it has {gpus} "
        f"CUDA GPU(s){shown}, and NCCL needs one GPU per process; "
        + (f"use --nproc_per_node <= {gpus}, or " if gpus else "use ")
        + "--device cpu for CPU (gloo) processes"
    )


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


def wrap(model: nn.Module, device: torch.device, sync_batchnorm: bool, strategy: str = "ddp") -> nn.Module:
    """DDP around `model` or FSDP2 shards of it (SyncBatchNorm first when asked); as is outside torchrun."""
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
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"training.distributed.strategy: {strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[strategy](model, device)


def _ddp(model: nn.Module, device: torch.device) -> nn.Module:
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _fsdp(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    units = shard_blocks(model, fully_shard)
    fully_shard(model)  # the root: every parameter outside a block (decoder, heads)
    log.info("fsdp: %d sharded blocks over %d processes", units, world().size)
    return model


def shard_blocks(root: nn.Module, shard: Callable[[nn.Module], Any]) -> int:
    """`shard` every parameterised child of each Sequential/ModuleList under `root` (ResNet bottlenecks,
    MobileNetV2 inverted residuals, ultralytics layers): the units gradient checkpointing also uses.
    Each unit's parameters are gathered only while it runs, so the peak is one block, not the model."""
    count = 0
    for child in root.children():
        if isinstance(root, nn.Sequential | nn.ModuleList) and any(True for _ in child.parameters()):
            shard(child)
            count += 1
        else:
            count += shard_blocks(child, shard)
    return count


STRATEGIES: dict[str, Callable[[nn.Module, torch.device], nn.Module]] = {"ddp": _ddp, "fsdp": _fsdp}


def is_sharded(model: nn.Module) -> bool:
    """True for a model under FSDP2 (its parameters are shards)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full_options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # cpu_offload with full_state_dict: rank 0 alone receives the tensors, the others an empty dict.
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


class Gathered(nn.Module):
    """A sharded model's full weights where a checkpoint reads a model: its `arch` and `state_dict()`."""

    def __init__(self, arch: str, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.arch, self.weights = arch, weights

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return self.weights


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, dict[str, Any]]:
    """(the model to checkpoint, the optimizer state dict), both in a single process's layout.

    Under FSDP this is a collective (every rank calls it) that gathers the full tensors on rank 0.
    """
    if not is_sharded(model):
        return model, optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    weights = get_model_state_dict(model, options=_full_options())
    state = get_optimizer_state_dict(model, optimizer, options=_full_options())
    if not world().is_main:
        return model, {}
    tensors = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    return Gathered(str(getattr(model, "arch", "")), tensors), indexed_optimizer_state(state)


def indexed_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state keyed by parameter name -> keyed by index, as `Optimizer.state_dict()` is."""
    names = [name for group in state["param_groups"] for name in group["params"]]
    index = {name: i for i, name in enumerate(names)}
    return {
        "state": {index[name]: value for name, value in state["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]],
    }


def named_optimizer_state(
    state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """The inverse of `indexed_optimizer_state` for this model and optimizer."""
    names_of = {id(p): name for name, p in model.named_parameters()}
    names = [names_of[id(p)] for group in optimizer.param_groups for p in group["params"]]
    return {
        "state": {names[int(i)]: value for i, value in state["state"].items()},
        "param_groups": [
            {**g, "params": [names[int(i)] for i in g["params"]]} for g in state["param_groups"]
        ],
    }


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a checkpoint's optimizer state (DDP's layout) into a plain, DDP or FSDP optimizer."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if len(state.get("param_groups", [])) != len(optimizer.param_groups):
        raise ValueError(
            f"{len(state.get('param_groups', []))} parameter groups saved, "
            f"{len(optimizer.param_groups)} in this optimizer"
        )
    try:
        named = named_optimizer_state(state, model, optimizer)
    except IndexError as exc:
        raise ValueError(f"more parameters saved than this model has ({exc})") from None
    set_optimizer_state_dict(model, optimizer, named, options=StateDictOptions(full_state_dict=True))


@contextlib.contextmanager
def gathered(model: nn.Module) -> Iterator[None]:
    """Evaluation on full parameters without collectives per forward (no gradients inside).

    Ranks hold different numbers of validation batches, and an FSDP forward all-gathers on every call:
    gather every unit once, keep it gathered through the forwards, and shard it again afterwards. A no-op
    (apart from no_grad) for unsharded models.
    """
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        with torch.no_grad():
            yield
    finally:
        for unit in units:
            unit.reshard()
            # FSDP's own defaults: blocks reshard after forward, the root keeps its parameters for backward.
            unit.set_reshard_after_forward(unit is not model, recurse=False)


def set_epoch(loader: Any, epoch: int) -> None:
    """Reshuffle a loader for `epoch`: its batch sampler when that shuffles (buckets), else its sampler."""
    for sampler in (loader.batch_sampler, loader.sampler):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


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
