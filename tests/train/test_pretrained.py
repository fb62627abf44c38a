"""Pretrained weights come only from local files: the HF cache smp uses, or --weights PATH."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import huggingface_hub.constants
import pytest
import segmentation_models_pytorch as smp
import torch
from safetensors.torch import save_file

from prodseg.config import ModelConfig
from prodseg.errors import BadInput, ConfigError
from prodseg.train.models import build_model

UNET = ModelConfig(architecture="unet", encoder_name="resnet18", num_classes=3,
                   decoder_channels=[32, 16, 8, 8, 8])


@pytest.fixture()
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_pretrained_without_weights_fails_fast_naming_both_remedies(hf_cache: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(backbone="resnet18", pretrained=True))
    msg = str(err.value)
    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    expected = hf_cache / "models--smp-hub--resnet18.imagenet" / "snapshots" / settings["revision"]
    assert "--weights PATH" in msg and str(expected / "model.safetensors") in msg


def test_encoder_weights_tag_that_does_not_exist(hf_cache: Path) -> None:
    with pytest.raises(ConfigError, match="imagenet, ssl, swsl"):
        build_model(dataclasses.replace(UNET, encoder_weights="instagram"))


def test_encoder_weights_from_the_local_cache(hf_cache: Path) -> None:
    reference = build_model(UNET).net.encoder.state_dict()
    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    snapshot = hf_cache / "models--smp-hub--resnet18.imagenet" / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.items()}, str(snapshot / "model.safetensors"))
    loaded = build_model(dataclasses.replace(UNET, encoder_weights="imagenet")).net.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())


def test_weights_file_checkpoint_loads_whole_model(tmp_path: Path) -> None:
    source = build_model(UNET)
    path = tmp_path / "best.pt"
    torch.save({"format": "prodseg", "model": source.state_dict(), "epoch": 3}, path)
    loaded = build_model(dataclasses.replace(UNET, weights=str(path))).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())


def test_weights_file_of_another_num_classes_loads_the_rest(tmp_path: Path) -> None:
    source = build_model(dataclasses.replace(UNET, num_classes=7))
    path = tmp_path / "other.pt"
    torch.save(source.net.state_dict(), path)
    loaded = build_model(dataclasses.replace(UNET, weights=str(path)))
    assert torch.equal(loaded.net.encoder.conv1.weight, source.net.encoder.conv1.weight)
    assert loaded.net.segmentation_head[0].out_channels == 3


def test_weights_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(dataclasses.replace(UNET, weights=str(tmp_path / "missing.pt")))
    alien = tmp_path / "alien.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, alien)
    with pytest.raises(ConfigError, match="no tensor in"):
        build_model(dataclasses.replace(UNET, weights=str(alien)))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(BadInput, match="junk.pt"):
        build_model(dataclasses.replace(UNET, weights=str(junk)))


def test_yolo_pretrained_without_file_names_both_remedies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from ultralytics.utils import SETTINGS

    monkeypatch.setitem(SETTINGS, "weights_dir", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(architecture="yolov8_seg", num_classes=3, pretrained=True))
    msg = str(err.value)
    assert "--weights PATH" in msg and str(tmp_path / "weights" / "yolov8n-seg.pt") in msg
