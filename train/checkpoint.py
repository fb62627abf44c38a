"""Training checkpoints (`last.pt`, `best.pt`): written atomically, loadable with `weights_only=True`.

Everything stored is a tensor, number, string, list, tuple or dict, so `torch.load(weights_only=True)`
reads it without unpickling arbitrary objects; numpy's RNG state is stored as a tensor and a tuple.
"""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

import prodseg
from prodseg.atomic import atomic_path
from prodseg.config import Config, config_from_dict
from prodseg.data.taxonomy import default_colors
from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata, file_sha256
from prodseg.train.models.base import SegModel
from prodseg.train.ultralytics_pt import (
    UltralyticsCheckpoint,
    is_ultralytics_checkpoint,
    load_allowlisted,
    ultralytics_checkpoint,
)

FORMAT = "prodseg-checkpoint"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The torch, numpy, python (and CUDA) RNG states in weights_only-safe types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    assert not isinstance(keys, str)  # legacy=True always gives the MT19937 tuple
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs (e.g. resumed on fewer under torchrun): the ones here.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def build_checkpoint(
    model: torch.nn.Module,
    cfg: Config,
    class_names: list[str],
    class_colors: list[list[int]],
    ema: Any = None,
    **training_state: Any,
) -> dict[str, Any]:
    """The checkpoint dict: model weights, identity (arch, classes, config) and `training_state` as given.

    With an `ema` (prodseg.train.ema.ModelEMA), `model` holds the averaged weights (what validation
    scored and what is deployed) and `ema` the live weights and update count a resume continues from.
    """
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    weights = _cpu_state(module)
    if ema is not None:
        training_state["ema"] = ema.checkpoint_entry(weights)
        weights = _cpu_state(ema.module)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": module.arch,
        "model": weights,
        "config": cfg.to_dict(),
        "class_names": list(class_names),
        "class_colors": [list(map(int, c)) for c in class_colors],
        "prodseg_version": prodseg.__version__,
        "rng": rng_state(),
        **training_state,
    }


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> Path:
    """Write `ckpt` to `path` atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, accept_ultralytics: bool = False) -> dict[str, Any]:
    """Read a prodseg checkpoint (on the CPU) with `weights_only=True`; BadInput names a file that is not one.

    With `accept_ultralytics`, an ultralytics YOLOv8-seg `.pt` is read too (its tensors only, see
    prodseg.train.ultralytics_pt) and returned in the same shape, so every consumer runs it one way.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(
            f"{path}: checkpoint not found; pass a .pt written by prodseg-train (e.g. runs/x/best.pt)"
        )
    ckpt = load_allowlisted(path)
    if is_ultralytics_checkpoint(ckpt):
        if not accept_ultralytics:
            raise BadInput(
                f"{path}: an ultralytics checkpoint cannot be resumed; fine-tune from it with "
                "--weights PATH instead"
            )
        return _from_ultralytics(ultralytics_checkpoint(ckpt, path))
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise BadInput(
            f"{path}: not a prodseg checkpoint (no '{FORMAT}' format marker); "
            "pass a last.pt/best.pt written by prodseg-train or a YOLOv8-seg .pt saved by ultralytics"
        )
    missing = [key for key, kind in REQUIRED.items() if not isinstance(ckpt.get(key), kind)]
    if missing:
        raise BadInput(
            f"{path}: a prodseg checkpoint without valid {', '.join(missing)}; "
            "was it edited or cut short? Use a last.pt/best.pt written by prodseg-train"
        )
    return ckpt


# What every consumer of a checkpoint reads; training state (optimizer, epoch, ...) only resume needs.
REQUIRED: dict[str, type] = {"arch": str, "model": dict, "config": dict, "class_names": list}


ULTRALYTICS_YAML = re.compile(r"^yolov8([nslmx])?-seg\.ya?ml$")


def _from_ultralytics(source: UltralyticsCheckpoint) -> dict[str, Any]:
    """An ultralytics YOLOv8-seg checkpoint as a prodseg one: the same network under `net.`, its classes."""
    yaml_file = Path(str(source.yaml.get("yaml_file", ""))).name
    match = ULTRALYTICS_YAML.match(yaml_file)
    if source.task not in ("", "segment") or match is None:
        raise BadInput(
            f"{source.path}: an ultralytics {source.task or 'unknown-task'} model built from "
            f"{yaml_file or 'an unknown YAML'}; "
            "prodseg runs YOLOv8-seg checkpoints (yolov8[nsmlx]-seg); export other models to ONNX with "
            "ultralytics and pass the .onnx"
        )
    size = match.group(1) or str(source.yaml.get("scale") or "n")
    names = source.names or [f"class_{i}" for i in range(int(source.yaml.get("nc", 0)))]
    imgsz = source.train_args.get("imgsz", 640) if isinstance(source.train_args, dict) else 640
    side = int(imgsz[0] if isinstance(imgsz, list | tuple) else imgsz)
    config = {
        "model": {"architecture": "yolov8_seg", "num_classes": len(names), "model_size": size},
        "data": {"image_size": [side, side]},
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": "yolov8_seg",
        "model": {f"net.{k}": v for k, v in source.state_dict.items()},
        "config": config,
        # prodseg's YOLO label maps put background at 0, before the detector's classes
        "class_names": ["background", *names],
        "class_colors": [],
        "source_format": "ultralytics",
    }


def model_from_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[SegModel, Config, dict[str, Any]]:
    """Rebuild the SegModel stored in a checkpoint: (model in eval mode on `device`, its Config, the dict)."""
    from prodseg.train.models import build_model

    ckpt = load_checkpoint(path, accept_ultralytics=True)
    cfg = config_from_dict(ckpt["config"], source=f"{path} (stored config)")
    # The stored weights replace any init, so don't ask for the (possibly gone) pretrained files again.
    model = build_model(dataclasses.replace(cfg.model, weights=None, pretrained=False, encoder_weights=None))
    if getattr(model, "arch", ckpt["arch"]) != ckpt["arch"]:
        raise BadInput(f"checkpoint {path} names arch {ckpt['arch']!r} but its config builds {model.arch!r}")
    load_weights(model, ckpt["model"], path, ckpt["arch"])
    return model.to(device).eval(), cfg, ckpt


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, arch: str) -> None:
    """`load_state_dict(strict=True)`, turning a mismatch into a BadInput that names file and arch."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        summary = "; ".join(line.strip() for line in detail[1:3]) or detail[0]
        raise BadInput(
            f"checkpoint {path} holds a {arch} model whose weights do not match the model its config "
            f"builds ({summary[:300]}); was the file edited or written by another version?"
        ) from exc


def checkpoint_metadata(
    model: Any, cfg: Config, ckpt: dict[str, Any], path: str | Path, precision: str = "fp32"
) -> ArtifactMetadata:
    """Artifact metadata of a checkpoint's model: what prodseg-export writes and the torch runner reports."""
    names = [str(n) for n in ckpt.get("class_names") or []]
    if len(names) != model.num_classes:
        raise BadInput(
            f"{path}: lists {len(names)} class names for a {model.num_classes}-class model; "
            "re-save it with prodseg-train"
        )
    colors = [[int(c) for c in rgb] for rgb in ckpt.get("class_colors") or []]
    if len(colors) != len(names):
        colors = [list(c) for c in default_colors(len(names))]
    return ArtifactMetadata(
        arch=model.arch,
        class_names=names,
        class_colors=colors,
        input_size=[int(v) for v in cfg.data.image_size],
        mean=[float(v) for v in model.mean],
        std=[float(v) for v in model.std],
        output_kind=model.output_kind,
        precision=precision,
        source_checkpoint_sha256=file_sha256(path),
        prodseg_version=prodseg.__version__,
        resize=getattr(model, "resize", "resize"),
        confidence_threshold=float(cfg.model.confidence_threshold),
        iou_threshold=float(cfg.model.iou_threshold),
    )
