"""Config loading: every key and value is checked and errors name the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prodseg.config import Config, apply_overrides, config_from_dict, is_mapping_field, load_config
from prodseg.errors import ConfigError

SHIPPED = sorted((Path(__file__).parents[2] / "train" / "configs").glob("*.yaml"))


def write(tmp_path, data) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def test_defaults_without_a_file() -> None:
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.model.architecture == "deeplabv3plus"
    assert cfg.training.hyperparameters.batch_size == 8
    assert cfg.data.image_size == [256, 256]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    assert load_config(path).model.architecture in ("deeplabv3plus", "unet", "yolov8_seg")


def test_values_are_read_and_coerced(tmp_path) -> None:
    p = write(tmp_path, "model: {architecture: unet, num_classes: 5}\n"
                        "training: {hyperparameters: {learning_rate: 1e-3, num_epochs: 2},\n"
                        "           scheduler: {min_lr: 1e-6, warmup_epochs: 1}}\n")
    cfg = load_config(p)
    assert cfg.model.architecture == "unet" and cfg.model.num_classes == 5
    assert cfg.training.hyperparameters.learning_rate == 0.001  # YAML 1.1 reads '1e-3' as a string
    assert cfg.training.scheduler.min_lr == 1e-6
    assert isinstance(cfg.training.scheduler.warmup_epochs, float)


def test_unknown_top_level_key_names_it_and_the_allowed_keys(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, {"modle": {}}))
    assert str(e.value) == f"{tmp_path / 'cfg.yaml'}: unknown key 'modle'; allowed keys there: " \
                           "data, logging, model, search, training"


def test_unknown_nested_key_names_its_dotted_path(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'training.optimizer.tpye'; allowed keys there: "
                                          r"betas, momentum, nesterov, type"):
        load_config(write(tmp_path, {"training": {"optimizer": {"tpye": "sgd"}}}))


def test_bad_choice_lists_the_choices(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"model.architecture: 'segformer' is not allowed; "
                                          r"choose one of deeplabv3plus, unet, yolov8_seg"):
        load_config(write(tmp_path, {"model": {"architecture": "segformer"}}))


@pytest.mark.parametrize("section, key, value, message", [
    ("model", "num_classes", 300, r"model.num_classes: 300 is out of range \(1 .. 254\)"),
    ("model", "iou_threshold", 1.5, r"model.iou_threshold: 1.5 is out of range \(0.0 .. 1.0\)"),
    ("data", "num_workers", -1, r"data.num_workers: -1 is out of range \(0 .. \)"),
])
def test_out_of_range(tmp_path, section: str, key: str, value, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, {section: {key: value}}))


@pytest.mark.parametrize("data, message", [
    ({"model": {"num_classes": "ten"}}, r"model.num_classes: expected int, got 'ten'"),
    ({"model": {"pretrained": "yes"}}, r"model.pretrained: expected bool, got 'yes'"),
    ({"data": {"image_size": 256}}, r"data.image_size: expected a list, got 256"),
    ({"data": {"image_size": [256, "x"]}}, r"data.image_size\[1\]: expected int"),
    ({"training": {"loss": ["ce"]}}, r"training.loss: expected a mapping"),
    ({"training": {"hyperparameters": {"learning_rate": "fast"}}}, r"learning_rate: expected float"),
    ({"model": 3}, r"'model' must be a mapping, got int"),
])
def test_wrong_types(tmp_path, data, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, data))


def test_bools_are_not_ints(tmp_path) -> None:
    with pytest.raises(ConfigError, match="batch_size: expected int, got True"):
        load_config(write(tmp_path, {"training": {"hyperparameters": {"batch_size": True}}}))


def test_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model: [unclosed"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_overrides_apply_and_revalidate(tmp_path) -> None:
    cfg = load_config(write(tmp_path, {"model": {"architecture": "unet"}}),
                      {"training.hyperparameters.batch_size": 2, "data.root": "/d", "model.backbone": None})
    assert cfg.training.hyperparameters.batch_size == 2
    assert cfg.data.root == "/d"
    assert cfg.model.backbone == "mobilenet_v2"  # None = option not given
    assert cfg.model.architecture == "unet"
    with pytest.raises(ConfigError, match="training.hyperparameters.batch_size: 0 is out of range"):
        apply_overrides(cfg, {"training.hyperparameters.batch_size": 0})
    with pytest.raises(ConfigError, match="choose one of adam, adamw, sgd"):
        apply_overrides(cfg, {"training.optimizer.type": "lion"})


def test_override_unknown_keys_are_named(tmp_path) -> None:
    cfg = load_config()
    with pytest.raises(ConfigError, match=r"unknown key 'model.depth'; allowed keys there: architecture"):
        apply_overrides(cfg, {"model.depth": 3})
    with pytest.raises(ConfigError, match=r"unknown key 'trainer' in override 'trainer.epochs'"):
        apply_overrides(cfg, {"trainer.epochs": 3})
    with pytest.raises(ConfigError, match=r"unknown key 'model.backbone' in override 'model.backbone.depth'"):
        apply_overrides(cfg, {"model.backbone.depth": 3})


def test_overrides_may_add_keys_inside_mapping_fields_only() -> None:
    cfg = apply_overrides(load_config(), {"training.loss.dice": 0.5})  # the default loss is {ce: 1.0}
    assert cfg.training.loss == {"ce": 1.0, "dice": 0.5}
    assert is_mapping_field(["training", "loss"]) and is_mapping_field(["search"])
    assert not is_mapping_field(["training", "hyperparameters"])
    with pytest.raises(ConfigError, match=r"unknown key 'training.hyperparameters.momentum'"):
        apply_overrides(cfg, {"training.hyperparameters.momentum": 0.9})


def test_overrides_do_not_mutate_the_original() -> None:
    cfg = load_config()
    apply_overrides(cfg, {"data.image_size": [64, 64]})
    assert cfg.data.image_size == [256, 256]


def test_dict_round_trip() -> None:
    cfg = load_config(overrides={"model.num_classes": 4, "training.loss": {"ce": 1.0, "dice": 0.5}})
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert again.training.loss == {"ce": 1.0, "dice": 0.5}
