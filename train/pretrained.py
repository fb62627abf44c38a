"""Pretrained weights: `--weights PATH`, or the libraries' own caches, filled by their own downloaders.

Requests: `model.weights: PATH` (a state dict, .safetensors, a prodseg or ultralytics checkpoint), or
`model.pretrained: true` / `model.encoder_weights: imagenet`:
- smp encoders: the Hugging Face cache entry smp itself uses,
  `<HF_HUB_CACHE>/models--smp-hub--<encoder>.<tag>/snapshots/<rev>/model.safetensors`, downloaded with
  `huggingface_hub.hf_hub_download` when missing (HF_ENDPOINT and HF_HUB_OFFLINE apply as usual);
- YOLOv8-seg: `yolov8<size>-seg.pt` in the working directory or ultralytics' weights_dir, downloaded
  from ultralytics' release assets with its own `safe_download` when missing, then read like any
  ultralytics .pt (never executing code from it).
With PRODSEG_OFFLINE=1 nothing is downloaded. When the file cannot be had, a ConfigError names the file
and `--weights PATH` before any training starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
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
    """Load the requested weights into `model`; return their path (None: random init)."""
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


def downloads_allowed() -> bool:
    """False when PRODSEG_OFFLINE (set by the tests and `make demo`) forbids fetching weights."""
    return os.environ.get("PRODSEG_OFFLINE", "").strip().lower() in ("", "0", "false", "no")


def _offline_remedy(what: str, expected: Path, fetch: str) -> ConfigError:
    why = "PRODSEG_OFFLINE is set" if not downloads_allowed() else "the download failed"
    return ConfigError(
        f"model: {what} are not in the local cache and {why}; either pass --weights PATH (a state dict, "
        f".safetensors or checkpoint) or put the file at {expected} ({fetch} on a machine with network)"
    )


def smp_cache_path(cfg: ModelConfig, tag: str) -> Path:
    """The smp encoder weights from the Hugging Face cache, downloaded into it (as smp does) if missing."""
    import segmentation_models_pytorch as smp
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    name = cfg.encoder_name or cfg.backbone if cfg.architecture == "unet" else cfg.backbone
    entry = smp.encoders.encoders.get(name)
    if entry is None:
        raise ConfigError(
            f"model: pretrained weights for encoder {name!r} can only come from --weights PATH "
            "(no published weights exist for it)"
        )
    settings = entry["pretrained_settings"]
    if tag not in settings:
        raise ConfigError(
            f"model.encoder_weights: {tag!r} is not available for {name}; "
            f"choose one of {', '.join(settings)} or pass --weights PATH"
        )
    repo, rev = settings[tag]["repo_id"], settings[tag]["revision"]
    found = try_to_load_from_cache(repo, "model.safetensors", revision=rev)
    if isinstance(found, str):
        return Path(found)
    expected = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / rev
    remedy = _offline_remedy(
        f"{tag} weights for encoder {name!r}",
        expected / "model.safetensors",
        f"`hf download {repo} model.safetensors --revision {rev}`",
    )
    log.info("%s weights for %s: from the Hugging Face hub (%s) into its cache", tag, name, repo)
    return _download(remedy, lambda: Path(hf_hub_download(repo, "model.safetensors", revision=rev)))


def yolo_weights_url(name: str) -> str:
    """Where ultralytics publishes `name` (its release assets); PRODSEG_YOLO_WEIGHTS_URL replaces the base."""
    import inspect

    from ultralytics.utils.downloads import GITHUB_ASSETS_REPO, attempt_download_asset

    release = inspect.signature(attempt_download_asset).parameters["release"].default
    base = (
        os.environ.get("PRODSEG_YOLO_WEIGHTS_URL")
        or f"https://github.com/{GITHUB_ASSETS_REPO}/releases/download/{release}"
    )
    return f"{base.rstrip('/')}/{name}"


def yolo_cache_path(cfg: ModelConfig, tag: str) -> Path:
    """`yolov8<size>-seg.pt` from the working folder or ultralytics' weights_dir, downloaded if missing."""
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.downloads import safe_download

    name = f"yolov8{cfg.model_size}-seg.pt"
    cache = Path(SETTINGS.get("weights_dir", "weights")) / name
    for place in (Path.cwd() / name, cache):
        if place.is_file():
            return place
    url = yolo_weights_url(name)
    remedy = _offline_remedy(f"pretrained YOLOv8{cfg.model_size}-seg weights", cache, f"download {url}")
    log.info("%s: from %s into %s", name, url, cache.parent)
    # ultralytics' downloader: progress bar, retries, a temporary name until the size is checked
    return _download(remedy, lambda: safe_download(url=url, file=cache, min_bytes=1e5, progress=True))


def _download(remedy: ConfigError, fetch: Callable[[], Path]) -> Path:
    """Run a library's downloader unless offline; any failure becomes `remedy` with the reason appended."""
    if not downloads_allowed():
        raise remedy
    try:
        path = Path(fetch())
    except Exception as exc:  # noqa: BLE001 - network, HTTP, hub and size errors all mean "not available"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConfigError(f"{remedy} [{type(exc).__name__}: {reason}]") from exc
    if not path.is_file():
        raise remedy
    return path


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
        raise ConfigError(
            f"model.weights: {path} holds no state dict (tensors by name); "
            "pass a torch state dict, a .safetensors file or a prodseg checkpoint"
        )
    return obj


def load_weights_file(model: nn.Module, path: Path) -> int:
    """Load matching tensors into `model`, its inner network or its encoder (whichever fits best)."""
    state = read_state_dict(path)
    best_target, best = model, dict[str, torch.Tensor]()
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
