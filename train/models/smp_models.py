"""DeepLabV3+ and UNet from segmentation-models-pytorch behind the SegModel interface."""

from __future__ import annotations

import copy

import torch.nn.functional as F
from torch import Tensor, nn

from prodseg.config import ModelConfig
from prodseg.errors import ConfigError, require
from prodseg.train.models.base import IMAGENET_MEAN, IMAGENET_STD, SegModel, class_count
from prodseg.train.models.checkpointing import enable_checkpointing

SUGGESTED_BACKBONES = ("resnet18", "resnet50", "resnet101", "mobilenet_v2", "efficientnet-b0")


class SmpSegModel(SegModel):
    """An smp model (`self.net`) that outputs per-pixel class logits at the input resolution."""

    output_kind = "semantic_logits"
    needs_instances = False
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, arch: str, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.arch = arch
        self.net = net
        self.num_classes = num_classes

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def compute_loss(
        self, outputs: Tensor, batch: dict[str, Tensor], criterion: nn.Module | None
    ) -> tuple[Tensor, dict[str, Tensor | float]]:
        if criterion is None:
            raise ValueError(f"{self.arch} needs a criterion (build it with prodseg.train.losses.build_loss)")
        loss = criterion(outputs.float(), batch["mask"])
        parts = dict(getattr(criterion, "last_terms", {}) or {"loss": loss.detach()})
        return loss, parts

    def predict_semantic(self, outputs: Tensor, size: tuple[int, int]) -> Tensor:
        if tuple(outputs.shape[-2:]) != tuple(size):
            outputs = F.interpolate(outputs.float(), size=tuple(size), mode="bilinear", align_corners=False)
        return outputs.argmax(1).long()

    def export_module(self) -> nn.Module:
        return copy.deepcopy(self.net).eval()

    def encoder(self) -> nn.Module:
        return self.net.get_submodule("encoder")


def encoder_names() -> list[str]:
    """Every encoder name the installed smp accepts (plus `tu-<timm model>`)."""
    smp = require("segmentation_models_pytorch", "train", "DeepLabV3+/UNet")
    return list(smp.encoders.get_encoder_names())


def check_backbone(name: str, key: str) -> None:
    """Raise ConfigError for an encoder smp does not know, listing a few valid ones."""
    if name.startswith("tu-"):
        timm = require("timm", "train", f"the timm encoder {name}")
        if timm.is_model(name[3:]):
            return
        raise ConfigError(f"model.{key}: unknown timm encoder {name!r}; see timm.list_models() for names")
    names = encoder_names()
    if name not in names:
        raise ConfigError(
            f"model.{key}: unknown backbone {name!r}; valid ones include {', '.join(SUGGESTED_BACKBONES)} "
            f"({len(names)} smp encoders in all, e.g. {', '.join(n for n in names[:6])}, ...; "
            "or tu-<timm model>)"
        )


def build_deeplabv3plus(cfg: ModelConfig) -> SegModel:
    """DeepLabV3+ with `cfg.backbone`, output stride 8/16 and the configured ASPP atrous rates."""
    smp = require("segmentation_models_pytorch", "train", "DeepLabV3+")
    check_backbone(cfg.backbone, "backbone")  # aspp_dilate's three rates are checked by the config
    net = smp.DeepLabV3Plus(
        encoder_name=cfg.backbone,
        encoder_weights=None,
        encoder_output_stride=cfg.output_stride,
        decoder_atrous_rates=tuple(cfg.aspp_dilate),
        classes=class_count(cfg),
    )
    return _finish(SmpSegModel("deeplabv3plus", net, class_count(cfg)), cfg)


def build_unet(cfg: ModelConfig) -> SegModel:
    """UNet with `cfg.encoder_name` (falling back to `cfg.backbone`) and `cfg.decoder_channels`."""
    smp = require("segmentation_models_pytorch", "train", "UNet")
    encoder = cfg.encoder_name or cfg.backbone
    check_backbone(encoder, "encoder_name" if cfg.encoder_name else "backbone")
    depth = len(cfg.decoder_channels)  # 3 to 5, one per encoder stage (checked by the config)
    net = smp.Unet(
        encoder_name=encoder,
        encoder_depth=depth,
        encoder_weights=None,
        decoder_channels=tuple(cfg.decoder_channels),
        classes=class_count(cfg),
    )
    return _finish(SmpSegModel("unet", net, class_count(cfg)), cfg)


def _finish(model: SmpSegModel, cfg: ModelConfig) -> SegModel:
    """Apply pretrained weights and gradient checkpointing (encoder blocks only)."""
    from prodseg.train.pretrained import apply_pretrained

    apply_pretrained(model, cfg)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model.encoder())
    return model
