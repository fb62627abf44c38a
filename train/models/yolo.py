"""YOLOv8-seg (ultralytics, built offline from its YAML) behind the SegModel interface."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from prodseg.config import ModelConfig
from prodseg.errors import require
from prodseg.metrics import MAX_DET
from prodseg.train.models.base import SegModel, class_count
from prodseg.train.models.checkpointing import enable_checkpointing
from prodseg.train.models.yolo_targets import yolo_targets

PROTO_STRIDE = 4  # ultralytics' Proto upsamples the stride-8 P3 map by 2
BACKBONE_LAYERS = 10  # yolov8*-seg.yaml: layers 0-9 are the backbone (through SPPF)
BN_MOMENTUM = 0.1  # PyTorch's default, as in the smp models


class YoloSegModel(SegModel):
    """An ultralytics SegmentationModel (`self.net`) trained with `v8SegmentationLoss` in our loop."""

    output_kind = "yolo_seg"
    needs_instances = True
    mean = (0.0, 0.0, 0.0)
    std = (1.0, 1.0, 1.0)
    # training.hyperparameters.grad_clip_norm is ultralytics' (its loss sums over the images; ours averages)
    grad_clip_per_image = True

    def __init__(self, net: nn.Module, cfg: ModelConfig) -> None:
        super().__init__()
        self.arch = "yolov8_seg"
        self.net: Any = net  # ultralytics' SegmentationModel: its attributes are untyped
        self.nc = class_count(cfg)  # detection classes, without background
        self.num_classes = self.nc + 1
        self.confidence_threshold = cfg.confidence_threshold
        self.iou_threshold = cfg.iou_threshold
        self._criterion: Any = None

    def forward(self, images: Tensor) -> Any:
        return self.net(images)

    def compute_loss(
        self, outputs: Any, batch: dict[str, Tensor], criterion: nn.Module | None = None
    ) -> tuple[Tensor, dict[str, Tensor | float]]:
        """Ultralytics' box+seg+cls+dfl loss, averaged per image (ultralytics sums over the batch)."""
        targets = yolo_targets(batch["mask"], batch["instances"], self.num_classes, PROTO_STRIDE)
        loss, items = self.criterion()(outputs, targets)
        size = batch["mask"].shape[0]
        # detached tensors, not floats: the loop reads them on the host only at its log points
        parts: dict[str, Tensor | float] = {name: v for name, v in items.items() if name != "sem_loss"}
        total = loss.sum() / size
        parts["loss"] = total.detach()
        return total, parts

    def criterion(self) -> Any:
        """The ultralytics loss, rebuilt when the model moved to another device."""
        device = next(self.net.parameters()).device
        if self._criterion is None or self._criterion.device != device:
            from ultralytics.utils.loss import v8SegmentationLoss

            self._criterion = v8SegmentationLoss(self.net)
        return self._criterion

    def raw_predictions(self, outputs: Any) -> tuple[Tensor, Tensor]:
        """(B, 4+nc+32, N) predictions and (B, 32, H/4, W/4) protos from any forward mode."""
        if isinstance(outputs, dict):  # training mode: decode like the head's inference path
            return self.head()._inference(outputs), outputs["proto"]
        first = outputs[0]
        if isinstance(first, tuple | list):  # eval mode: ((y, proto), preds)
            return first[0], first[1]
        return outputs[0], outputs[1]  # export mode: (y, proto)

    def detections(
        self, outputs: Any, conf: float | None = None, iou: float | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """Per image (n, 6+32) rows [x1, y1, x2, y2, conf, cls, coeffs] after conf filter + NMS; protos.

        `conf`/`iou` default to the deployed thresholds (the model's confidence_threshold, iou_threshold).
        """
        from ultralytics.utils.nms import non_max_suppression

        y, proto = self.raw_predictions(outputs)
        conf = self.confidence_threshold if conf is None else conf
        iou = self.iou_threshold if iou is None else iou
        dets = non_max_suppression(y.detach().float(), conf, iou, nc=self.nc, max_det=MAX_DET)
        return dets, proto.detach().float()

    def instance_masks(self, det: Tensor, proto: Tensor, size: tuple[int, int]) -> Tensor:
        """(n, H, W) bool masks: coeffs x protos, upsampled to `size`, thresholded at 0.5, cropped to box."""
        from ultralytics.utils.ops import process_mask

        in_h, in_w = proto.shape[-2] * PROTO_STRIDE, proto.shape[-1] * PROTO_STRIDE
        ratio = torch.tensor([size[1] / in_w, size[0] / in_h] * 2, device=det.device)
        return process_mask(proto, det[:, 6:], det[:, :4] * ratio, tuple(size), upsample=True).bool()

    def predict_semantic(self, outputs: Any, size: tuple[int, int]) -> Tensor:
        dets, proto = self.detections(outputs)
        labels = torch.zeros(len(dets), *size, dtype=torch.long, device=proto.device)
        for i, det in enumerate(dets):
            if not len(det):
                continue
            masks = self.instance_masks(det, proto[i], size)
            # Ascending confidence: later (more confident) instances overwrite earlier ones.
            for j in det[:, 4].argsort().tolist():
                labels[i][masks[j]] = int(det[j, 5]) + 1
        return labels

    def predict_instances(
        self, outputs: Any, size: tuple[int, int], conf: float | None = None, iou: float | None = None
    ) -> list[list[dict[str, Any]]]:
        """Per image, instances as dicts: box xyxy at `size`, score, class_id (semantic), mask (bool HxW);
        down to confidence `conf` (default: the deployed threshold)."""
        dets, proto = self.detections(outputs, conf, iou)
        result = []
        for i, det in enumerate(dets):
            masks: Any = self.instance_masks(det, proto[i], size).cpu().numpy() if len(det) else []
            in_h, in_w = proto.shape[-2] * PROTO_STRIDE, proto.shape[-1] * PROTO_STRIDE
            ratio = np.array([size[1] / in_w, size[0] / in_h] * 2)
            result.append(
                [
                    {
                        "box": (det[j, :4].cpu().numpy() * ratio).tolist(),
                        "score": float(det[j, 4]),
                        "class_id": int(det[j, 5]) + 1,
                        "mask": masks[j],
                    }
                    for j in range(len(det))
                ]
            )
        return result

    def export_module(self) -> nn.Module:
        """A fused eval copy with the heads in ultralytics' ONNX export mode: -> (output0, output1)."""
        from ultralytics.nn.modules import C2f, Detect

        net: Any = copy.deepcopy(self.net)
        for p in net.parameters():
            p.requires_grad = False
        net = net.eval().float().fuse(verbose=False)
        for m in net.modules():
            # ultralytics' own export switches, as its Exporter sets them (class defaults are typed None)
            if isinstance(m, Detect):
                m.dynamic, m.export, m.format, m.xyxy, m.shape = False, True, "onnx", False, None  # type: ignore[assignment]
            elif isinstance(m, C2f):
                m.forward = m.forward_split  # type: ignore[method-assign]
        return net

    def head(self) -> Any:
        """ultralytics' Segment head (untyped: its decoding methods are called directly)."""
        return self.net.model[-1]

    def encoder(self) -> nn.Module:
        return nn.Sequential(*self.net.model[:BACKBONE_LAYERS])


@contextlib.contextmanager
def _quiet_ultralytics() -> Iterator[None]:
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def build_yolov8_seg(cfg: ModelConfig) -> SegModel:
    """YOLOv8{n,s,m,l,x}-seg from ultralytics' bundled YAML; random init, nothing downloaded."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    require("ultralytics", "train", "YOLOv8-seg")
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import SegmentationModel

    from prodseg.train.pretrained import apply_pretrained

    with _quiet_ultralytics():  # it logs "Overriding model.yaml nc=80" even with verbose=False
        net: Any = SegmentationModel(f"yolov8{cfg.model_size}-seg.yaml", nc=class_count(cfg), verbose=False)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            # ultralytics uses 0.03, tuned for 100s of epochs with an EMA model; our short runs validate the
            # live model, whose running stats then lag far behind its weights (eval scores near zero).
            m.momentum = BN_MOMENTUM
    net.args = get_cfg()  # loss gains (box/cls/dfl) and overlap_mask, as ultralytics' trainer sets them
    model = YoloSegModel(net, cfg)
    apply_pretrained(model, cfg)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model.encoder())
    return model
