"""Config loading: every key and value is checked and errors name the key and what is allowed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prodseg.config import Config, apply_overrides, config_from_dict, is_mapping_field, load_config, show
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
    p = write(
        tmp_path,
        "model: {architecture: unet, num_classes: 5}\n"
        "training: {hyperparameters: {learning_rate: 1e-3, num_epochs: 2},\n"
        "           scheduler: {min_lr: 1e-6, warmup_epochs: 1}}\n",
    )
    cfg = load_config(p)
    assert cfg.model.architecture == "unet" and cfg.model.num_classes == 5
    assert cfg.training.hyperparameters.learning_rate == 0.001  # YAML 1.1 reads '1e-3' as a string
    assert cfg.training.scheduler.min_lr == 1e-6
    assert isinstance(cfg.training.scheduler.warmup_epochs, float)


def test_unknown_top_level_key_names_it_and_the_allowed_keys(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, {"modle": {}}))
    assert (
        str(e.value) == f"{tmp_path / 'cfg.yaml'}: unknown key 'modle'; allowed keys there: "
        "data, logging, model, search, training"
    )


def test_unknown_nested_key_names_its_dotted_path(tmp_path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'training.optimizer.tpye'; allowed keys there: "
        r"betas, decay_bias_and_norm, momentum, nesterov, type",
    ):
        load_config(write(tmp_path, {"training": {"optimizer": {"tpye": "sgd"}}}))


def test_bad_choice_lists_the_choices(tmp_path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"model.architecture: 'segformer' is not allowed; "
        r"choose one of deeplabv3plus, unet, yolov8_seg",
    ):
        load_config(write(tmp_path, {"model": {"architecture": "segformer"}}))


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "num_classes", 300, r"model.num_classes: 300 is out of range \(1 .. 254\)"),
        ("model", "iou_threshold", 1.5, r"model.iou_threshold: 1.5 is out of range \(0.0 .. 1.0\)"),
        ("data", "num_workers", -1, r"data.num_workers: -1 is out of range \(0 .. 256\)"),
    ],
)
def test_out_of_range(tmp_path, section: str, key: str, value, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, {section: {key: value}}))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"model": {"num_classes": "ten"}}, r"model.num_classes: expected int, got 'ten'"),
        ({"model": {"pretrained": "yes"}}, r"model.pretrained: expected bool, got 'yes'"),
        ({"data": {"image_size": True}}, r"data.image_size: expected a list, got True"),
        ({"data": {"image_size": [256, "x"]}}, r"data.image_size\[1\]: expected int"),
        ({"training": {"loss": ["ce"]}}, r"training.loss: expected a mapping"),
        ({"training": {"hyperparameters": {"learning_rate": "fast"}}}, r"learning_rate: expected float"),
        ({"model": 3}, r"'model' must be a mapping, got int"),
    ],
)
def test_wrong_types(tmp_path, data, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, data))


def test_bools_are_not_ints(tmp_path) -> None:
    with pytest.raises(ConfigError, match="batch_size: expected int or 'auto', got True"):
        load_config(write(tmp_path, {"training": {"hyperparameters": {"batch_size": True}}}))


def test_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model: [unclosed"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_overrides_apply_and_revalidate(tmp_path) -> None:
    cfg = load_config(
        write(tmp_path, {"model": {"architecture": "unet"}}),
        {"training.hyperparameters.batch_size": 2, "data.root": "/d", "model.backbone": None},
    )
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


# Each hostile value refused the same way from YAML and from the command line (apply_overrides).
HOSTILE_VALUES = [
    (
        "data.image_size",
        100,
        r"data.image_size: \[100, 100\] is not allowed; height and width must be "
        r"multiples of 32, e.g. \[96, 96\]",
    ),
    ("data.image_size", 0, r"data.image_size\[0\]: 0 is out of range \(32 .. 8192\)"),
    ("data.image_size", -64, r"data.image_size\[0\]: -64 is out of range"),
    ("data.image_size", [96, 128, 3], r"data.image_size: \[96, 128, 3\] has 3 value\(s\); give 2"),
    ("data.image_size", "big", r"data.image_size: 'big' is not allowed; give SIZE or HxW"),
    (
        "training.optimizer.betas",
        [0.9],
        r"training.optimizer.betas: \[0.9\] has 1 value\(s\); give 2, "
        r"e.g. \[0.9, 0.999\]",
    ),
    (
        "training.optimizer.betas",
        [0.9, 1.5],
        r"training.optimizer.betas\[1\]: 1.5 is out of range "
        r"\(>= 0.0 and < 1.0\)",
    ),
    ("training.optimizer.betas", [-0.1, 0.9], r"betas\[0\]: -0.1 is out of range"),
    ("training.augmentation.scale", [1.0], r"training.augmentation.scale: \[1.0\] has 1 value\(s\); give 2"),
    (
        "training.augmentation.scale",
        [1.25, 0.75],
        r"scale: \[1.25, 0.75\] is not allowed; give \[low, high\] "
        r"with low <= high",
    ),
    ("training.augmentation.scale", [0.0, 1.0], r"scale\[0\]: 0.0 is out of range \(> 0.0 and <= 4.0\)"),
    (
        "training.hyperparameters.learning_rate",
        float("nan"),
        r"learning_rate: expected float \(a finite "
        r"number\), got nan",
    ),
    ("training.hyperparameters.learning_rate", "inf", r"learning_rate: expected float \(a finite number\)"),
    ("training.hyperparameters.learning_rate", -1e-3, r"learning_rate: -0.001 is out of range \(> 0.0\)"),
    ("training.hyperparameters.learning_rate", 0, r"learning_rate: 0.0 is out of range \(> 0.0\)"),
    (
        "training.hyperparameters.learning_rate",
        10**400,
        r"learning_rate: expected float \(a finite number\), "
        r"got 1000",
    ),
    ("training.hyperparameters.weight_decay", float("-inf"), r"weight_decay: expected float"),
    ("training.hyperparameters.weight_decay", -1.0, r"weight_decay: -1.0 is out of range \(>= 0.0\)"),
    ("training.optimizer.momentum", 1.5, r"momentum: 1.5 is out of range \(0.0 .. 1.0\)"),
    ("training.loss", {"ce": -1.0}, r"training.loss.ce: -1.0 is out of range \(>= 0.0\)"),
    (
        "training.loss",
        {"ce": 0.0},
        r"training.loss: \{'ce': 0.0\} is not allowed; needs at least one "
        r"positive weight",
    ),
    ("training.loss", {"lovasz": 1.0}, r"unknown loss 'lovasz'; choose from ce, focal, dice"),
    ("training.loss.dice", float("nan"), r"training.loss.dice: expected float"),
    ("training.class_weights", [0.0, 0.0], r"class_weights: \[0.0, 0.0\] is not allowed; at least one"),
    ("training.focal_alpha", 2.0, r"focal_alpha: 2.0 is out of range \(0.0 .. 1.0\)"),
    (
        "training.hyperparameters.seed",
        2**70,
        r"seed: 1180591620717411303424 is out of range "
        r"\(0 .. 4294967295\)",
    ),
    ("training.hyperparameters.seed", -1, r"seed: -1 is out of range"),
    ("training.hyperparameters.seed", 10**5000, r"seed: <a number too large to print> is out of range"),
    ("training.hyperparameters.grad_clip_norm", -1.0, r"grad_clip_norm: -1.0 is out of range \(>= 0.0\)"),
    ("training.hyperparameters.early_stopping_patience", 0, r"early_stopping_patience: 0 is out of range"),
    (
        "training.hyperparameters.batch_size",
        2**40,
        r"batch_size: 1099511627776 is out of range "
        r"\(1 .. 2147483647\)",
    ),
    ("training.hyperparameters.batch_size", "8", r"batch_size: expected int or 'auto', got '8'"),
    ("training.hyperparameters.batch_size", [8], r"batch_size: expected int or 'auto', got \[8\]"),
    ("training.hyperparameters.batch_size", 8.0, r"batch_size: expected int or 'auto', got 8.0"),
    ("training.hyperparameters.amp", "yes", r"amp: expected bool, got 'yes'"),
    ("model.aspp_dilate", [-1, 12, 18], r"model.aspp_dilate\[0\]: -1 is out of range \(1 .. 1024\)"),
    ("model.aspp_dilate", [6, 12], r"model.aspp_dilate: \[6, 12\] has 2 value\(s\); give 3"),
    ("model.decoder_channels", [16, 8], r"decoder_channels: \[16, 8\] has 2 value\(s\); give 3 to 5"),
    ("model.num_classes", {"a": 1}, r"model.num_classes: expected int, got \{'a': 1\}"),
    ("training.device", "tpu", r"training.device: 'tpu' is not allowed; choose auto, cpu, cuda or cuda:N"),
    ("data.train_split", "../../etc/passwd", r"train_split: '../../etc/passwd' is not allowed; give a split"),
    ("data.root", "", r"data.root: '' is not allowed; give a non-empty string"),
    ("data.root", "a\0b", r"data.root: expected str \(text without NUL bytes\)"),
    ("logging.out_dir", 5, r"logging.out_dir: expected str"),
    ("data.num_workers", 10**6, r"num_workers: 1000000 is out of range \(0 .. 256\)"),
]


@pytest.mark.parametrize(
    "key, value, message", HOSTILE_VALUES, ids=[f"{k}={show(v, 20)}" for k, v, _ in HOSTILE_VALUES]
)
def test_hostile_values_are_refused_alike_from_yaml_and_overrides(tmp_path, key, value, message) -> None:
    with pytest.raises(ConfigError, match=message) as from_cli:
        apply_overrides(load_config(), {key: value}, "command line")
    assert str(from_cli.value).startswith(f"command line: {key}") and "\n" not in str(from_cli.value)
    raw = load_config().to_dict()
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[leaf] = value
    if (
        not any(isinstance(v, float) and not math.isfinite(v) for v in (value,))
        and not (isinstance(value, int) and value > 10**100)
        and "\0" not in str(value)
    ):
        path = write(tmp_path, raw)  # YAML cannot hold every value above; those go through dicts alone
        with pytest.raises(ConfigError, match=message) as from_yaml:
            load_config(path)
        assert str(from_yaml.value).startswith(f"{path}: ") and "\n" not in str(from_yaml.value)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, "stored")


@pytest.mark.parametrize(
    "value, expected",
    [
        (128, [128, 128]),
        ("128", [128, 128]),
        ("96x128", [96, 128]),
        ("96,128", [96, 128]),
        ([96, 128], [96, 128]),
        ((64, 32), [64, 32]),
    ],
)
def test_image_size_accepts_one_size_for_a_square_and_hxw_text(value, expected) -> None:
    assert apply_overrides(load_config(), {"data.image_size": value}).data.image_size == expected


def test_yaml_reads_special_floats_and_huge_numbers_as_hostile(tmp_path) -> None:
    for text, message in [
        ("training: {hyperparameters: {learning_rate: .nan}}", r"learning_rate: expected float"),
        ("training: {hyperparameters: {learning_rate: .inf}}", r"learning_rate: expected float"),
        ("training: {hyperparameters: {learning_rate: 1e400}}", r"learning_rate: expected float"),
        ("training: {hyperparameters: {seed: 99999999999999999999999}}", r"seed: 9999999999999999999999"),
        ("data: {image_size: 100}", r"data.image_size: \[100, 100\] is not allowed"),
        ("model: {1: 2}", r"unknown key 'model.1'"),
        ("3: x\nmodel: {}", r"unknown key '3'"),
        ("training: {hyperparameters: {seed: 2024-01-01}}", r"seed: expected int, got datetime.date"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, text))


def test_grad_clip_norm_zero_or_null_means_off() -> None:
    for value in (0, 0.0, None):
        cfg = apply_overrides(
            load_config(), {"training.hyperparameters.grad_clip_norm": value}, skip_none=False
        )
        assert not cfg.training.hyperparameters.grad_clip_norm


def test_scale_is_checked_together_with_strength() -> None:
    cfg = apply_overrides(load_config(), {"training.augmentation.scale": [0.25, 1.0]})  # fine at strength 1
    with pytest.raises(
        ConfigError,
        match=r"training.augmentation.scale: \[0.25, 1.0\] with strength 2.0 "
        r"gives a zoom of -0.5; keep 1 \+ \(low - 1\) \* strength > 0",
    ):
        apply_overrides(cfg, {"training.augmentation.strength": 2.0})


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not a text file (not UTF-8); pass a YAML config"),
        (b"just a string", "the top level must be a mapping"),
        (b"42", "the top level must be a mapping"),
        (b"model: {a: 1}\n  bad: [indent", "not valid YAML ("),
        (b"a: !!python/object:os.system {}", "not valid YAML ("),
        (b"seed: 2024-13-45", "not valid YAML ("),
    ],
)
def test_unreadable_config_files_are_one_line_config_errors(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


# Property: whatever value lands on these keys, the result is a valid Config or a ConfigError.
# Each key also draws values that suit it, so that valid configs come out too, not only errors.
PLAUSIBLE: dict[str, list] = {
    "data.image_size": [128, "96x128", [64, 96], [32, 8192]],
    "training.optimizer.betas": [[0.9, 0.999], [0.0, 0.5]],
    "training.augmentation.scale": [[0.8, 1.2], [1.0, 1.0]],
    "training.hyperparameters.learning_rate": [1e-3, "1e-4", 5],
    "training.hyperparameters.seed": [0, 2**32 - 1],
    "training.hyperparameters.grad_clip_norm": [None, 0, 5.0],
    "training.hyperparameters.batch_size": [1, 64],
    "training.loss": [{"ce": 1.0, "dice": 0.5}, {"focal": 2}],
    "training.class_weights": [None, [1.0, 2.0]],
    "model.aspp_dilate": [[6, 12, 18]],
    "training.device": ["cpu", "cuda:1", "auto"],
    "data.train_split": ["val", "all"],
    "model": [{}, {"architecture": "unet"}],
    "training.loss.dice": [0.0, 0.5],
    "search": [{}, {"x": {"type": "float"}}],
}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-1", "1e-3", "128", "96x128", "x", "cuda:0", ""]),
)
hostile = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
override = st.sampled_from(sorted(PLAUSIBLE)).flatmap(
    lambda key: st.tuples(st.just(key), st.one_of(st.sampled_from(PLAUSIBLE[key]), hostile))
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=st.lists(override, max_size=3).map(dict))
def test_any_override_gives_a_valid_config_or_a_config_error(overrides) -> None:
    try:
        cfg = apply_overrides(load_config(), overrides, "property", skip_none=False)
    except ConfigError as exc:
        assert str(exc).startswith("property: ") and "\n" not in str(exc)
        return
    size = cfg.data.image_size
    assert len(size) == 2 and all(v % 32 == 0 and 32 <= v <= 8192 for v in size)
    assert len(cfg.training.optimizer.betas) == 2 and all(0 <= b < 1 for b in cfg.training.optimizer.betas)
    hp = cfg.training.hyperparameters
    assert math.isfinite(hp.learning_rate) and hp.learning_rate > 0 and 0 <= hp.seed < 2**32
    assert hp.grad_clip_norm is None or hp.grad_clip_norm >= 0
    assert config_from_dict(yaml.safe_load(cfg.to_yaml())) == cfg  # what is accepted round-trips
