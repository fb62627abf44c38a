"""Model registry and the SegModel contract for DeepLabV3+, UNet and YOLOv8-seg at 64x64."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prodseg.config import ModelConfig, TrainingConfig
from prodseg.errors import ConfigError
from prodseg.train.losses import build_loss
from prodseg.train.models import MODELS, SegModel, build_model
from prodseg.train.models.checkpointing import enable_checkpointing
from prodseg.train.models.yolo_targets import yolo_targets

SMP = {
    "deeplabv3plus": ModelConfig(architecture="deeplabv3plus", backbone="resnet18", num_classes=4),
    "unet": ModelConfig(
        architecture="unet", encoder_name="mobilenet_v2", num_classes=4, decoder_channels=[64, 32, 16, 8, 8]
    ),
}
YOLO = ModelConfig(architecture="yolov8_seg", num_classes=3)


def batch(size: int = 64) -> dict[str, torch.Tensor]:
    """Two images with a few rectangular instances (classes 1..3) and an ignored corner."""
    torch.manual_seed(0)
    mask = torch.zeros(2, size, size, dtype=torch.long)
    inst = torch.zeros_like(mask)
    mask[:, 8:30, 8:40], inst[:, 8:30, 8:40] = 1, 1
    mask[0, 36:60, 4:24], inst[0, 36:60, 4:24] = 3, 2
    mask[1, 40:56, 30:62], inst[1, 40:56, 30:62] = 2, 5
    mask[:, :4, :4] = 255
    return {"image": torch.rand(2, 3, size, size), "mask": mask, "instances": inst}


@pytest.fixture(scope="module")
def yolo() -> SegModel:
    return build_model(YOLO)


def test_registry_names_and_unknown_arch() -> None:
    assert set(MODELS) == {"deeplabv3plus", "unet", "yolov8_seg"}
    with pytest.raises(ConfigError, match="deeplabv3plus, unet, yolov8_seg"):
        build_model(ModelConfig(architecture="segformer"))


def test_unknown_backbone_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(backbone="resnet5000", num_classes=10))
    for word in ("resnet5000", "resnet50", "mobilenet_v2", "efficientnet-b0"):
        assert word in str(err.value)
    with pytest.raises(ConfigError, match="model.encoder_name"):
        build_model(ModelConfig(architecture="unet", encoder_name="nope", num_classes=10))


@pytest.mark.parametrize("backbone", ["resnet50", "resnet101", "mobilenet_v2", "efficientnet-b0"])
def test_deeplab_backbones_build(backbone: str) -> None:
    cfg = ModelConfig(backbone=backbone, output_stride=8, aspp_dilate=[6, 12, 18], num_classes=10)
    model = build_model(cfg)
    assert model.arch == "deeplabv3plus" and model.num_classes == 10
    dilations = {m.dilation[0] for m in model.net.decoder.aspp.modules() if isinstance(m, torch.nn.Conv2d)}
    assert {6, 12, 18} <= dilations
    assert model.net.encoder.output_stride == 8


@pytest.mark.parametrize("arch", list(SMP))
def test_smp_forward_loss_backward_predict_export(arch: str) -> None:
    model = build_model(SMP[arch])
    assert (model.output_kind, model.needs_instances, model.num_classes) == ("semantic_logits", False, 4)
    assert model.mean == (0.485, 0.456, 0.406) and model.resize == "resize"
    b = batch()
    outputs = model(b["image"])
    assert outputs.shape == (2, 4, 64, 64)
    loss, parts = model.compute_loss(outputs, b, build_loss(TrainingConfig(loss={"ce": 1.0, "dice": 1.0}), 4))
    assert torch.isfinite(loss) and set(parts) == {"ce", "dice", "loss"}
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    labels = model.predict_semantic(outputs.detach(), (32, 48))
    assert labels.shape == (2, 32, 48) and labels.dtype == torch.long and int(labels.max()) < 4
    exported = model.export_module()
    assert not exported.training and model.training
    with torch.no_grad():
        assert exported(b["image"]).shape == (2, 4, 64, 64)


def test_yolo_forward_loss_backward(yolo: SegModel) -> None:
    assert (yolo.output_kind, yolo.needs_instances, yolo.num_classes) == ("yolo_seg", True, 4)
    assert yolo.mean == (0.0, 0.0, 0.0) and yolo.std == (1.0, 1.0, 1.0)
    yolo.train()
    b = batch()
    outputs = yolo(b["image"])
    loss, parts = yolo.compute_loss(outputs, b, None)
    assert torch.isfinite(loss) and loss > 0
    assert {"box_loss", "seg_loss", "cls_loss", "dfl_loss", "loss"} <= set(parts)
    values = {k: float(v) for k, v in parts.items()}  # detached tensors, read once here
    assert values["loss"] == pytest.approx(sum(v for k, v in values.items() if k != "loss"), rel=1e-5)
    loss.backward()
    head = yolo.net.model[-1]
    assert head.cv4[0][2].weight.grad is not None  # mask-coefficient branch receives gradient
    yolo.zero_grad()


def test_yolo_eval_outputs_predict_and_loss(yolo: SegModel) -> None:
    yolo.eval()
    b = batch()
    with torch.no_grad():
        outputs = yolo(b["image"])
        labels = yolo.predict_semantic(outputs, (64, 64))
        loss, _ = yolo.compute_loss(outputs, b, None)
    assert labels.shape == (2, 64, 64) and labels.dtype == torch.long
    assert int(labels.max()) <= 3 and torch.isfinite(loss)
    assert len(yolo.predict_instances(outputs, (64, 64))) == 2


def test_yolo_export_module_layout(yolo: SegModel) -> None:
    exported = yolo.export_module()
    with torch.no_grad():
        out0, out1 = exported(torch.rand(1, 3, 64, 96))
    anchors = sum((64 // s) * (96 // s) for s in (8, 16, 32))
    assert out0.shape == (1, 4 + 3 + 32, anchors) and out1.shape == (1, 32, 16, 24)
    scores = out0[:, 4:7]
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0  # sigmoided class scores
    assert yolo.net.model[-1].export is False  # the training model is untouched


def crafted(conf_a: float, conf_b: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Export-layout outputs for a 32x32 input: box A (4..20) class 0, box B (12..28) class 1, full masks."""
    y = torch.zeros(1, 4 + 2 + 32, 3)
    y[0, :4, 0] = torch.tensor([12.0, 12.0, 16.0, 16.0])
    y[0, :4, 1] = torch.tensor([20.0, 20.0, 16.0, 16.0])
    y[0, :4, 2] = torch.tensor([4.0, 28.0, 6.0, 6.0])
    y[0, 4, 0], y[0, 5, 1], y[0, 4, 2] = conf_a, conf_b, 0.1  # the third is below the threshold
    y[0, 6, :] = 1.0  # mask coefficient on prototype 0
    proto = torch.zeros(1, 32, 8, 8)
    proto[0, 0] = 10.0  # every pixel inside a box is foreground
    return y, proto


@pytest.mark.parametrize(("conf_a", "conf_b", "overlap"), [(0.9, 0.6, 1), (0.6, 0.9, 2)])
def test_yolo_predict_semantic_paints_most_confident_last(
    yolo: SegModel, conf_a: float, conf_b: float, overlap: int
) -> None:
    model = build_model(dataclasses.replace(YOLO, num_classes=2)) if yolo.nc != 2 else yolo
    labels = model.predict_semantic(crafted(conf_a, conf_b), (32, 32))[0]
    assert labels[8, 8] == 1 and labels[24, 24] == 2 and labels[16, 16] == overlap
    assert labels[0, 0] == 0 and labels[30, 30] == 0 and labels[28, 4] == 0
    assert int((labels == 0).sum()) == 32 * 32 - (256 + 256 - 64)
    # Upsampled to another size, the boxes scale with it.
    assert model.predict_semantic(crafted(conf_a, conf_b), (64, 64))[0, 32, 32] == overlap
    instances = model.predict_instances(crafted(conf_a, conf_b), (32, 32))[0]
    assert sorted(i["class_id"] for i in instances) == [1, 2]
    assert {tuple(round(v) for v in i["box"]) for i in instances} == {(4, 4, 20, 20), (12, 12, 28, 28)}


def test_yolo_targets_from_instance_map() -> None:
    sem = torch.zeros(1, 16, 16, dtype=torch.long)
    inst = torch.zeros_like(sem)
    sem[0, 0:8, 0:4], inst[0, 0:8, 0:4] = 2, 3  # instance id 3, class 2
    sem[0, 0:2, 0:4] = 5  # minority label inside it
    sem[0, 8:16, 8:16], inst[0, 8:16, 8:16] = 4, 9  # id 9, class 4
    inst[0, 4:8, 12:16] = 6  # id 6 covers only background: dropped
    t = yolo_targets(sem, inst, num_classes=6, mask_ratio=4)
    assert t["batch_idx"].tolist() == [0.0, 0.0]
    assert t["cls"].flatten().tolist() == [1.0, 3.0]
    assert t["bboxes"].tolist() == [[2 / 16, 4 / 16, 4 / 16, 8 / 16], [12 / 16, 12 / 16, 8 / 16, 8 / 16]]
    assert t["masks"].shape == (1, 4, 4)
    assert t["masks"][0].tolist() == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]


def test_gradient_checkpointing_same_gradients() -> None:
    cfg = dataclasses.replace(SMP["deeplabv3plus"])
    plain = build_model(cfg)
    ckpt = build_model(dataclasses.replace(cfg, gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    assert set(ckpt.state_dict()) == set(plain.state_dict())
    patched = [m for m in ckpt.net.encoder.modules() if "forward" in vars(m)]
    assert len(patched) == 8  # the eight BasicBlocks of ResNet18's four stages
    assert enable_checkpointing(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())) == 1
    b = batch()
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(1)  # the ASPP dropout draws the same mask for both
        torch.nn.functional.cross_entropy(model(b["image"]), b["mask"], ignore_index=255).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name
    assert ckpt.export_module()(b["image"][:1]).shape == (1, 4, 64, 64)


def test_yolo_gradient_checkpointing_trains() -> None:
    model = build_model(dataclasses.replace(YOLO, gradient_checkpointing=True))
    b = batch()
    loss, _ = model.compute_loss(model(b["image"]), b, None)
    loss.backward()
    assert model.net.model[0].conv.weight.grad is not None


def test_yolo_loss_on_a_batch_without_instances(yolo: SegModel) -> None:
    yolo.train()
    b = batch()
    b["mask"].zero_()
    b["instances"].zero_()
    loss, parts = yolo.compute_loss(yolo(b["image"]), b, None)
    assert torch.isfinite(loss) and parts["seg_loss"] == 0.0 and parts["box_loss"] == 0.0
    loss.backward()
    yolo.zero_grad()


def test_a_model_without_a_class_count_is_a_config_error_naming_the_dataset_rule() -> None:
    with pytest.raises(ConfigError, match="model.num_classes: not set; prodseg-train takes it from"):
        build_model(ModelConfig(architecture="unet"))
