"""Model registry: `build_model(cfg.model)` -> SegModel for deeplabv3plus, unet and yolov8_seg."""

from __future__ import annotations

from collections.abc import Callable

from prodseg.config import ModelConfig
from prodseg.errors import ConfigError
from prodseg.train.models.base import SegModel, class_count
from prodseg.train.models.smp_models import build_deeplabv3plus, build_unet


def _build_yolov8_seg(cfg: ModelConfig) -> SegModel:
    from prodseg.train.models.yolo import build_yolov8_seg  # ultralytics is heavy: import on demand

    return build_yolov8_seg(cfg)


MODELS: dict[str, Callable[[ModelConfig], SegModel]] = {
    "deeplabv3plus": build_deeplabv3plus,
    "unet": build_unet,
    "yolov8_seg": _build_yolov8_seg,
}


def build_model(cfg: ModelConfig) -> SegModel:
    """Build the SegModel named by `cfg.architecture` (random init unless weights are requested)."""
    try:
        factory = MODELS[cfg.architecture]
    except KeyError:
        raise ConfigError(
            f"model.architecture: unknown architecture {cfg.architecture!r}; "
            f"choose one of {', '.join(MODELS)}"
        ) from None
    class_count(cfg)  # refuses an unset count before any library builds anything
    return factory(cfg)


__all__ = ["MODELS", "SegModel", "build_model"]
