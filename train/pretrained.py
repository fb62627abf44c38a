"""Pretrained weights from local files only: `--weights PATH` or an existing cache entry; never a download.

Requests: `model.weights: PATH` (a state dict, .safetensors, or a prodseg checkpoint), or
`model.pretrained: true` / `model.encoder_weights: imagenet` (smp encoders: the Hugging Face cache entry
smp 0.6 would download, `<HF_HUB_CACHE>/models--smp-hub--<encoder>.<tag>/snapshots/<rev>/model.safetensors`;
YOLOv8-seg: `yolov8<size>-seg.pt` in ultralytics' weights_dir or the working directory).
When the file is missing, a ConfigError names both remedies before any training starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prodseg.config import ModelConfig
from prodseg.errors import ConfigError
from prodseg.train.ultralytics_pt import is_ultralytics_checkpoint, load_allowlisted, ultralytics_checkpoint

log = logging.getLogger(__name__)
STATE_KEYS = ("model", "state_dict", "model_state", "model_state_dict")


def pretrained_tag(cfg: ModelConfig) -> str | None:
    """The requested cache weights tag ('imagenet', 'ssl', ...), or None for random init."""
    if cfg.encoder_weights and cfg.encoder_weights.lower() not in ("none", "null", ""):
        return cfg.encoder_weights
    return "imagenet" if cfg.pretrained else None


def apply_pretrained(model: nn.Module, cfg: ModelConfig) -> str | None:
    """Load the requested local weights into `model`; return their path (None: random init)."""
    if cfg.weights:
        path = Path(cfg.weights)
        load_weights_file(model, path)
        return str(path)
    tag = pretrained_tag(cfg)
    if tag is None:
        return None
    path = CACHE_LOOKUPS[cfg.architecture](cfg, tag)
    load_weights_file(model, path)
    return str(path)


def smp_cache_path(cfg: ModelConfig, tag: str) -> Path:
    """The smp encoder weights in the local Hugging Face cache, or a ConfigError with both remedies."""
    import segmentation_models_pytorch as smp
    from huggingface_hub import constants, try_to_load_from_cache

    name = cfg.encoder_name or cfg.backbone if cfg.architecture == "unet" else cfg.backbone
    entry = smp.encoders.encoders.get(name)
    if entry is None:
        raise ConfigError(
            f"model: pretrained weights for encoder {name!r} can only come from --weights PATH "
            "(no smp cache entry exists for it)"
        )
    settings = entry["pretrained_settings"]
    if tag not in settings:
        raise ConfigError(f"model.encoder_weights: {tag!r} is not available for {name}; "
                          f"choose one of {', '.join(settings)} or pass --weights PATH")
    repo, rev = settings[tag]["repo_id"], settings[tag]["revision"]
    found = try_to_load_from_cache(repo, "model.safetensors", revision=rev)
    if isinstance(found, str):
        return Path(found)
    expected = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / rev
    raise ConfigError(
        f"model: {tag} weights for encoder {name!r} are not in the local cache and prodseg never downloads; "
        f"either pass --weights PATH (a state dict or prodseg checkpoint) or put the file at "
        f"{expected / 'model.safetensors'} (e.g. `huggingface-cli download {repo} --revision {rev}` "
        "on a machine with network, then copy the cache)"
    )


def yolo_cache_path(cfg: ModelConfig, tag: str) -> Path:
    """`yolov8<size>-seg.pt` from ultralytics' weights_dir or the working directory."""
    from ultralytics.utils import SETTINGS

    name = f"yolov8{cfg.model_size}-seg.pt"
    places = [Path(SETTINGS.get("weights_dir", "weights")) / name, Path.cwd() / name]
    for place in places:
        if place.is_file():
            return place
    raise ConfigError(
        f"model: pretrained YOLOv8{cfg.model_size}-seg weights are not available locally and prodseg never "
        f"downloads; either pass --weights PATH (a state dict or prodseg checkpoint) or put {name} at "
        f"{places[0]} (or {places[1]})"
    )


CACHE_LOOKUPS = {"deeplabv3plus": smp_cache_path, "unet": smp_cache_path, "yolov8_seg": yolo_cache_path}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, a state dict, a prodseg checkpoint or an ultralytics .pt.

    Nothing in the file is executed: see prodseg.train.ultralytics_pt for what may be unpickled.
    """
    if not path.is_file():
        raise ConfigError(f"model.weights: {path} does not exist; pass an existing weights file to --weights")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    obj: Any = load_allowlisted(path)
    if is_ultralytics_checkpoint(obj):
        return ultralytics_checkpoint(obj, path).state_dict
    for key in STATE_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"model.weights: {path} holds no state dict (tensors by name); "
                          "pass a torch state dict, a .safetensors file or a prodseg checkpoint")
    return obj


def load_weights_file(model: nn.Module, path: Path) -> int:
    """Load matching tensors into `model`, its inner network or its encoder (whichever fits best)."""
    state = read_state_dict(path)
    best_target, best = model, {}
    for target in _targets(model):
        own = target.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if len(fits) > len(best):
            best_target, best = target, fits
    if not best:
        raise ConfigError(
            f"model.weights: no tensor in {path} matches {getattr(model, 'arch', 'the model')} "
            f"(checked {len(state)} tensors); is it a checkpoint of another architecture or backbone?"
        )
    best_target.load_state_dict(best, strict=False)
    skipped = len(state) - len(best)
    log.info("loaded %d tensors from %s (%d skipped: other shapes or names)", len(best), path, skipped)
    return len(best)


def _targets(model: nn.Module) -> list[nn.Module]:
    targets = [model]
    for name in ("net",):
        inner = getattr(model, name, None)
        if isinstance(inner, nn.Module):
            targets.append(inner)
    encoder = getattr(model, "encoder", None)
    if callable(encoder):
        targets.append(encoder())
    return targets
