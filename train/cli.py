"""`prodseg-train`: map its options onto config overrides and call `fit`."""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

import click

from prodseg.cli import OneLineUsage, handle_errors, setup_logging
from prodseg.config import Config, apply_overrides, config_from_dict, load_config
from prodseg.errors import ConfigError

log = logging.getLogger("prodseg.train")

# Settings a resumed run is expected to change (or that do not shape the training), not worth a warning.
RESUME_MAY_CHANGE = (
    "training.hyperparameters.num_epochs",
    "logging.",
    "data.num_workers",
    "training.device",
    "search",
)

# CLI option -> dotted config key.
OPTION_KEYS: dict[str, str] = {
    "arch": "model.architecture",
    "backbone": "model.backbone",
    "weights": "model.weights",
    "pretrained": "model.pretrained",
    "epochs": "training.hyperparameters.num_epochs",
    "batch_size": "training.hyperparameters.batch_size",
    "learning_rate": "training.hyperparameters.learning_rate",
    "weight_decay": "training.hyperparameters.weight_decay",
    "accumulate_grad_batches": "training.hyperparameters.accumulate_grad_batches",
    "amp": "training.hyperparameters.amp",
    "seed": "training.hyperparameters.seed",
    "optimizer": "training.optimizer.type",
    "augmentation_strength": "training.augmentation.strength",
    "device": "training.device",
    "sync_bn": "training.sync_batchnorm",
    "batch_memory_fraction": "training.batch_memory_fraction",
    "strategy": "training.distributed.strategy",
    "bucket_by_aspect": "data.bucket_by_aspect",
    "data": "data.root",
    "workers": "data.num_workers",
    "out": "logging.out_dir",
    "image_size": "data.image_size",
}


def shipped_configs() -> list[str]:
    """Names of the configs shipped in prodseg.train.configs."""
    return sorted(
        p.name[:-5] for p in resources.files("prodseg.train.configs").iterdir() if p.name.endswith(".yaml")
    )


def resolve_config_path(name: str) -> Path:
    """A path to a YAML file, or the name of a shipped config (`fast_cpu`, `unet`, ...)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = resources.files("prodseg.train.configs") / f"{name.removesuffix('.yaml')}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    raise ConfigError(
        f"--config {name}: no such file and no shipped config of that name; "
        f"shipped: {', '.join(shipped_configs())}"
    )


def build_config(config: str | None, resume: str | None, options: dict[str, Any]) -> Config:
    """The run's Config: --config (or the resumed checkpoint's own config), then the CLI overrides."""
    # Values go through the config's own validation, exactly as the same keys in a YAML file do.
    overrides = {OPTION_KEYS[k]: v for k, v in options.items() if k in OPTION_KEYS}
    if options.get("batch_size") is not None:  # a number or `auto`: click hands over the text
        overrides[OPTION_KEYS["batch_size"]] = batch_size_value(options["batch_size"])
    if resume and not config:
        from prodseg.train.checkpoint import load_checkpoint

        cfg = config_from_dict(load_checkpoint(resume)["config"], source=f"{resume} (stored config)")
    else:
        cfg = load_config(resolve_config_path(config) if config else None)
    overrides |= switch_class_count(cfg, options.get("arch"))
    overrides |= keep_effective_batch(cfg, options.get("batch_size"))
    cfg = apply_overrides(cfg, overrides, "command line")
    if resume and config:
        warn_resume_drift(resume, cfg)
    return cfg


def warn_resume_drift(resume: str, cfg: Config) -> list[str]:
    """--resume with --config: say which settings differ from the checkpoint's (the new values apply)."""
    from prodseg.train.checkpoint import load_checkpoint
    from prodseg.train.tracking import flatten

    stored = flatten(config_from_dict(load_checkpoint(resume)["config"], source=str(resume)).to_dict())
    now = flatten(cfg.to_dict())
    changed = [k for k in now if not k.startswith(RESUME_MAY_CHANGE) and stored.get(k) != now[k]]
    if changed:
        shown = ", ".join(f"{k} {stored.get(k)!r} -> {now[k]!r}" for k in changed[:6])
        more = " ..." if len(changed) > 6 else ""
        log.warning(
            "--resume %s with --config: %d setting(s) differ from the checkpoint's and the new "
            "values apply: %s%s",
            resume,
            len(changed),
            shown,
            more,
        )
    return changed


def batch_size_value(text: str | int) -> int | str:
    """--batch-size's text: a whole number as an int, anything else as given (the config checks it)."""
    if isinstance(text, int):
        return text
    return int(text) if re.fullmatch(r"\s*[+-]?\d{1,12}\s*", text) else text


def keep_effective_batch(cfg: Config, batch_size: str | None) -> dict[str, Any]:
    """--batch-size auto over a config with a number: that config's images per optimizer step stay the
    target, reached through accumulation when fewer fit (unless it names effective_batch_size itself)."""
    hp = cfg.training.hyperparameters
    if str(batch_size).strip().lower() != "auto" or hp.batch_size == "auto" or hp.effective_batch_size:
        return {}
    return {"training.hyperparameters.effective_batch_size": int(hp.batch_size) * hp.accumulate_grad_batches}


def switch_class_count(cfg: Config, arch: str | None) -> dict[str, Any]:
    """--arch across the YOLO boundary: yolov8_seg counts classes without background, the others with it."""
    if (
        arch is None
        or cfg.model.num_classes is None
        or (arch == "yolov8_seg") == (cfg.model.architecture == "yolov8_seg")
    ):
        return {}
    return {"model.num_classes": cfg.model.num_classes + (-1 if arch == "yolov8_seg" else 1)}


@click.command(cls=OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", help="YAML config path or a shipped config name (fast_cpu, deeplabv3plus, unet, yolov8_seg)."
)
@click.option("--arch", type=click.Choice(["deeplabv3plus", "unet", "yolov8_seg"]), help="Architecture.")
@click.option("--backbone", help="Encoder, e.g. resnet50, mobilenet_v2, efficientnet-b0.")
@click.option("--resume", type=click.Path(dir_okay=False), help="Continue from a last.pt (same run folder).")
@click.option("--epochs", type=int, help="Number of epochs (total, also when resuming).")
@click.option(
    "--batch-size",
    help="Images per step (the global batch under torchrun), or auto: the largest "
    "batch that fits the memory, keeping the config's effective batch through accumulation.",
)
@click.option(
    "--batch-memory-fraction",
    type=float,
    help="With --batch-size auto: the share of the free memory a step may use (default 0.8).",
)
@click.option("--learning-rate", type=float)
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]))
@click.option("--weight-decay", type=float)
@click.option("--accumulate-grad-batches", type=int)
@click.option("--augmentation-strength", type=float, help="Scales every augmentation (0..2).")
@click.option("--data", help="Dataset folder (images/, masks/, classes.yaml, splits/).")
@click.option("--out", help="Folder that receives run folders (and mlflow.db).")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=None, help="Mixed precision (bf16 on CPU, fp16 on CUDA by default).")
@click.option("--seed", type=int)
@click.option("--image-size", help="Training size: SIZE or HxW (multiples of 32).")
@click.option("--workers", type=int, help="DataLoader worker processes.")
@click.option("--weights", help="Initial weights: a state dict, .safetensors, checkpoint or ultralytics .pt.")
@click.option(
    "--pretrained/--no-pretrained",
    default=None,
    help="Start from ImageNet encoder / COCO YOLO weights (library cache; downloaded if missing).",
)
@click.option("--register", help="Register best.pt in the MLflow model registry under this name.")
@click.option(
    "--distributed",
    is_flag=True,
    help="Require a torchrun launch (DDP); without it, torchrun launches are still detected.",
)
@click.option("--sync-bn/--no-sync-bn", default=None, help="SyncBatchNorm under torchrun (CUDA only).")
@click.option(
    "--strategy",
    type=click.Choice(["ddp", "fsdp"]),
    help="Under torchrun: ddp (a model copy per process) or fsdp (parameters sharded over them).",
)
@click.option(
    "--bucket-by-aspect/--no-bucket-by-aspect",
    default=None,
    help="Batch images of similar aspect ratio at their own shape (mixed image sizes).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def main(
    config: str | None,
    resume: str | None,
    register: str | None,
    distributed: bool,
    no_progress: bool,
    verbose: bool,
    **options: Any,
) -> None:
    """Train a shelf segmentation model; prints the run folder, per-epoch val mIoU and the best."""
    setup_logging(verbose)
    from prodseg.train import distributed as dist  # torch is imported only once the options are valid
    from prodseg.train.engine import resolve_device
    from prodseg.train.fit import fit

    cfg = build_config(config, resume, options)
    world = dist.init(resolve_device(cfg.training.device).type, required=distributed)
    try:
        result = fit(cfg, resume=resume, register=register, progress=not no_progress)
    except BaseException:
        dist.shutdown(barrier=False)  # the other ranks may be inside a collective: no barrier to meet
        raise
    dist.shutdown()
    if not world.is_main:
        return
    click.echo(f"run folder: {result.run_dir}")
    if result.untrained_miou is not None:
        click.echo(f"untrained val mIoU: {result.untrained_miou:.4f}")
    click.echo(
        f"best val mIoU: {result.best_miou:.4f} (epoch {result.best_epoch}) -> {result.run_dir / 'best.pt'}"
    )
    if result.registered:
        click.echo(f"registered model version: {result.registered}")
