"""Typed, validated training config (YAML sections model / training / data / logging).

    model:            architecture and its options
    training:
      hyperparameters, optimizer, scheduler, augmentation, loss
    data:             dataset folder, image size, splits, loader
    logging:          output folder, TensorBoard / MLflow switches

Every section is a dataclass; `load_config` checks each key and value and names the offending key
(with the allowed values) in a ConfigError. CLI options override values via `apply_overrides`, which
re-validates the whole config: a value is accepted or refused the same way from YAML and from the
command line. A field's rules live in its metadata (`choice`, `bounded`, `rule`): allowed choices,
numeric bounds (applied to every number of a list or mapping), list length, a normaliser and a check.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from prodseg.errors import ConfigError

ARCHITECTURES = ("deeplabv3plus", "unet", "yolov8_seg")
LOSS_NAMES = ("ce", "focal", "dice")  # the keys of prodseg.train.losses.LOSSES
# Integers beyond this are no meaningful count or size here, and overflow int32 tensors and C APIs.
INT_LIMIT = 2**31 - 1
SEED_LIMIT = 2**32 - 1  # numpy's seed range
SIZE_MULTIPLE = 32  # the encoders downsample by 32
MAX_IMAGE_SIDE = 8192


@dataclass(frozen=True)
class Bounds:
    """Numeric bounds; `lo_open`/`hi_open` make a bound exclusive."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def allows(self, value: float) -> bool:
        lo_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        hi_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return lo_ok and hi_ok

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None and not (self.lo_open or self.hi_open):
            return f"{self.lo} .. {self.hi}"
        parts = [f"{'>' if self.lo_open else '>='} {self.lo}"] if self.lo is not None else []
        parts += [f"{'<' if self.hi_open else '<='} {self.hi}"] if self.hi is not None else []
        return " and ".join(parts)


def _field(default: Any, **meta: Any) -> Any:
    if isinstance(default, list | dict):
        meta.setdefault("example", default)
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def choice(default: Any, choices: tuple) -> Any:
    """A dataclass field whose value must be one of `choices`."""
    return _field(default, choices=choices)


def bounded(
    default: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    **meta: Any,
) -> Any:
    """A numeric field (or list/mapping of numbers) within [lo, hi]; `above`/`below` are exclusive bounds."""
    bounds = Bounds(
        lo if above is None else above, hi if below is None else below, above is not None, below is not None
    )
    return _field(default, bounds=bounds, **meta)


def rule(default: Any, check: Callable[[Any], str | None], **meta: Any) -> Any:
    """A field whose value `check` accepts (it returns None) or refuses (it returns what is allowed)."""
    return _field(default, check=check, **meta)


# --- checks shared by several fields; each returns None (fine) or a sentence saying what is allowed ---


def _not_empty(value: str | None) -> str | None:
    return "give a non-empty string" if value is not None and not value.strip() else None


def _ascending(value: list[float]) -> str | None:
    return None if value == sorted(value) else f"give [low, high] with low <= high, e.g. {sorted(value)}"


def _multiple_of_32(value: list[int]) -> str | None:
    if all(v % SIZE_MULTIPLE == 0 for v in value):
        return None
    near = [max(SIZE_MULTIPLE, round(v / SIZE_MULTIPLE) * SIZE_MULTIPLE) for v in value]
    return f"height and width must be multiples of {SIZE_MULTIPLE}, e.g. {near}"


def device_problem(value: str) -> str | None:
    """None for a device name prodseg accepts, else what is allowed."""
    return None if re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", value) else "choose auto, cpu, cuda or cuda:N"


def split_problem(value: str) -> str | None:
    """None for a usable split name, else what is allowed."""
    # A split names splits/<name>.txt inside the dataset folder: no path separators, no '..'.
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value) and ".." not in value:
        return None
    return "give a split name such as train, val, test or all (letters, digits, _ . -)"


def _some_positive(value: list[float] | None) -> str | None:
    if value is None or any(v > 0 for v in value):
        return None
    return "at least one weight must be > 0"


def loss_problem(spec: dict[str, float]) -> str | None:
    """What is wrong with a `training.loss` mapping (unknown names, no positive weight), or None."""
    unknown = sorted(set(spec) - set(LOSS_NAMES))
    if unknown:
        return f"unknown loss {unknown[0]!r}; choose from {', '.join(LOSS_NAMES)}"
    if not any(w > 0 for w in spec.values()) or any(w < 0 for w in spec.values()):
        return "needs at least one positive weight and none negative, e.g. {ce: 1.0, dice: 0.5}"
    return None


def _batch_size(value: Any) -> Any:
    """`auto` in any case; anything else as it is (a number must be a YAML int, as everywhere)."""
    return "auto" if isinstance(value, str) and value.strip().lower() == "auto" else value


def _image_size(value: Any) -> Any:
    """One size for a square (an int or '128'), 'HxW' / 'H,W' text, or [height, width] as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    if isinstance(value, str):
        try:
            parts = [int(p) for p in value.lower().replace("x", ",").split(",")]
        except ValueError:
            raise ValueError("give SIZE or HxW, e.g. 128 or 96x128") from None
        return parts * 2 if len(parts) == 1 else parts
    return value


@dataclass
class ModelConfig:
    architecture: str = choice("deeplabv3plus", ARCHITECTURES)
    # None: the dataset's classes.yaml decides (prodseg-train fills it in; checkpoints store the number)
    num_classes: int | None = bounded(None, 1, 254)
    # DeepLabV3+ (segmentation-models-pytorch)
    backbone: str = rule("mobilenet_v2", _not_empty)
    output_stride: int = choice(16, (8, 16))
    aspp_dilate: list[int] = bounded([12, 24, 36], 1, 1024, length=(3, 3))
    pretrained: bool = False
    # UNet (segmentation-models-pytorch); encoder_name falls back to backbone when unset
    encoder_name: str | None = rule(None, _not_empty)
    encoder_weights: str | None = None
    decoder_channels: list[int] = bounded([256, 128, 64, 32, 16], 1, 4096, length=(3, 5))
    # YOLOv8-seg (ultralytics); num_classes there excludes background
    model_size: str = choice("n", ("n", "s", "m", "l", "x"))
    confidence_threshold: float = bounded(0.25, 0.0, 1.0)
    iou_threshold: float = bounded(0.45, 0.0, 1.0)
    weights: str | None = rule(None, _not_empty)  # a local weights file (see prodseg.train.pretrained)
    gradient_checkpointing: bool = False


@dataclass
class HyperParameters:
    # An int, or `auto`: the largest batch that fits training.batch_memory_fraction of the memory.
    batch_size: int | Literal["auto"] = bounded(8, 1, normalize=_batch_size)
    # With batch_size auto: images per optimizer step, kept through accumulation (null: what fits).
    effective_batch_size: int | None = bounded(None, 1)
    learning_rate: float = bounded(1e-3, above=0.0)
    num_epochs: int = bounded(10, 1)
    weight_decay: float = bounded(1e-4, 0.0)
    accumulate_grad_batches: int = bounded(1, 1)
    # 0 or null = no clipping; a negative norm would make clip_grad_norm_ reverse every gradient.
    # yolov8_seg: the norm of the gradient of ultralytics' loss, which sums over the images of a step
    # (prodseg logs and backpropagates the per-image mean, so its gradient is clipped at norm / images).
    grad_clip_norm: float | None = bounded(None, 0.0)
    amp: bool = True
    amp_dtype: str = choice("auto", ("auto", "fp16", "bf16"))
    val_every: int = bounded(1, 1)
    early_stopping_patience: int | None = bounded(None, 1)
    seed: int = bounded(0, 0, SEED_LIMIT)
    # Before each validation, re-estimate BatchNorm statistics on this many training batches (0 = off):
    # after few steps from random init the running averages lag the weights and eval collapses.
    precise_bn_batches: int = bounded(0, 0)


@dataclass
class OptimizerConfig:
    type: str = choice("adamw", ("adam", "adamw", "sgd"))
    betas: list[float] = bounded([0.9, 0.999], 0.0, below=1.0, length=(2, 2))
    momentum: float = bounded(0.9, 0.0, 1.0)
    nesterov: bool = False
    # false: like ultralytics, BatchNorm weights and all biases get no weight decay (their own groups)
    decay_bias_and_norm: bool = True


@dataclass
class SchedulerConfig:
    type: str = choice("cosine", ("cosine", "step", "exponential", "constant"))
    warmup_epochs: float = bounded(0, 0)
    min_lr: float = bounded(1e-6, 0.0)
    step_size: int = bounded(10, 1)
    gamma: float = bounded(0.1, 0.0, 1.0)
    # Biases start the warmup at this LR and fall linearly to the schedule's (ultralytics: 0.1); null = off
    warmup_bias_lr: float | None = bounded(None, 0.0)


@dataclass
class EmaConfig:
    """An exponential moving average of the weights (ultralytics' ModelEMA): validated, saved, deployed."""

    # null: on for yolov8_seg (as ultralytics' trainer always does), off for the semantic models
    enabled: bool | None = None
    # per optimizer step: ema = d * ema + (1 - d) * weights, d = decay * (1 - exp(-updates / tau))
    decay: float = bounded(0.9999, above=0.0, below=1.0)
    tau: float = bounded(2000.0, above=0.0)


@dataclass
class AugmentationConfig:
    horizontal_flip: float = bounded(0.5, 0.0, 1.0)
    vertical_flip: float = bounded(0.0, 0.0, 1.0)
    rotation: float = bounded(0.0, 0.0, 180.0)
    brightness: float = bounded(0.2, 0.0, 1.0)
    contrast: float = bounded(0.2, 0.0, 1.0)
    saturation: float = bounded(0.2, 0.0, 1.0)
    hue: float = bounded(0.05, 0.0, 0.5)
    scale: list[float] = bounded([0.75, 1.25], above=0.0, hi=4.0, length=(2, 2), check=_ascending)
    # Multiplies every probability and magnitude above (--augmentation-strength).
    strength: float = bounded(1.0, 0.0, 2.0)


@dataclass
class DistributedConfig:
    # Under torchrun: ddp replicates the model on every process, fsdp shards parameters, gradients and
    # optimizer state over them (for models that do not fit one device).
    strategy: str = choice("ddp", ("ddp", "fsdp"))


@dataclass
class TrainingConfig:
    hyperparameters: HyperParameters = field(default_factory=HyperParameters)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    # Loss terms and their weights, e.g. {ce: 1.0, dice: 0.5}; names: ce, focal, dice.
    loss: dict[str, float] = bounded({"ce": 1.0}, 0.0, check=loss_problem)
    class_weights: list[float] | None = bounded(None, 0.0, check=_some_positive)
    focal_gamma: float = bounded(2.0, 0.0)
    focal_alpha: float | None = bounded(None, 0.0, 1.0)
    device: str = rule("auto", device_problem)  # auto (CUDA when available) | cpu | cuda | cuda:N
    # Under torchrun: convert BatchNorm to SyncBatchNorm so statistics cover the global batch.
    sync_batchnorm: bool = False
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    # batch_size auto: the share of the free device memory (RAM on CPU) a training step may use.
    batch_memory_fraction: float = bounded(0.8, above=0.0, hi=1.0)
    ema: EmaConfig = field(default_factory=EmaConfig)


@dataclass
class DataConfig:
    root: str = rule("data/shelves", _not_empty)
    # [height, width]; one size (128 or '128') means a square, 'HxW' text is read too.
    image_size: list[int] = bounded(
        [256, 256], SIZE_MULTIPLE, MAX_IMAGE_SIDE, length=(2, 2), normalize=_image_size, check=_multiple_of_32
    )
    train_split: str = rule("train", split_problem)
    val_split: str = rule("val", split_problem)
    num_workers: int = bounded(2, 0, 256)
    cache: bool = False
    # Batch images of similar aspect ratio at a shape of about image_size's area (mixed-size datasets).
    bucket_by_aspect: bool = False


@dataclass
class LoggingConfig:
    out_dir: str = rule("runs/train", _not_empty)
    tensorboard: bool = True
    mlflow: bool = True
    experiment: str = rule("prodseg", _not_empty)
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


def _scale_with_strength(cfg: Config) -> str | None:
    aug = cfg.training.augmentation
    low = 1 + (aug.scale[0] - 1) * aug.strength  # what data.augment hands to the affine transform
    if low > 0:
        return None
    return (
        f"training.augmentation.scale: {aug.scale} with strength {aug.strength} gives a zoom of {low:g}; "
        "keep 1 + (low - 1) * strength > 0 (raise the low scale or lower the strength)"
    )


# Rules that span several keys: each returns None or the whole message (naming the keys).
CROSS_CHECKS: tuple[Callable[[Config], str | None], ...] = (_scale_with_strength,)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config (or the defaults), validate it, then apply dotted-key overrides."""
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        raw = read_yaml(path)
    cfg = config_from_dict(raw, source)
    return apply_overrides(cfg, overrides or {}, source)


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file; ConfigError names the file and what is wrong."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass an existing YAML to --config")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); pass a YAML config to --config") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror}); check its permissions") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML ({why})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with model/training/data keys")
    return raw


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain dict (a YAML file's, or a checkpoint's stored config) into a Config."""
    cfg = from_dict(Config, raw, "", source)
    for check in CROSS_CHECKS:
        problem = check(cfg)
        if problem:
            raise ConfigError(f"{source}: {problem}")
    return cfg


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
        *parents, leaf = str(dotted).split(".")
        for i, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                raise ConfigError(
                    f"{source}: unknown key '{'.'.join(parents[: i + 1])}' in override "
                    f"'{dotted}'; allowed keys there: {', '.join(sorted(node))}"
                )
            node = node[key]
        if leaf not in node and not is_mapping_field(parents):
            allowed = ", ".join(sorted(node))
            raise ConfigError(f"{source}: unknown key '{dotted}'; allowed keys there: {allowed}")
        node[leaf] = copy.deepcopy(value)
    return config_from_dict(raw, source)


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
    unknown = sorted((k for k in raw if k not in known), key=str)
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
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key, source)
    if "normalize" in meta:
        try:
            value = meta["normalize"](value)
        except ValueError as exc:
            raise ConfigError(f"{source}: {key}: {show(value)} is not allowed; {exc}") from None
    value = _coerce(hint, value, key, source)
    if value is None:
        return None
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{source}: {key}: {show(value)} is not allowed; choose one of {', '.join(map(str, choices))}"
        )
    _check_length(value, key, source, meta)
    _check_bounds(value, key, source, meta.get("bounds"))
    problem = meta["check"](value) if "check" in meta else None
    if problem:
        raise ConfigError(f"{source}: {key}: {show(value)} is not allowed; {problem}")
    return value


def _check_length(value: Any, key: str, source: str, meta: Any) -> None:
    if "length" not in meta:
        return
    lo, hi = meta["length"]
    if not lo <= len(value) <= hi:
        count = str(lo) if lo == hi else f"{lo} to {hi}"
        raise ConfigError(
            f"{source}: {key}: {show(value)} has {len(value)} value(s); give {count}, e.g. {meta['example']}"
        )


def _numbers(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, number) for a number, or for every number inside a list or mapping."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{key}.{k}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield key, value


def _check_bounds(value: Any, key: str, source: str, bounds: Bounds | None) -> None:
    if bounds is None:  # a free-form field (the search block): its numbers are its owner's to check
        return
    for where, number in _numbers(value, key):
        allowed = bounds
        if isinstance(number, int) and allowed.hi is None:
            allowed = dataclasses.replace(allowed, hi=INT_LIMIT)
        if isinstance(number, int) and allowed.lo is None:
            allowed = dataclasses.replace(allowed, lo=-INT_LIMIT)
        if not allowed.allows(number):
            raise ConfigError(f"{source}: {where}: {show(number)} is out of range ({allowed})")


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    """Check `value` against a type hint, accepting ints for floats and strings like '1e-6' for numbers."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        allowed = [a for a in args if a is not type(None)]
        for arg in allowed:
            try:
                return _coerce(arg, value, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(allowed) > 1:  # e.g. int or 'auto': name every allowed type
            names = " or ".join(type_name(a) for a in allowed)
            raise ConfigError(f"{source}: {key}: expected {names}, got {show(value)}")
        raise ConfigError(errors[0])
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{source}: {key}: expected {type_name(hint)}, got {show(value)}")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key}: expected a list, got {show(value)}")
        return [_coerce(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {show(value)}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if hint is Any:
        return value
    scalar = SCALARS.get(hint)
    if scalar is not None:
        coerced = scalar(value)
        if coerced is not None:
            return coerced
    raise ConfigError(f"{source}: {key}: expected {type_name(hint)}, got {show(value)}")


def type_name(hint: Any) -> str:
    """How a message names a type: `int`, `'auto'` for a Literal, the float/str wording of TYPE_NAMES."""
    if typing.get_origin(hint) is Literal:
        return " or ".join(map(repr, typing.get_args(hint)))
    return str(TYPE_NAMES.get(hint, getattr(hint, "__name__", hint)))


def show(value: Any, limit: int = 60) -> str:
    """`repr(value)` on one line, shortened for a message."""
    try:
        text = " ".join(repr(value).split())
    except ValueError:  # an integer with more digits than Python converts to text
        text = "<a number too large to print>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _to_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _to_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _to_float(value: Any) -> float | None:
    """A finite float from a number or numeric text (YAML 1.1 reads `1e-6` as a string); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _to_str(value: Any) -> str | None:
    # A NUL byte cannot be part of a path or name and would crash the first filesystem call.
    return value if isinstance(value, str) and "\0" not in value else None


SCALARS: dict[type, Callable[[Any], Any]] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}
TYPE_NAMES = {float: "float (a finite number)", str: "str (text without NUL bytes)"}
