"""`batch_size: auto` and out-of-memory stops.

Before training, a few real training steps (forward, loss, backward, optimizer step) at the training size
measure what a step costs: on CUDA from the allocator's peak (`max_memory_allocated`), on the CPU from the
process's resident memory (psutil), sampled after the forward, the backward and the step. Two batch sizes
give a fixed cost plus a cost per image; the largest batch under `batch_memory_fraction` of the free
memory is what fits. A configured effective batch (`effective_batch_size`, or the config's own batch when
`--batch-size auto` overrides it) is kept through gradient accumulation. The model's weights, buffers
and the RNGs are restored afterwards, so a run with `auto` starts from the same state as one without.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prodseg.config import Config, apply_overrides
from prodseg.errors import ProdsegError
from prodseg.train import distributed

log = logging.getLogger("prodseg.train")

MAX_AUTO_BATCH = 64  # per process: beyond this a bigger batch buys little and costs generalisation
PROBE_SIZES = (2, 4)  # two points of the memory line; >= 2 so BatchNorm trains (DeepLabV3+'s pooling)
CPU_OOM = "DefaultCPUAllocator: can't allocate memory"
GIB = 2**30


class OutOfMemory(ProdsegError):
    """Training ran out of memory: the input (batch, size, model) is too big for the machine (exit 2)."""

    exit_code = 2


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the CPU's MemoryError / allocator RuntimeError."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and (CPU_OOM in str(exc) or "CUDA out of memory" in str(exc))


# --- meters: free memory and a step's peak growth, per device type -----------------------------------


def _cpu_available(device: torch.device) -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _cuda_available(device: torch.device) -> int:
    free, _ = torch.cuda.mem_get_info(device)
    # What torch's caching allocator holds but does not use is free for this process too.
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def _cpu_used(device: torch.device) -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _cuda_used(device: torch.device) -> int:
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


AVAILABLE: dict[str, Callable[[torch.device], int]] = {"cpu": _cpu_available, "cuda": _cuda_available}
USED: dict[str, Callable[[torch.device], int]] = {"cpu": _cpu_used, "cuda": _cuda_used}


def available_bytes(device: torch.device) -> int:
    """Memory this process may still take on `device` (system RAM for the CPU)."""
    return AVAILABLE[device.type](device)


def used_bytes(device: torch.device) -> int:
    """The process's resident memory (CPU) or the allocator's peak since the last reset (CUDA)."""
    return USED[device.type](device)


# --- the probe ---------------------------------------------------------------------------------------


@dataclass
class Probe:
    """What a training step needs: model, loss, a throwaway optimizer, precision, one real item."""

    model: nn.Module
    criterion: nn.Module | None
    optimizer: torch.optim.Optimizer
    precision: Any
    item: dict[str, Any]

    @property
    def device(self) -> torch.device:
        return self.precision.device

    def batch(self, n: int) -> dict[str, Any]:
        """`n` copies of the item, collated and on the device (the cost does not depend on the pixels)."""
        from prodseg.train.engine import to_device

        batch = torch.utils.data.default_collate([self.item] * n)
        return to_device(batch, self.device, self.device.type == "cuda")

    def step(self, n: int, sample: Callable[[], None]) -> None:
        """One forward, backward and optimizer step on `n` images, sampling memory after each."""
        from prodseg.train.engine import unwrap

        batch = self.batch(n)
        with self.precision.autocast():
            outputs = self.model(batch["image"])
            loss, _ = unwrap(self.model).compute_loss(outputs, batch, self.criterion)
        sample()
        loss.backward()
        sample()
        self.optimizer.step()
        sample()
        self.optimizer.zero_grad(set_to_none=True)


def measure_footprint(probe: Probe, n: int, base: int) -> int:
    """Peak bytes above `base` during one training step on `n` images."""
    device = probe.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    peak = [used_bytes(device)]
    probe.step(n, lambda: peak.append(used_bytes(device)))
    return max(peak) - base


def fitting_batch(footprints: dict[int, int], budget: int) -> int:
    """The largest n with fixed + per_image * n <= budget, the line through the two measured points.

    A slope the measurement noise made flat or negative falls back to the line through the origin and
    the larger point (the cautious estimate).
    """
    (n1, f1), (n2, f2) = sorted(footprints.items())
    per_image = (f2 - f1) / (n2 - n1)
    fixed = f1 - per_image * n1
    if per_image <= 0 or fixed < 0:
        per_image, fixed = max(f2, 1) / n2, 0.0
    return max(0, math.floor((budget - fixed) / per_image))


@contextlib.contextmanager
def restored(model: nn.Module) -> Iterator[None]:
    """Run a probe, then put back the model's weights and buffers, its gradients and every RNG."""
    from prodseg.train.checkpoint import rng_state, set_rng_state

    rng = rng_state()
    saved = {k: _copy(v) for k, v in model.state_dict().items()}
    try:
        yield
    finally:
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
        set_rng_state(rng)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    # Plain tensors wait on the CPU (the probe needs the device memory); shards stay where they live.
    if type(tensor) is torch.Tensor or isinstance(tensor, nn.Parameter):
        return tensor.detach().to("cpu", copy=True)
    return tensor.detach().clone()


def probe_fits(probe: Probe, budget_fraction: float, cap: int) -> tuple[int, int]:
    """(images per step that fit, the budget in bytes), from steps at PROBE_SIZES; 0 when none fits."""
    device = probe.device
    budget = int(budget_fraction * available_bytes(device))
    base = used_bytes(device) if device.type == "cpu" else torch.cuda.memory_allocated(device)
    probe.step(PROBE_SIZES[0], lambda: None)  # first step: optimizer state and lazy allocations
    footprints: dict[int, int] = {}
    for n in PROBE_SIZES:
        try:
            footprints[n] = measure_footprint(probe, n, base)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is an answer; the rest re-raises
            if not is_out_of_memory(exc):
                raise
            return (PROBE_SIZES[0] if n != PROBE_SIZES[0] else 0), budget
    return min(cap, fitting_batch(footprints, budget)), budget


# --- the plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchChoice:
    """Images per process per micro-step, accumulation steps, and why."""

    per_rank: int
    accumulate: int
    world: int
    fits: int  # per process
    target: int | None  # the effective batch asked for, if any

    @property
    def batch(self) -> int:
        """The global micro-batch: the config's batch_size."""
        return self.per_rank * self.world

    @property
    def effective(self) -> int:
        return self.batch * self.accumulate

    def line(self, size: tuple[int, int], device: torch.device, budget: int, fraction: float) -> str:
        where = f" per process x {self.world}" if self.world > 1 else ""
        text = (
            f"batch_size auto: {self.fits} images of {size[0]}x{size[1]}{where} fit {fraction:g} of "
            f"{budget / fraction / GIB:.1f} GiB free {device.type.upper()} memory; training with batch "
            f"{self.batch} x {self.accumulate} accumulation step(s) = effective batch {self.effective}"
        )
        if self.target is None:
            return text
        kept = "kept" if self.effective == self.target else f"the nearest to {self.target}"
        return f"{text} ({kept} through accumulation)" if self.accumulate > 1 else f"{text} (as asked)"


def plan_batch(fits: int, target: int | None, accumulate: int, world: int, cap: int) -> BatchChoice:
    """Per-process batch and accumulation: what fits (up to `cap`), or `target` images per optimizer step
    reached by accumulating ceil(target / fits) micro-steps of at most `fits` images each."""
    fits = max(1, min(fits, cap))
    if target is None:
        return BatchChoice(fits, accumulate, world, fits, None)
    per_rank_target = -(-target // world)
    steps = -(-per_rank_target // fits)
    return BatchChoice(-(-per_rank_target // steps), steps, world, fits, target)


def resolve(cfg: Config, model: nn.Module, criterion: nn.Module | None, precision: Any) -> Config:
    """`cfg` with batch_size auto replaced by the measured batch and accumulation (unchanged otherwise)."""
    hp = cfg.training.hyperparameters
    if hp.batch_size != "auto":
        return cfg
    world = distributed.world()
    size = tuple(cfg.data.image_size)
    item, length = probe_item(cfg, model)
    cap = max(1, min(MAX_AUTO_BATCH, length // world.size))
    # DDP's own hooks would all-reduce every probe step: probe the module inside it (sharded models whole).
    probed = model if distributed.is_sharded(model) else getattr(model, "module", model)
    fits, budget = measure(cfg, probed, criterion, precision, item, cap)
    fits = min(distributed.gather(fits))  # every process runs the same batch: the smallest device decides
    if fits < 1:
        raise OutOfMemory(
            f"training.hyperparameters.batch_size: auto found that not even {PROBE_SIZES[0]} images of "
            f"{size[0]}x{size[1]} fit {cfg.training.batch_memory_fraction:g} of the free "
            f"{precision.device.type.upper()} memory ({budget / GIB:.2f} GiB); use a smaller --image-size, "
            "model.gradient_checkpointing: true, --amp, or training.distributed.strategy: fsdp under torchrun"
        )
    choice = plan_batch(fits, hp.effective_batch_size, hp.accumulate_grad_batches, world.size, cap)
    log.info(choice.line(size, precision.device, budget, cfg.training.batch_memory_fraction))  # type: ignore[arg-type]
    return apply_overrides(
        cfg,
        {
            "training.hyperparameters.batch_size": choice.batch,
            "training.hyperparameters.accumulate_grad_batches": choice.accumulate,
        },
        "batch_size auto",
    )


def probe_item(cfg: Config, model: nn.Module) -> tuple[dict[str, Any], int]:
    """One training item at the training size (no augmentation) and the train split's length."""
    from prodseg.data.torch_datasets import GroceryShelfDataset
    from prodseg.train.engine import unwrap

    seg = unwrap(model)
    height, width = cfg.data.image_size
    dataset = GroceryShelfDataset(
        cfg.data.root,
        cfg.data.train_split,
        size=(height, width),
        train=False,
        mean=seg.mean,
        std=seg.std,
        with_instances=seg.needs_instances,
    )
    return dataset[0], len(dataset)


def measure(
    cfg: Config, model: nn.Module, criterion: nn.Module | None, precision: Any, item: dict[str, Any], cap: int
) -> tuple[int, int]:
    """Probe `model` in train mode with a throwaway optimizer; the model comes back as it was."""
    from prodseg.train.optim import build_optimizer

    was_training = model.training
    model.train()
    with restored(model):
        probe = Probe(model, criterion, build_optimizer(model, cfg.training), precision, item)
        try:
            return probe_fits(probe, cfg.training.batch_memory_fraction, cap)
        finally:
            del probe
            model.train(was_training)


@contextlib.contextmanager
def stop_on_out_of_memory(cfg: Config) -> Iterator[None]:
    """Turn an out-of-memory error during training into one line naming the batch, size and remedies."""
    try:
        yield
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        raise OutOfMemory(out_of_memory_message(cfg)) from None


def out_of_memory_message(cfg: Config) -> str:
    hp, (h, w) = cfg.training.hyperparameters, cfg.data.image_size
    world = distributed.world().size
    where = f" over {world} processes" if world > 1 else ""
    accum = f" x {hp.accumulate_grad_batches} accumulation steps" if hp.accumulate_grad_batches > 1 else ""
    device = cfg.training.device
    return (
        f"training.hyperparameters.batch_size: out of memory training batch {hp.batch_size}{accum}"
        f"{where} at image size {h}x{w} (device {device}); use --batch-size auto, or a smaller "
        "--batch-size with --accumulate-grad-batches, a smaller --image-size, or "
        "model.gradient_checkpointing: true (last.pt keeps the last finished epoch)"
    )
