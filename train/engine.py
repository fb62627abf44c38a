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
    """`auto` -> CUDA when available, else CPU; `cuda` without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible here; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    return torch.device(name)


def resolve_precision(device: torch.device, hp: HyperParameters) -> Precision:
    """AMP policy: fp16 (auto) or bf16 on CUDA; on CPU bf16 (auto: only with native bf16 kernels)."""
    if not hp.amp:
        return Precision(device, False)
    if device.type == "cuda":
        if hp.amp_dtype == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                "training.hyperparameters.amp_dtype: bf16 is not supported by this GPU; use fp16"
            )
        return Precision(device, True, torch.bfloat16 if hp.amp_dtype == "bf16" else torch.float16)
    if hp.amp_dtype == "fp16":
        raise ConfigError(
            "training.hyperparameters.amp_dtype: fp16 autocast needs a CUDA GPU; "
            "use bf16 or auto on CPU (or --no-amp)"
        )
    if hp.amp_dtype == "auto" and not cpu_has_native_bf16():
        # Measured on an AVX2-only CPU: emulated bf16 autocast was ~10x slower than fp32, so auto means fp32.
        return Precision(device, False)
    return Precision(device, True, torch.bfloat16)


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
) -> dict[str, float]:
    """One pass over `loader`: micro-steps -> (accumulated) optimizer step -> LR step (-> EMA update);
    mean train metrics."""
    model.train()
    accum, n_batches = hp.accumulate_grad_batches, len(loader)  # type: ignore[arg-type]
    channels_last = precision.device.type == "cuda"
    totals: dict[str, float] = {}
    images, start, step_images = 0, time.perf_counter(), 0
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(loader):
        batch = to_device(batch, precision.device, channels_last)
        stepping = (i + 1) % accum == 0 or i + 1 == n_batches
        with gradient_sync(model, stepping):
            with precision.autocast():
                outputs = model(batch["image"])
                loss, parts = unwrap(model).compute_loss(outputs, batch, criterion)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {float(loss.detach())} at epoch {state.epoch + 1}, batch {i + 1} "
                    f"(optimizer step {state.global_step}); lower the learning rate "
                    f"(now {optimizer.param_groups[0]['lr']:.3g}), "
                    "set grad_clip_norm, or check the data; the last good checkpoint was left as it was"
                )
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
        for key, value in {"loss": float(loss.detach()), **parts}.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        if progress is not None:
            progress(
                i + 1,
                n_batches,
                loss=totals["loss"] / (i + 1),
                lr=optimizer.param_groups[0]["lr"],
                ips=images / (time.perf_counter() - start),
            )
    elapsed = time.perf_counter() - start
    means = {f"train/{k}": v / max(1, n_batches) for k, v in totals.items()}
    return {
        **means,
        "train/lr": optimizer.param_groups[0]["lr"],
        "train/images_per_s": images / elapsed,
        "train/seconds": elapsed,
    }


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
