"""`fit(cfg)`: build everything from a Config, run epochs, validate, checkpoint, track, stop early.

Reads top to bottom like nanoGPT's train.py: setup -> (resume) -> for each epoch: seed -> train ->
validate -> checkpoint -> log -> early stop. Every epoch reseeds all RNGs from (seed, epoch), so a run
resumed from `last.pt` replays exactly the batches, augmentations and dropout masks it would have seen.
Under torchrun the same code runs on every rank (see `distributed`): sharded data, DDP-averaged
gradients, all-reduced validation, and rank 0 alone writes checkpoints and tracks.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prodseg.atomic import check_output_path
from prodseg.config import Config, apply_overrides
from prodseg.data.layout import ShelfDataset
from prodseg.data.taxonomy import ClassList
from prodseg.errors import BadInput, ConfigError
from prodseg.train import autobatch, distributed
from prodseg.train.checkpoint import (
    build_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_rng_state,
)
from prodseg.train.ema import ModelEMA, build_ema, live_weights
from prodseg.train.engine import (
    LoopState,
    Precision,
    configure_cudnn,
    evaluate,
    recompute_bn_stats,
    resolve_device,
    resolve_precision,
    train_one_epoch,
    unwrap,
)
from prodseg.train.optim import PlannedLR, build_optimizer, build_scheduler
from prodseg.train.outputs import first_missing, removed_on_failure
from prodseg.train.progress import epoch_progress
from prodseg.train.report import denormalize, sample_panel
from prodseg.train.tracking import Trackers, build_trackers, flatten

log = logging.getLogger("prodseg.train")


@dataclass
class FitResult:
    """Where the run went and how it ended."""

    run_dir: Path
    best_miou: float
    best_epoch: int
    untrained_miou: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    registered: str | None = None
    stopped_early: bool = False


@dataclass
class Run:
    """Everything `fit` builds once: model, data, optimisation state, trackers."""

    cfg: Config
    run_dir: Path
    model: nn.Module
    criterion: nn.Module | None
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: PlannedLR
    scaler: torch.amp.GradScaler
    precision: Precision
    classes: ClassList
    state: LoopState
    best: dict[str, Any]
    history: list[dict[str, float]]
    trackers: Trackers = field(default_factory=lambda: Trackers([]))  # none until train_run builds them
    mlflow_run_id: str | None = None  # the MLflow run a resumed training continues
    ema: ModelEMA | None = None  # validated and saved instead of the live weights


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    # Workers get numpy/python streams from the loader's per-epoch seed (the dataset reseeds its own
    # augmentation from torch's worker seed).
    np.random.seed(torch.initial_seed() % 2**32)
    random.seed(torch.initial_seed())


def build_loaders(
    cfg: Config, model: nn.Module
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Train (shuffled, augmented) and val loaders over the dataset folder, normalised for `model`."""
    from prodseg.data.torch_datasets import GroceryShelfDataset, bucketed_loaders

    seg = unwrap(model)
    height, width = cfg.data.image_size

    def split(name: str, train: bool) -> GroceryShelfDataset:
        augmentation = cfg.training.augmentation if train else None
        return GroceryShelfDataset(
            cfg.data.root,
            name,
            augmentation=augmentation,
            train=train,
            size=(height, width),
            mean=seg.mean,
            std=seg.std,
            cache=cfg.data.cache,
            with_instances=seg.needs_instances,
        )

    train_ds, val_ds = split(cfg.data.train_split, True), split(cfg.data.val_split, False)
    batch = cfg.training.hyperparameters.batch_size
    assert isinstance(batch, int), "batch_size auto is resolved before the loaders are built"
    bs, workers = distributed.per_rank_batch(batch), cfg.data.num_workers
    pin = torch.cuda.is_available()
    if cfg.data.bucket_by_aspect:  # mixed sizes: batches of one aspect bucket each, whole batches per rank
        w = distributed.world()
        return bucketed_loaders(
            train_ds,
            val_ds,
            bs,
            cfg.training.hyperparameters.seed,
            w.rank,
            w.size,
            num_workers=workers,
            pin_memory=pin,
            worker_init_fn=_seed_worker,
        )
    sampler = distributed.train_sampler(train_ds, cfg.training.hyperparameters.seed)
    # A trailing batch of one breaks BatchNorm in train mode (DeepLabV3+'s image pooling): drop only that one.
    train = torch.utils.data.DataLoader(
        train_ds,
        batch_size=bs,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=len(sampler) % bs == 1 and len(sampler) > 1,
        generator=torch.Generator(),
        worker_init_fn=_seed_worker,
        persistent_workers=False,
    )
    val = torch.utils.data.DataLoader(
        val_ds, batch_size=bs, sampler=distributed.val_sampler(val_ds), num_workers=workers, pin_memory=pin
    )
    return train, val


def seed_epoch(run: Run, epoch: int) -> None:
    """Reseed every RNG from (seed, epoch, rank): shuffling, dropout, and (via torch's seed) augmentation.

    The sampler's shuffle depends on (seed, epoch) only, so every rank agrees on the permutation;
    dropout and augmentation streams differ per rank so the shards are not augmented alike.
    """
    world = distributed.world()
    seed = (run.cfg.training.hyperparameters.seed * 1000 + epoch) * world.size + world.rank
    seed_everything(seed)
    distributed.set_epoch(run.train_loader, epoch)
    run.train_loader.generator.manual_seed(seed)


def resolve_classes(cfg: Config, dataset: ShelfDataset) -> Config:
    """The config with model.num_classes from the dataset's classes.yaml, or ConfigError when it disagrees.

    YOLOv8-seg counts its detection classes without background; users never need to know that: left
    unset, the count comes from classes.yaml for every architecture.
    """
    yolo = cfg.model.architecture == "yolov8_seg"
    want = dataset.classes.num_classes
    if cfg.model.num_classes is None:
        return apply_overrides(cfg, {"model.num_classes": want - (1 if yolo else 0)})
    have = cfg.model.num_classes + (1 if yolo else 0)
    if have != want:
        without = f" ({want - 1}: without background for yolov8_seg)" if yolo else f" ({want})"
        raise ConfigError(
            f"model.num_classes: the config says {cfg.model.num_classes} but {dataset.root / 'classes.yaml'} "
            f"lists {want} classes ({', '.join(dataset.classes.names[:6])}{', …' if want > 6 else ''}); "
            f"remove model.num_classes to take it from the dataset, or set it to match{without}"
        )
    return cfg


def preflight(cfg: Config) -> tuple[Config, ShelfDataset]:
    """Every check of outputs and data that can fail, before anything is built or written (BadInput).

    Returns the config completed from the dataset (the class count) and the dataset.
    """
    from prodseg.data.check import checked_split

    check_output_path(cfg.logging.out_dir, "--out", folder=True)
    dataset = ShelfDataset(cfg.data.root)
    cfg = resolve_classes(cfg, dataset)
    sizes = {
        split: len(checked_split(dataset, split))
        for split in dict.fromkeys((cfg.data.train_split, cfg.data.val_split))
    }
    if sizes[cfg.data.train_split] < 2:
        # every model normalises with BatchNorm, which cannot train on a batch of one image
        raise BadInput(
            f"{dataset.root}: the '{cfg.data.train_split}' split has "
            f"{sizes[cfg.data.train_split]} image(s); training needs at least 2 (BatchNorm "
            "learns from batches of 2 or more): add images or move some from the other splits"
        )
    return cfg, dataset


def new_run_dir(cfg: Config) -> Path:
    """`<out_dir>/<arch>-<timestamp>`, made unique with a counter; rank 0 creates it, all ranks share it."""
    if not distributed.world().is_main:
        return Path(distributed.broadcast(None))
    base = Path(cfg.logging.out_dir) / f"{cfg.model.architecture}-{datetime.now():%Y%m%d-%H%M%S}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return Path(distributed.broadcast(str(path)))


def setup(cfg: Config, resume: str | Path | None = None) -> Run:
    """Build model, loss, data, optimizer, scheduler and scaler; restore them from `resume` when given."""
    from prodseg.train.losses import build_loss
    from prodseg.train.models import build_model

    cfg, dataset = preflight(cfg)
    ckpt = load_checkpoint(resume) if resume else None
    if ckpt is not None and ckpt["arch"] != cfg.model.architecture:
        raise BadInput(
            f"checkpoint {resume} holds a {ckpt['arch']} model but the config asks for "
            f"{cfg.model.architecture}; drop --arch or resume from a matching checkpoint"
        )
    hp = cfg.training.hyperparameters
    device = distributed.local_device(resolve_device(cfg.training.device))
    precision = resolve_precision(device, hp)
    seed_everything(hp.seed)  # same initial weights for the same seed
    model: nn.Module = build_model(cfg.model)
    criterion = (
        build_loss(cfg.training, unwrap(model).num_classes)
        if unwrap(model).output_kind == "semantic_logits"
        else None
    )
    if ckpt is not None:
        load_weights(model, live_weights(ckpt), str(resume), ckpt["arch"])
    place(model, criterion, device)
    configure_cudnn(device, fixed_shapes=not cfg.data.bucket_by_aspect)
    model = distributed.wrap(model, device, cfg.training.sync_batchnorm, cfg.training.distributed.strategy)
    # batch_size auto: measured on the placed (under FSDP: sharded) model, before the loaders batch.
    cfg = autobatch.resolve(cfg, model, criterion, precision)
    hp = cfg.training.hyperparameters
    train_loader, val_loader = build_loaders(cfg, model)
    steps = -(-len(train_loader) // hp.accumulate_grad_batches)
    optimizer = build_optimizer(model, cfg.training)
    scheduler = build_scheduler(optimizer, cfg.training, steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.use_scaler)
    run = Run(
        cfg=cfg,
        run_dir=Path(resume).parent if resume else new_run_dir(cfg),
        model=model,
        criterion=criterion,
        train_loader=train_loader,
        val_loader=val_loader,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        precision=precision,
        classes=dataset.classes,
        state=LoopState(),
        best={"miou": float("-inf"), "epoch": 0, "bad_validations": 0},
        history=[],
    )
    run.ema = build_ema(cfg, model, ckpt)
    if ckpt is not None:
        restore(run, ckpt, str(resume))
    return run


def place(model: nn.Module, criterion: nn.Module | None, device: torch.device) -> None:
    """Move the model and the loss to `device`: the loss holds tensors too (class weights as buffers),
    and a CUDA forward against CPU weights fails (channels-last memory on CUDA, where it is faster)."""
    model.to(device)
    if criterion is not None:
        criterion.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)


def restore(run: Run, ckpt: dict[str, Any], path: str | Path) -> None:
    """Load optimizer/scheduler/scaler/loop state and RNGs from a checkpoint dict."""
    try:
        distributed.load_optimizer_state(run.model, run.optimizer, ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            run.scaler.load_state_dict(ckpt["scaler"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise BadInput(
            f"{path}: its optimizer/scheduler state does not fit this run ({exc}); "
            "resume with the same optimizer settings or start a new run with --weights"
        ) from exc
    run.state = LoopState(int(ckpt["epoch"]), int(ckpt["global_step"]))
    run.best = dict(ckpt["best"])
    run.history = [dict(h) for h in ckpt.get("history", [])]
    run.mlflow_run_id = ckpt.get("mlflow_run_id") or None
    set_rng_state(ckpt["rng"])
    if run.state.epoch >= run.cfg.training.hyperparameters.num_epochs:
        raise BadInput(
            f"{path}: already trained {run.state.epoch} epochs; pass --epochs N with N > "
            f"{run.state.epoch} to continue"
        )


def checkpoint(run: Run, name: str, extra: dict[str, Any]) -> Path | None:
    """Write `<run>/<name>` with the full training state (rank 0 only; None on the other ranks)."""
    model, optimizer_state = distributed.full_state(run.model, run.optimizer)  # gathers shards under FSDP
    if not distributed.world().is_main:
        return None
    ckpt = build_checkpoint(
        model,
        run.cfg,
        list(run.classes.names),
        [list(c) for c in run.classes.colors],
        optimizer=optimizer_state,
        scheduler=run.scheduler.state_dict(),
        scaler=run.scaler.state_dict() if run.scaler.is_enabled() else None,
        epoch=run.state.epoch,
        global_step=run.state.global_step,
        best=dict(run.best),
        history=run.history,
        ema=run.ema,
        **extra,
    )
    return save_checkpoint(run.run_dir / name, ckpt)


def validate(run: Run, epoch: int) -> dict[str, float]:
    """Evaluate on the val split (the EMA weights when on), log scalars and sample overlays; returns the
    scalar metrics."""
    seg = unwrap(run.ema.module if run.ema is not None else run.model)
    world = distributed.world()
    with distributed.gathered(run.model):  # FSDP: whole parameters, no collective per forward
        if run.cfg.training.hyperparameters.precise_bn_batches:
            # The K batches are split over the ranks, which then average: the same K batches as one process.
            per_rank = -(-run.cfg.training.hyperparameters.precise_bn_batches // world.size)
            recompute_bn_stats(seg, run.train_loader, run.precision, per_rank)
        distributed.average_buffers(seg)
        # The bare module: ranks hold different numbers of val batches, so DDP's forward hooks must not run.
        samples_wanted = run.cfg.logging.sample_images if world.is_main else 0
        metrics, samples = evaluate(seg, run.val_loader, run.precision, seg.num_classes, samples_wanted)
    scalars = {f"val/{k}": float(v) for k, v in metrics.items() if np.ndim(v) == 0}
    for name, value in zip(run.classes.names, metrics["iou"], strict=False):
        scalars[f"val_iou/{name}"] = float(value)
    colors = [list(c) for c in run.classes.colors]
    for j, (image, target, pred) in enumerate(samples):
        panel = sample_panel(denormalize(image, seg.mean, seg.std), target.numpy(), pred.numpy(), colors)
        run.trackers.log_image(f"sample{j}", panel, epoch)
    return scalars


def fit(
    cfg: Config,
    resume: str | Path | None = None,
    register: str | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[Run, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train `cfg` (optionally resuming from a last.pt) and return the run folder and best val mIoU.

    `on_epoch_end(run, row)` is called after each epoch's checkpoint is written (for notebooks and tests).
    """
    if resume:
        # The run folder is the checkpoint's, so its MLflow store (<out_dir>/mlflow.db) is the one beside
        # it, whatever --config or --out say: otherwise the stored MLflow run id points into another store.
        cfg = apply_overrides(cfg, {"logging.out_dir": str(Path(resume).resolve().parent.parent)}, "--resume")
    if register and not cfg.logging.mlflow:
        raise ConfigError(f"--register {register}: needs MLflow tracking; set logging.mlflow: true")
    created = first_missing(cfg.logging.out_dir)
    run = setup(cfg, resume)
    main = distributed.world().is_main
    # A run that fails before its first checkpoint (not a resumed one) leaves no run folder behind.
    keep = (lambda: True) if resume or not main else (lambda: (run.run_dir / "last.pt").exists())
    with removed_on_failure(run.run_dir, created, keep), autobatch.stop_on_out_of_memory(run.cfg):
        return train_run(run, register, progress and main, on_epoch_end)


def train_run(run: Run, register: str | None, progress: bool, on_epoch_end: Callable | None) -> FitResult:
    """Track, score the untrained model, train the epochs and register: `fit` after `setup`."""
    cfg, hp, main = run.cfg, run.cfg.training.hyperparameters, distributed.world().is_main
    run.trackers = (
        build_trackers(cfg, run.run_dir, {"epoch": run.state.epoch, "mlflow_run_id": run.mlflow_run_id})
        if main
        else Trackers([])
    )
    extra = {"mlflow_run_id": getattr(run.trackers.mlflow, "run_id", None) or ""}
    untrained = None
    try:
        run.trackers.log_params(flatten(cfg.to_dict()))
        if run.state.epoch == 0:  # the untrained model's score: the baseline training must beat
            seed_everything(hp.seed)
            scalars = validate(run, 0)
            untrained = scalars["val/miou"]
            run.trackers.log_metrics(scalars, 0)
            log.info("run folder %s; untrained val mIoU %.4f", run.run_dir, untrained)
        stopped = train_epochs(run, on_epoch_end, progress, extra)
        registered = None
        if register and main:
            best = run.run_dir / "best.pt"
            registered = run.trackers.register(best if best.is_file() else run.run_dir / "last.pt", register)
            if registered is None:
                raise ConfigError(f"--register {register}: needs MLflow tracking; set logging.mlflow: true")
    finally:
        run.trackers.close()
    return FitResult(
        run.run_dir, run.best["miou"], run.best["epoch"], untrained, run.history, registered, stopped
    )


def train_epochs(run: Run, on_epoch_end: Callable | None, progress: bool, extra: dict[str, Any]) -> bool:
    """The epoch loop; returns True when early stopping ended it."""
    hp = run.cfg.training.hyperparameters
    while run.state.epoch < hp.num_epochs:
        epoch = run.state.epoch + 1
        seed_epoch(run, epoch)
        start = time.perf_counter()
        with epoch_progress(epoch, hp.num_epochs, enabled=progress) as bar:
            row = train_one_epoch(
                run.model,
                run.criterion,
                run.optimizer,
                run.scheduler,
                run.scaler,
                run.train_loader,
                run.precision,
                hp,
                run.state,
                bar,
                ema=run.ema,
            )
        row = distributed.reduce_epoch_row(row)
        run.state.epoch = epoch
        improved = False
        if epoch % hp.val_every == 0 or epoch == hp.num_epochs:
            row.update(validate(run, epoch))
            improved = row["val/miou"] > run.best["miou"]
            if improved:
                run.best.update(miou=row["val/miou"], epoch=epoch, bad_validations=0)
            else:
                run.best["bad_validations"] += 1
        row["epoch_seconds"] = time.perf_counter() - start
        run.history.append(row)
        run.trackers.log_metrics(row, epoch)
        checkpoint(run, "last.pt", extra)
        if improved:
            checkpoint(run, "best.pt", extra)
        log.info(epoch_line(epoch, hp.num_epochs, row, improved))
        if on_epoch_end is not None:
            on_epoch_end(run, row)
        patience = hp.early_stopping_patience
        if patience is not None and run.best["bad_validations"] >= patience:
            log.info("early stopping: val mIoU has not improved for %d validations", patience)
            return True
    return False


def epoch_line(epoch: int, total: int, row: dict[str, float], improved: bool) -> str:
    """One human-readable line per epoch."""
    text = (
        f"epoch {epoch}/{total}  loss {row['train/loss']:.4f}  lr {row['train/lr']:.2e}  "
        f"{row['train/images_per_s']:.1f} img/s"
    )
    if "val/miou" in row:
        text += f"  val mIoU {row['val/miou']:.4f}{' (best)' if improved else ''}"
    return text
