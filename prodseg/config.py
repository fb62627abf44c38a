"""Typed, validated training config in the seed's YAML shape.

    model:            architecture and its options
    training:
      hyperparameters, optimizer, scheduler, augmentation, loss
    data:             dataset folder, image size, splits, loader
    logging:          output folder, TensorBoard / MLflow switches

Every section is a dataclass; `load_config` checks each key and value and names the offending key
(with the allowed values) in a ConfigError. CLI options override values via `apply_overrides`.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prodseg.errors import ConfigError

ARCHITECTURES = ("deeplabv3plus", "unet", "yolov8_seg")


def choice(default: Any, choices: tuple, **kw: Any) -> Any:
    """A dataclass field whose value must be one of `choices`."""
    return field(default=default, metadata={"choices": choices}, **kw)


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A numeric dataclass field with inclusive bounds."""
    return field(default=default, metadata={"lo": lo, "hi": hi})


@dataclass
class ModelConfig:
    architecture: str = choice("deeplabv3plus", ARCHITECTURES)
    num_classes: int = bounded(10, 1, 254)
    # DeepLabV3+ (segmentation-models-pytorch)
    backbone: str = "mobilenet_v2"
    output_stride: int = choice(16, (8, 16))
    aspp_dilate: list[int] = field(default_factory=lambda: [12, 24, 36])
    pretrained: bool = False
    # UNet (segmentation-models-pytorch); encoder_name falls back to backbone when unset
    encoder_name: str | None = None
    encoder_weights: str | None = None
    decoder_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])
    # YOLOv8-seg (ultralytics); num_classes there excludes background
    model_size: str = choice("n", ("n", "s", "m", "l", "x"))
    confidence_threshold: float = bounded(0.25, 0.0, 1.0)
    iou_threshold: float = bounded(0.45, 0.0, 1.0)
    weights: str | None = None  # a local weights file (state dict or checkpoint); nothing is downloaded
    gradient_checkpointing: bool = False


@dataclass
class HyperParameters:
    batch_size: int = bounded(8, 1)
    learning_rate: float = bounded(1e-3, 0.0)
    num_epochs: int = bounded(10, 1)
    weight_decay: float = bounded(1e-4, 0.0)
    accumulate_grad_batches: int = bounded(1, 1)
    grad_clip_norm: float | None = None
    amp: bool = True
    amp_dtype: str = choice("auto", ("auto", "fp16", "bf16"))
    val_every: int = bounded(1, 1)
    early_stopping_patience: int | None = None
    seed: int = 0
    # Before each validation, re-estimate BatchNorm statistics on this many training batches (0 = off):
    # after few steps from random init the running averages lag the weights and eval collapses.
    precise_bn_batches: int = bounded(0, 0)


@dataclass
class OptimizerConfig:
    type: str = choice("adamw", ("adam", "adamw", "sgd"))
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = bounded(0.9, 0.0, 1.0)
    nesterov: bool = False


@dataclass
class SchedulerConfig:
    type: str = choice("cosine", ("cosine", "step", "exponential", "constant"))
    warmup_epochs: float = bounded(0, 0)
    min_lr: float = bounded(1e-6, 0.0)
    step_size: int = bounded(10, 1)
    gamma: float = bounded(0.1, 0.0, 1.0)


@dataclass
class AugmentationConfig:
    horizontal_flip: float = bounded(0.5, 0.0, 1.0)
    vertical_flip: float = bounded(0.0, 0.0, 1.0)
    rotation: float = bounded(0.0, 0.0, 180.0)
    brightness: float = bounded(0.2, 0.0, 1.0)
    contrast: float = bounded(0.2, 0.0, 1.0)
    saturation: float = bounded(0.2, 0.0, 1.0)
    hue: float = bounded(0.05, 0.0, 0.5)
    scale: list[float] = field(default_factory=lambda: [0.75, 1.25])
    # Multiplies every probability and magnitude above (the seed's --augmentation_strength).
    strength: float = bounded(1.0, 0.0, 2.0)


@dataclass
class TrainingConfig:
    hyperparameters: HyperParameters = field(default_factory=HyperParameters)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    # Loss terms and their weights, e.g. {ce: 1.0, dice: 0.5}; names: ce, focal, dice.
    loss: dict[str, float] = field(default_factory=lambda: {"ce": 1.0})
    class_weights: list[float] | None = None
    focal_gamma: float = bounded(2.0, 0.0)
    focal_alpha: float | None = None
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda | cuda:N
    # Under torchrun: convert BatchNorm to SyncBatchNorm so statistics cover the global batch.
    sync_batchnorm: bool = False


@dataclass
class DataConfig:
    root: str = "data/shelves"
    image_size: list[int] = field(default_factory=lambda: [256, 256])  # [height, width]
    train_split: str = "train"
    val_split: str = "val"
    num_workers: int = bounded(2, 0)
    cache: bool = False


@dataclass
class LoggingConfig:
    out_dir: str = "runs/train"
    tensorboard: bool = True
    mlflow: bool = True
    experiment: str = "prodseg"
    sample_images: int = bounded(4, 0)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # Hyperparameter search space for prodseg-tune (free-form; validated by the tuner).
    search: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config (or the defaults), validate it, then apply dotted-key overrides."""
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found; pass an existing YAML to --config")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping with model/training/data keys")
    cfg = from_dict(Config, raw, "", source)
    return apply_overrides(cfg, overrides or {}, source)


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain dict (e.g. a checkpoint's stored config) into a Config."""
    return from_dict(Config, raw, "", source)


def apply_overrides(
    cfg: Config, overrides: dict[str, Any], source: str = "config", skip_none: bool = True
) -> Config:
    """Return a copy with `a.b.c: value` overrides applied and re-validated.

    None values are skipped by default (a CLI option that was not given); with `skip_none=False` they set
    the key to null (a tuning trial's `null` choice).
    """
    raw = cfg.to_dict()
    for dotted, value in overrides.items():
        if value is None and skip_none:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for i, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"{source}: unknown key '{'.'.join(parents[:i + 1])}' in override "
                                  f"'{dotted}'; allowed keys there: {', '.join(sorted(node))}")
            node = node[key]
        if leaf not in node and not is_mapping_field(parents):
            allowed = ", ".join(sorted(node))
            raise ConfigError(f"{source}: unknown key '{dotted}'; allowed keys there: {allowed}")
        node[leaf] = copy.deepcopy(value)
    return from_dict(Config, raw, "", source)


def is_mapping_field(path: list[str]) -> bool:
    """True when `path` names a dict-valued field (e.g. training.loss), whose keys are free to add."""
    hint: Any = Config
    for key in path:
        if not dataclasses.is_dataclass(hint):
            return False
        hint = typing.get_type_hints(hint).get(key)
    return typing.get_origin(hint) is dict


def from_dict(cls: type, raw: Any, prefix: str, source: str) -> Any:
    """Build dataclass `cls` from a mapping, checking every key, type, choice and bound."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{prefix or 'top level'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"{source}: unknown key '{where}{unknown[0]}'; allowed keys there: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check_value(hints[name], value, key, source, known[name].metadata)
    return cls(**kwargs)


def _check_value(hint: Any, value: Any, key: str, source: str, meta: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key, source)
    value = _coerce(hint, value, key, source)
    choices = meta.get("choices") if meta else None
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{source}: {key}: {value!r} is not allowed; choose one of {', '.join(map(str, choices))}"
        )
    lo, hi = (meta.get("lo"), meta.get("hi")) if meta else (None, None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"{'' if lo is None else lo} .. {'' if hi is None else hi}"
            raise ConfigError(f"{source}: {key}: {value!r} is out of range ({bounds})")
    return value


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    """Check `value` against a type hint, accepting ints for floats and strings like '1e-6' for numbers."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads `1e-6` as a string
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{source}: {key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
