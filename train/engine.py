"""The training loop's two halves, torchvision-reference style: `train_one_epoch` and `evaluate`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from prodseg.config import HyperParameters
from prodseg.errors import ConfigError, ProdsegError
from prodseg.train.models.base import SegModel


class TrainingDiverged(ProdsegError):
    """The loss became NaN or infinite. Exit code 2: the cause is the input (learning rate, data,
    config), not a failed gate, and the remedy is to change that input; the last good checkpoint stays."""

    exit_code = 2


@dataclass(frozen=True)
class Precision:
    """How forward passes run: autocast on/off and its dtype; GradScaler only for fp16 on CUDA."""

    device: torch.device
    enabled: bool
    dtype: torch.dtype = torch.float32

    @property
    def use_scaler(self) -> bool:
        return self.enabled and self.dtype == torch.float16 and self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return (
            {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.dtype, "fp32")
            if self.enabled
            else "fp32"
        )


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when torch can use it, else CPU (with a warning when a GPU is present but unusable);
    `cuda[:N]` starts CUDA now, so a driver or device problem is a BadInput naming its cause up front."""
    from prodseg.train.devices import check_cuda, warn_unusable_gpu

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        warn_unusable_gpu()
        return torch.device("cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    device = torch.device(name)
    if device.type == "cuda":
        check_cuda(device)
    return device


# The dtype behind each explicit amp_dtype.
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(device: torch.device, hp: HyperParameters) -> Precision:
    """AMP policy. CUDA: `auto` is bf16 where the GPU has native bf16 (no GradScaler needed), else fp16
    with GradScaler. CPU: bf16 (`auto`: only with native bf16 kernels); fp16 autocast is CUDA-only."""
    if not hp.amp:
        return Precision(device, False)
    if device.type == "cuda":
        return Precision(device, True, AMP_DTYPES[cuda_amp_dtype(hp.amp_dtype)])
    if hp.amp_dtype == "fp16":
        raise ConfigError(
            "training.hyperparameters.amp_dtype: fp16 autocast needs a CUDA GPU; "
            "use bf16 or auto on CPU (or --no-amp)"
        )
    if hp.amp_dtype == "auto" and not cpu_has_native_bf16():
        # Measured on an AVX2-only CPU: emulated bf16 autocast was ~10x slower than fp32, so auto means fp32.
        return Precision(device, False)
    return Precision(device, True, torch.bfloat16)


def cuda_amp_dtype(requested: str) -> str:
    """The autocast dtype on the current GPU: bf16 for `auto` where it is native (compute capability 8.0+:
    fp32's range, so no loss scaling and no GradScaler sync per step), fp16 on older GPUs."""
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("training.hyperparameters.amp_dtype: bf16 is not supported by this GPU; use fp16")
    return requested


def configure_cudnn(device: torch.device, fixed_shapes: bool) -> None:
    """cuDNN autotuning (benchmark mode) when every batch has one shape: it times the convolution
    algorithms once per shape, so it pays off only for fixed shapes (not aspect buckets), and it may pick
    nondeterministic algorithms, so it stays off when deterministic algorithms were requested."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = fixed_shapes and not torch.are_deterministic_algorithms_enabled()


def cpu_has_native_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """Move the batch's tensors to `device` (images channels-last when asked)."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image" and channels_last:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def unwrap(model: nn.Module) -> SegModel:
    """The SegModel inside a DistributedDataParallel wrapper (or the model itself)."""
    return cast(SegModel, getattr(model, "module", model))


@dataclass
class LoopState:
    """What the loop carries between epochs (and checkpoints)."""

    epoch: int = 0  # completed epochs
    global_step: int = 0  # optimizer steps taken


# Batches between reads of the running loss: each read waits for the device to finish the queued steps.
LOG_EVERY = 50


class EpochSums:
    """The epoch's sums of the loss and its parts, kept on the loss's device so that a step never waits for
    it (a GPU->host copy is a sync), and the first non-finite loss (its batch and value), found the same
    way. float64 sums of the float32 values give the exact sums a host-side float accumulation gives."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, Tensor | float] = {}
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_value = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, batch: int, loss: Tensor, parts: dict[str, Tensor | float]) -> None:
        value = loss.detach().to(torch.float64)
        bad = (self.first_bad < 0) & ~torch.isfinite(value)
        self.first_bad = torch.where(bad, batch, self.first_bad)
        self.bad_value = torch.where(bad, value, self.bad_value)
        for key, part in {"loss": value, **parts}.items():
            part = part.detach().to(torch.float64) if isinstance(part, Tensor) else float(part)
            self.sums[key] = self.sums.get(key, 0.0) + part

    def read(self) -> tuple[dict[str, float], int, float]:
        """(the sums, the first non-finite batch or -1, its loss) on the host: one sync."""
        keys = list(self.sums)
        values = [torch.as_tensor(self.sums[k], dtype=torch.float64, device=self.device) for k in keys]
        *sums, first_bad, bad_value = torch.stack([*values, self.first_bad.double(), self.bad_value]).tolist()
        return dict(zip(keys, sums, strict=True)), int(first_bad), bad_value


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    loader: Iterable,
    precision: Precision,
    hp: HyperParameters,
    state: LoopState,
    progress: Any = None,
    ema: Any = None,
    log_every: int = LOG_EVERY,
) -> dict[str, float]:
    """One pass over `loader`: micro-steps -> (accumulated) optimizer step -> LR step (-> EMA update);
    mean train metrics. The loss is read on the host only at log points (the first batch, every
    `log_every` batches, the last): a NaN or infinite loss stops the epoch there, naming its batch."""
    model.train()
    accum, n_batches = hp.accumulate_grad_batches, len(loader)  # type: ignore[arg-type]
    channels_last = precision.device.type == "cuda"
    sums, first_step = EpochSums(precision.device), state.global_step
    totals: dict[str, float] = {}
    images, start, step_images, shown_loss = 0, time.perf_counter(), 0, float("nan")
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(loader):
        batch = to_device(batch, precision.device, channels_last)
        stepping = (i + 1) % accum == 0 or i + 1 == n_batches
        with gradient_sync(model, stepping):
            with precision.autocast():
                outputs = model(batch["image"])
                loss, parts = unwrap(model).compute_loss(outputs, batch, criterion)
            sums.add(i, loss, parts)
            # The last group of an epoch may be short: divide by its real size so each step averages them.
            group = min(accum, n_batches - (i // accum) * accum)
            scaler.scale(loss / group).backward()
        step_images += batch["image"].shape[0]
        if stepping:
            optimizer_step(model, optimizer, scaler, clip_threshold(model, hp.grad_clip_norm, step_images))
            scheduler.step()
            state.global_step += 1
            step_images = 0
            if ema is not None:
                ema.update(model)
        images += batch["image"].shape[0]
        if i == 0 or (i + 1) % log_every == 0 or i + 1 == n_batches:
            totals = checked_totals(sums, state.epoch, first_step, accum, optimizer)
            shown_loss = totals["loss"] / (i + 1)
        if progress is not None:
            lr = optimizer.param_groups[0]["lr"]
            progress(i + 1, n_batches, loss=shown_loss, lr=lr, ips=images / (time.perf_counter() - start))
    elapsed = time.perf_counter() - start
    means = {f"train/{k}": v / max(1, n_batches) for k, v in totals.items()}
    return {
        **means,
        "train/lr": optimizer.param_groups[0]["lr"],
        "train/images_per_s": images / elapsed,
        "train/seconds": elapsed,
    }


def checked_totals(
    sums: EpochSums, epoch: int, first_step: int, accum: int, optimizer: torch.optim.Optimizer
) -> dict[str, float]:
    """The epoch's loss sums so far on the host, or TrainingDiverged naming the first non-finite batch."""
    totals, bad, value = sums.read()
    if bad < 0:
        return totals
    raise TrainingDiverged(
        f"loss became {value} at epoch {epoch + 1}, batch {bad + 1} "
        f"(optimizer step {first_step + bad // accum}); lower the learning rate "
        f"(now {optimizer.param_groups[0]['lr']:.3g}), "
        "set grad_clip_norm, or check the data; the last good checkpoint was left as it was"
    )


def gradient_sync(model: nn.Module, stepping: bool) -> contextlib.AbstractContextManager:
    """DDP all-reduces gradients on every backward; between accumulation steps skip that (`no_sync`).
    FSDP reduce-scatters them: it keeps unsharded gradients until the stepping micro-batch."""
    set_sync = getattr(model, "set_requires_gradient_sync", None)
    if callable(set_sync):
        set_sync(stepping)
        return contextlib.nullcontext()
    no_sync = getattr(model, "no_sync", None)
    if stepping or not callable(no_sync):
        return contextlib.nullcontext()
    context: contextlib.AbstractContextManager = no_sync()
    return context


def clip_threshold(model: nn.Module, clip: float | None, images: int) -> float | None:
    """The norm to clip this step's gradient at. A model whose `grad_clip_per_image` is set states the
    norm for a loss summed over the step's images (ultralytics' convention) while it backpropagates their
    mean, so its gradient is `images` times smaller and is clipped at `clip / images`."""
    if not clip or not getattr(unwrap(model), "grad_clip_per_image", False):
        return clip
    return clip / max(1, images)


def optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, clip: float | None
) -> None:
    """Unscale, clip, step, update the scaler, and clear gradients."""
    if clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def recompute_bn_stats(model: nn.Module, loader: Iterable, precision: Precision, batches: int) -> None:
    """Precise BN: replace BatchNorm running statistics by their average over `batches` training batches."""
    from torch.optim.swa_utils import update_bn

    images = (b["image"] for b, _ in zip(loader, range(batches), strict=False))
    with precision.autocast():
        update_bn(images, model, device=precision.device)


@torch.inference_mode()
def predict_batches(
    model: nn.Module, loader: Iterable, precision: Precision
) -> Iterator[tuple[dict, Any, Tensor]]:
    """Yield (batch, raw outputs, (B,H,W) label map) for each batch, in eval mode."""
    model.eval()
    seg = unwrap(model)
    for batch in loader:
        batch = to_device(batch, precision.device, precision.device.type == "cuda")
        with precision.autocast():
            outputs = model(batch["image"])
        labels = seg.predict_semantic(outputs, tuple(batch["mask"].shape[-2:]))
        yield batch, outputs, labels


def evaluate(
    model: nn.Module, loader: Iterable, precision: Precision, num_classes: int, samples: int = 0
) -> tuple[dict[str, Any], list[tuple[Tensor, Tensor, Tensor]]]:
    """Score the model on `loader`: semantic metrics (+ mask mAP for instance models) and a few samples.

    Returns (metrics, samples) where samples are (image, target mask, predicted labels) on the CPU.
    """
    from prodseg.train.metrics import ConfusionMatrix

    cm = ConfusionMatrix(num_classes)
    instance = instance_scorer(unwrap(model))
    kept: list[tuple[Tensor, Tensor, Tensor]] = []
    for batch, outputs, labels in predict_batches(model, loader, precision):
        cm.update(labels, batch["mask"])
        if instance is not None:
            instance.update(outputs, batch)
        for j in range(min(samples - len(kept), labels.shape[0])):
            kept.append((batch["image"][j].float().cpu(), batch["mask"][j].cpu(), labels[j].cpu()))
    cm.reduce_from_all_processes()
    metrics = dict(cm.compute())
    if instance is not None:
        metrics.update(instance.compute())
    return metrics, kept


def instance_scorer(model: nn.Module) -> Any:
    """A mask-mAP accumulator for instance models (YOLOv8-seg), None for semantic ones."""
    if not getattr(model, "needs_instances", False):
        return None
    from prodseg.train.instance_metrics import InstanceScorer

    return InstanceScorer(model)
