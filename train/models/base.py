"""SegModel: the one interface the training loop, evaluation and export use for every architecture."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from prodseg.config import ModelConfig
from prodseg.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def class_count(cfg: ModelConfig) -> int:
    """cfg.num_classes, which prodseg-train fills in from the dataset; ConfigError when still unset."""
    if cfg.num_classes is None:
        raise ConfigError(
            "model.num_classes: not set; prodseg-train takes it from the dataset's "
            "classes.yaml, anything that builds a model without a dataset must set it"
        )
    return cfg.num_classes


class SegModel(nn.Module):
    """A segmentation network plus what the loop needs to train, score and export it.

    Subclasses set the attributes in `__init__` and implement the four methods; `num_classes` counts
    semantic classes including background, for every architecture.
    """

    arch: str
    num_classes: int
    output_kind: str  # "semantic_logits" | "yolo_seg"
    needs_instances: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "resize"

    def forward(self, images: Tensor) -> Any:
        """Raw network outputs for a (B,3,H,W) normalised batch."""
        raise NotImplementedError

    def compute_loss(
        self, outputs: Any, batch: dict[str, Tensor], criterion: nn.Module | None
    ) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The scalar training loss and its named parts for logging: detached 0-d tensors (read on the host
        only at log points, so a step does not wait for the GPU) or floats."""
        raise NotImplementedError

    def predict_semantic(self, outputs: Any, size: tuple[int, int]) -> Tensor:
        """A (B,H,W) int64 label map at `size` (0 = background)."""
        raise NotImplementedError

    def export_module(self) -> nn.Module:
        """An eval-mode module whose forward(x) returns exactly what goes into the ONNX graph."""
        raise NotImplementedError

    def encoder(self) -> nn.Module:
        """The part that pretrained weights and gradient checkpointing apply to."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Convenience: forward + predict_semantic at the input's size."""
        height, width = images.shape[-2:]
        return self.predict_semantic(self(images), (int(height), int(width)))
