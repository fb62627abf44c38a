"""Hostile configs, datasets and output folders for prodseg-train, -tune and -eval.

Every case must end as exit 2 with one line `error: ...` naming the key or file, no traceback, and no
run folder, MLflow store or report left behind. Each fails during validation, before any training step.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from prodseg.data.imageio import read_mask, write_mask
from prodseg.train.cli import main as train_main
from prodseg.train.eval_cli import main as eval_main
from tests.hostile import check_error

# Fast settings for the cases whose only fault is the dataset or the output folder.
FAST = [
    "--config",
    "fast_cpu",
    "--image-size",
    "64",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--device",
    "cpu",
    "--no-progress",
]


def copy_dataset(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(src, dst)
    return dst


def split_stems(root: Path, split: str) -> list[str]:
    return (root / "splits" / f"{split}.txt").read_text().split()


def put_label(root: Path, split: str, value: int = 200) -> Path:
    """Paint `value` into a corner of the first mask of `split`; returns that mask's path."""
    path = root / "masks" / f"{split_stems(root, split)[0]}.png"
    mask = read_mask(path)
    mask[:4, :4] = value
    write_mask(path, mask)
    return path


# --- datasets: each corrupts a copy of tiny_dataset and returns (root, phrase the error must hold) ---


def _label_200(root: Path) -> str:
    return f"{put_label(root, 'train')}: label values [200] are outside the 10 classes of classes.yaml"


def _label_200_in_val(root: Path) -> str:
    return f"{put_label(root, 'val')}: label values [200]"


def _label_10(root: Path) -> str:  # one past the last class: the off-by-one a plain `> num_classes` misses
    return f"{put_label(root, 'train', 10)}: label values [10]"


def _missing_mask(root: Path) -> str:
    stem = split_stems(root, "train")[1]
    (root / "masks" / f"{stem}.png").unlink()
    return f"{root / 'masks' / stem}.png: mask missing for image {stem}.jpg"


def _no_train_split(root: Path) -> str:
    (root / "splits" / "train.txt").unlink()
    return f"{root / 'splits' / 'train.txt'}: split 'train' not found"


def _empty_train_split(root: Path) -> str:
    (root / "splits" / "train.txt").write_text("\n")
    return f"{root}: split 'train' is empty"


def _unknown_stem_in_split(root: Path) -> str:
    (root / "splits" / "val.txt").write_text("no_such_image\n")
    return f"{root}: no image named 'no_such_image' in images/"


def _corrupt_image(root: Path) -> str:
    path = root / "images" / f"{split_stems(root, 'train')[2]}.jpg"
    path.write_bytes(b"not a jpeg")
    return f"{path}: cannot decode the image"


def _mask_size(root: Path) -> str:
    path = root / "masks" / f"{split_stems(root, 'val')[0]}.png"
    write_mask(path, np.zeros((10, 10), np.uint8))
    return f"{path}: size 10x10 differs from its image"


def _rgb_mask(root: Path) -> str:
    import cv2

    path = root / "masks" / f"{split_stems(root, 'train')[0]}.png"
    cv2.imwrite(str(path), np.zeros((96, 128, 3), np.uint8))
    return f"{path}: label masks must be single-channel"


def _fewer_classes(root: Path) -> str:
    raw = yaml.safe_load((root / "classes.yaml").read_text())
    raw = {k: v[:5] for k, v in raw.items()}
    (root / "classes.yaml").write_text(yaml.safe_dump(raw))
    # the class count comes from classes.yaml, so the masks' labels 5..9 are what is wrong
    return "label values [5, 6, 7, 8, 9] are outside the 5 classes of classes.yaml"


def _no_images_folder(root: Path) -> str:
    shutil.rmtree(root / "images")
    return f"{root}: no images/ folder"


def _empty_folder(root: Path) -> str:
    shutil.rmtree(root)
    root.mkdir()
    return f"{root}: no images/ folder"


def _missing_folder(root: Path) -> str:
    shutil.rmtree(root)
    return f"{root}: dataset folder not found"


DATASETS: dict[str, Callable[[Path], str]] = {
    "mask label 200 (train)": _label_200,
    "mask label 200 (val)": _label_200_in_val,
    "mask label = num_classes": _label_10,
    "image without mask": _missing_mask,
    "no train split": _no_train_split,
    "empty train split": _empty_train_split,
    "split names a missing image": _unknown_stem_in_split,
    "corrupt image": _corrupt_image,
    "mask of another size": _mask_size,
    "colour mask": _rgb_mask,
    "classes.yaml with fewer classes": _fewer_classes,
    "no images folder": _no_images_folder,
    "empty folder": _empty_folder,
    "missing folder": _missing_folder,
}


# Bad labels also with loader workers: they are found before any worker starts.
DATASET_RUNS = [(case, "0") for case in DATASETS] + [(case, "2") for case in DATASETS if "label" in case]


@pytest.mark.parametrize("case, workers", DATASET_RUNS, ids=[f"{c}, {w} workers" for c, w in DATASET_RUNS])
def test_train_refuses_a_bad_dataset_before_the_run_folder(tiny_dataset, tmp_path, case, workers):
    root = copy_dataset(tiny_dataset, tmp_path)
    phrase = DATASETS[case](root)
    out = tmp_path / "out"
    args = [*FAST, "--data", str(root), "--out", str(out), "--workers", workers]
    line = check_error(CliRunner().invoke(train_main, args), phrase)
    if "label" in case:
        assert (
            "; fix these masks, or list the missing classes in classes.yaml and set model.num_classes" in line
        )
        assert f"`prodseg-data check {root}` lists every problem" in line
    assert not out.exists()


# --- configs: a YAML key (dotted) set to a hostile value; the error must name the key ---

CONFIGS: list[tuple[str, Any, str]] = [
    ("data.image_size", 100, "[100, 100] is not allowed; height and width must be multiples of 32"),
    ("data.image_size", 0, "data.image_size[0]: 0 is out of range (32 .. 8192)"),
    ("data.image_size", -64, "data.image_size[0]: -64 is out of range"),
    ("data.image_size", [64], "data.image_size: [64] has 1 value(s); give 2"),
    ("training.optimizer.betas", [0.9], "training.optimizer.betas: [0.9] has 1 value(s); give 2"),
    ("training.optimizer.betas", [0.9, 1.5], "training.optimizer.betas[1]: 1.5 is out of range"),
    ("training.optimizer.betas", [-0.5, 0.9], "training.optimizer.betas[0]: -0.5 is out of range"),
    ("training.augmentation.scale", [1.0], "training.augmentation.scale: [1.0] has 1 value(s); give 2"),
    ("training.augmentation.scale", [1.2, 0.8], "training.augmentation.scale: [1.2, 0.8] is not allowed"),
    ("training.hyperparameters.learning_rate", ".nan", "learning_rate: expected float (a finite number)"),
    ("training.hyperparameters.learning_rate", ".inf", "learning_rate: expected float (a finite number)"),
    ("training.hyperparameters.learning_rate", -0.01, "learning_rate: -0.01 is out of range (> 0.0)"),
    ("training.hyperparameters.weight_decay", -1, "weight_decay: -1.0 is out of range (>= 0.0)"),
    ("training.optimizer.momentum", 2, "training.optimizer.momentum: 2.0 is out of range"),
    ("training.focal_gamma", -1, "training.focal_gamma: -1.0 is out of range"),
    ("training.loss", {"ce": 1.0, "dice": -0.5}, "training.loss.dice: -0.5 is out of range (>= 0.0)"),
    ("training.loss", {"ce": 0.0}, "training.loss: {'ce': 0.0} is not allowed; needs at least one positive"),
    ("training.hyperparameters.seed", 2**70, "training.hyperparameters.seed: 1180591620717411303424 is out"),
    ("training.hyperparameters.grad_clip_norm", -1.0, "training.hyperparameters.grad_clip_norm: -1.0 is out"),
    ("model.aspp_dilate", [-6, 12, 18], "model.aspp_dilate[0]: -6 is out of range (1 .. 1024)"),
    ("training.hyperparameters.batch_size", "eight", "training.hyperparameters.batch_size: expected int"),
    ("training.hyperparameters.num_epochs", [3], "num_epochs: expected int, got [3]"),
    ("training.hyperparameters.tpyo", 1, "unknown key 'training.hyperparameters.tpyo'; allowed keys there"),
    ("data.train_split", "../../etc", "data.train_split: '../../etc' is not allowed; give a split name"),
    ("training.device", "tpu", "training.device: 'tpu' is not allowed; choose auto, cpu, cuda or cuda:N"),
    ("logging.out_dir", "", "logging.out_dir: '' is not allowed; give a non-empty string"),
]


def nested(dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    raw: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        raw = {part: raw}
    return raw


@pytest.mark.parametrize("key, value, phrase", CONFIGS, ids=[f"{k}={v}" for k, v, _ in CONFIGS])
def test_train_refuses_a_bad_config_value(tiny_dataset, tmp_path, key, value, phrase):
    path = tmp_path / "bad.yaml"
    text = (
        yaml.safe_dump(nested(key, "VALUE")).replace("VALUE", str(value))
        if isinstance(value, str) and value.startswith(".")
        else yaml.safe_dump(nested(key, value))
    )
    path.write_text(text)
    out = tmp_path / "out"
    args = ["--config", str(path), "--data", str(tiny_dataset), "--out", str(out)]
    line = check_error(CliRunner().invoke(train_main, args), phrase)
    assert line.startswith(f"error: {path}: ") and key in line  # the file and the dotted key
    assert not out.exists()


# --- the same values as command-line options: refused by the same validation, naming the same key ---

OPTIONS: list[tuple[list[str], str]] = [
    (
        ["--image-size", "100"],
        "command line: data.image_size: [100, 100] is not allowed; height and width must be multiples of 32",
    ),
    (["--image-size", "0"], "command line: data.image_size[0]: 0 is out of range"),
    (["--image-size", "big"], "command line: data.image_size: 'big' is not allowed; give SIZE or HxW"),
    (["--learning-rate", "nan"], "command line: training.hyperparameters.learning_rate: expected float"),
    (["--learning-rate", "inf"], "command line: training.hyperparameters.learning_rate: expected float"),
    (["--learning-rate", "-1"], "command line: training.hyperparameters.learning_rate: -1.0 is out of range"),
    (["--weight-decay", "-0.1"], "command line: training.hyperparameters.weight_decay: -0.1 is out of range"),
    (["--seed", str(2**70)], "command line: training.hyperparameters.seed: 1180591620717411303424 is out"),
    (["--workers", "-1"], "command line: data.num_workers: -1 is out of range (0 .. 256)"),
    (["--batch-size", "0"], "command line: training.hyperparameters.batch_size: 0 is out of range"),
    (["--augmentation-strength", "5"], "command line: training.augmentation.strength: 5.0 is out of range"),
    (["--device", "gpu0"], "command line: training.device: 'gpu0' is not allowed"),
    (["--data", ""], "command line: data.root: '' is not allowed"),
]


@pytest.mark.parametrize("args, phrase", OPTIONS, ids=[" ".join(a) for a, _ in OPTIONS])
def test_train_refuses_a_bad_option_value(tiny_dataset, tmp_path, args, phrase):
    out = tmp_path / "out"
    result = CliRunner().invoke(train_main, ["--data", str(tiny_dataset), "--out", str(out), *args])
    check_error(result, phrase)
    assert not out.exists()


# --- GPU states this machine does not have (no GPU here): torch.cuda's answers are monkeypatched stand-ins,
# torch's errors worded as torch words them. Each is refused before the run folder exists. ---

FAST_NO_DEVICE = [a for a in FAST if a not in ("--device", "cpu")]
assert len(FAST_NO_DEVICE) == len(FAST) - 2


def _cuda_starts(monkeypatch: pytest.MonkeyPatch, gpus: int) -> None:
    import torch

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


def _no_gpu(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    from prodseg.train import devices

    _cuda_starts(monkeypatch, 0)
    monkeypatch.setattr(devices, "nvidia_driver", lambda: None)
    return ["--device", "cuda"], "--device cuda: no CUDA GPU is visible here (no NVIDIA driver found"


def _driver_too_old(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    import torch

    from prodseg.train import devices

    def init() -> None:
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 12020). Please update")

    _cuda_starts(monkeypatch, 0)
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(devices, "nvidia_driver", lambda: devices.Driver("535.104.05", "12.2"))
    return ["--device", "cuda"], "--device cuda: CUDA cannot start (cudaErrorInsufficientDriver: The NVIDIA"


def _cpu_only_torch(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    return ["--device", "cuda:0"], "--device cuda:0: this torch"


def _gpu_index_past_the_count(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    _cuda_starts(monkeypatch, 1)
    return ["--device", "cuda:1"], "--device cuda:1: this machine has 1 CUDA GPU(s), numbered from 0"


def _more_processes_than_gpus(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    _cuda_starts(monkeypatch, 2)
    torchrun = {
        "RANK": 0,
        "LOCAL_RANK": 0,
        "WORLD_SIZE": 4,
        "LOCAL_WORLD_SIZE": 4,
        "MASTER_ADDR": "127.0.0.1",
    }
    for key, value in {**torchrun, "MASTER_PORT": 29500}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return [
        "--device",
        "auto",
    ], "torchrun --nproc_per_node 4: 4 processes on this node but it has 2 CUDA GPU(s)"


GPU_STATES: dict[str, Callable[[pytest.MonkeyPatch], tuple[list[str], str]]] = {
    "no NVIDIA driver": _no_gpu,
    "driver older than torch's CUDA": _driver_too_old,
    "CPU-only torch": _cpu_only_torch,
    "cuda:N past the GPU count": _gpu_index_past_the_count,
    "more torchrun processes than GPUs": _more_processes_than_gpus,
}


@pytest.mark.parametrize("case", GPU_STATES)
def test_train_refuses_a_gpu_it_cannot_use_before_any_work(tiny_dataset, tmp_path, monkeypatch, case):
    from prodseg.train import devices

    devices.nvidia_driver.cache_clear()  # the real machine's answer must not stand in for a case's
    args, phrase = GPU_STATES[case](monkeypatch)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        train_main, [*FAST_NO_DEVICE, "--data", str(tiny_dataset), "--out", str(out), *args]
    )
    check_error(result, phrase)
    assert not out.exists()


# --- config files that are no config ---

FILES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd", "not a text file (not UTF-8)"),
    (b"- model\n- training\n", "the top level must be a mapping"),
    (b"model: [unclosed\n", "not valid YAML ("),
    (b"model: !!python/object/apply:os.system [ls]\n", "not valid YAML ("),
    (b"model: 3\n", "'model' must be a mapping, got int"),
]


@pytest.mark.parametrize("content, phrase", FILES, ids=["binary", "list", "broken", "python tag", "scalar"])
def test_train_refuses_a_config_file_that_is_no_config(tmp_path, content, phrase):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    out = tmp_path / "out"
    result = CliRunner().invoke(train_main, ["--config", str(path), "--out", str(out)])
    check_error(result, f"{path}: {phrase}")
    assert not out.exists()


# --- output folders ---


def _out_is_a_file(tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    return out, f"--out {out}: is a file, not a folder; give a folder path"


def _out_below_a_file(tmp_path: Path) -> tuple[Path, str]:
    parent = tmp_path / "file"
    parent.write_text("keep me")
    return parent / "runs", f"--out {parent / 'runs'}: {parent} is a file, not a folder; choose another --out"


OUTPUTS = {"--out is a file": _out_is_a_file, "--out below a file": _out_below_a_file}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.parametrize("case", OUTPUTS)
def test_train_refuses_an_unusable_out_before_any_work(tiny_dataset, tmp_path, case):
    out, phrase = OUTPUTS[case](tmp_path)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(train_main, [*FAST, "--data", str(tiny_dataset), "--out", str(out)])
    check_error(result, phrase)
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root writes into read-only folders",
)
def test_train_refuses_an_unwritable_out(tiny_dataset, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        args = [*FAST, "--data", str(tiny_dataset), "--out", str(locked / "runs")]
        result = CliRunner().invoke(train_main, args)
        check_error(result, f"--out {locked / 'runs'}: {locked} is not writable")
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_register_without_mlflow_is_refused_up_front(tiny_dataset, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"logging": {"mlflow": False}}))
    result = CliRunner().invoke(
        train_main,
        [
            "--config",
            str(cfg),
            "--data",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "out"),
            "--register",
            "shelves",
        ],
    )
    check_error(result, "--register shelves: needs MLflow tracking; set logging.mlflow: true")
    assert not (tmp_path / "out").exists()


def test_a_file_broken_after_the_check_fails_in_a_loader_worker_as_one_line(
    tiny_dataset, tmp_path, monkeypatch
):
    """A BadInput inside a DataLoader worker still ends as one line and exit 2, and the run folder goes."""
    import prodseg.data.check as check

    root = copy_dataset(tiny_dataset, tmp_path)
    bad = _corrupt_image(root).split(":")[0]  # a train image: the first validation pass does not read it
    (root / "splits" / "val.txt").write_text((root / "splits" / "train.txt").read_text())
    monkeypatch.setattr(check, "check_samples", lambda data, samples, threads=4: None)  # as if broken later
    quiet = tmp_path / "quiet.yaml"  # no MLflow: its store would stay beside the removed run folder
    quiet.write_text(yaml.safe_dump({"logging": {"mlflow": False, "tensorboard": False}}))
    out = tmp_path / "out"
    args = [*FAST[2:], "--config", str(quiet), "--data", str(root), "--out", str(out), "--workers", "2"]
    line = check_error(CliRunner().invoke(train_main, args), f"{bad}: cannot decode the image")
    assert "Caught" not in line and "worker" not in line
    assert not out.exists()  # the run folder made before the failure was removed again


# --- prodseg-tune ---


def tune_config(tmp_path: Path, data: Path, search: dict[str, Any]) -> Path:
    from tests.train.test_tune import tiny_config, write_config

    return write_config(tmp_path / "tune.yaml", tiny_config(data, tmp_path / "runs", search))


LR = {"training.hyperparameters.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}}
TUNE_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "negative grad clip range",
        {"training.hyperparameters.grad_clip_norm": {"type": "float", "low": -1.0, "high": 5.0}},
        "search.training.hyperparameters.grad_clip_norm = -1.0: training.hyperparameters.grad_clip_norm: "
        "-1.0 is out of range (>= 0.0)",
    ),
    (
        "image size off the lattice",
        {"data.image_size": {"type": "int", "low": 64, "high": 128}},
        "search.data.image_size = 65: data.image_size: [65, 65] is not allowed",
    ),
    (
        "nan bound",
        {"training.hyperparameters.learning_rate": {"type": "float", "low": float("nan"), "high": 1e-2}},
        "search.training.hyperparameters.learning_rate: low nan is not a finite number",
    ),
    (
        "betas beyond 1",
        {"training.optimizer.betas": {"type": "categorical", "choices": [[0.9, 1.1]]}},
        "search.training.optimizer.betas: choice [0.9, 1.1] is not a string, number, bool or null",
    ),
]


@pytest.mark.parametrize("case", [c[0] for c in TUNE_CASES])
def test_tune_refuses_a_search_range_the_config_would_refuse(tiny_dataset, tmp_path, case):
    from prodseg.train.tune_cli import main as tune_main

    _, search, phrase = next(c for c in TUNE_CASES if c[0] == case)
    cfg = tune_config(tmp_path, tiny_dataset, search)
    out = tmp_path / "out"
    check_error(
        CliRunner().invoke(tune_main, ["--config", str(cfg), "--trials", "1", "--out", str(out)]), phrase
    )
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("case", ["mask label 200 (train)", "empty train split", "image without mask"])
def test_tune_refuses_a_bad_dataset_before_any_trial(tiny_dataset, tmp_path, case):
    from prodseg.train.tune_cli import main as tune_main

    root = copy_dataset(tiny_dataset, tmp_path)
    phrase = DATASETS[case](root)
    cfg = tune_config(tmp_path, root, LR)
    out = tmp_path / "out"
    check_error(
        CliRunner().invoke(tune_main, ["--config", str(cfg), "--trials", "1", "--out", str(out)]), phrase
    )
    assert not out.exists()


@pytest.mark.parametrize("case", OUTPUTS)
def test_tune_refuses_an_unusable_out(tiny_dataset, tmp_path, case):
    from prodseg.train.tune_cli import main as tune_main

    out, phrase = OUTPUTS[case](tmp_path)
    cfg = tune_config(tmp_path, tiny_dataset, LR)
    before = snapshot(tmp_path)
    check_error(
        CliRunner().invoke(tune_main, ["--config", str(cfg), "--trials", "1", "--out", str(out)]), phrase
    )
    assert snapshot(tmp_path) == before


def test_tune_leaves_no_out_folder_when_the_study_cannot_open(tiny_dataset, tmp_path):
    from prodseg.train.tune_cli import main as tune_main

    cfg = tune_config(tmp_path, tiny_dataset, LR)
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--trials", "1", "--out", str(out), "--storage", "nosuchdb://x"]
    check_error(CliRunner().invoke(tune_main, args), "--storage nosuchdb://x: cannot open study")
    assert not out.exists()


# --- prodseg-eval (scoring saved masks: no model needed) ---


def eval_args(root: Path, predictions: Path, *extra: str) -> list[str]:
    return ["--predictions", str(predictions), "--data", str(root), *extra]


@pytest.mark.parametrize("case", ["mask label 200 (val)", "mask of another size", "image without mask"])
def test_eval_refuses_a_bad_dataset_before_scoring(tiny_dataset, tmp_path, case):
    root = copy_dataset(tiny_dataset, tmp_path)
    if case == "image without mask":
        stem = split_stems(root, "val")[0]
        (root / "masks" / f"{stem}.png").unlink()
        phrase = f"{root / 'masks' / stem}.png: mask missing"
    else:
        phrase = DATASETS[case](root)
    report = tmp_path / "report"
    line = check_error(
        CliRunner().invoke(eval_main, eval_args(root, tiny_dataset / "masks", "--report", str(report))),
        phrase,
    )
    if "label values" in line:
        assert "set model.num_classes" in line
    assert not report.exists()


@pytest.mark.parametrize(
    "extra, phrase",
    [
        (["--split", "../../etc/passwd"], "--split ../../etc/passwd: give a split name"),
        (["--device", "gpu"], "--device gpu: choose auto, cpu, cuda or cuda:N"),
    ],
    ids=["split outside the dataset", "device"],
)
def test_eval_refuses_bad_options(tiny_dataset, tmp_path, extra, phrase):
    result = CliRunner().invoke(eval_main, eval_args(tiny_dataset, tiny_dataset / "masks", *extra))
    check_error(result, phrase)


@pytest.mark.parametrize("case", OUTPUTS)
def test_eval_refuses_an_unusable_report_folder(tiny_dataset, tmp_path, case):
    out, phrase = OUTPUTS[case](tmp_path)
    before = snapshot(tmp_path)
    args = eval_args(tiny_dataset, tiny_dataset / "masks", "--report", str(out))
    result = CliRunner().invoke(eval_main, args)
    check_error(result, phrase.replace("--out", "--report"))
    assert snapshot(tmp_path) == before


# --- the pieces behind the dataset cases ---


def test_check_samples_names_the_first_problem_and_counts_them(tiny_dataset, tmp_path):
    from prodseg.data.check import check_samples
    from prodseg.data.layout import ShelfDataset
    from prodseg.errors import BadInput

    root = copy_dataset(tiny_dataset, tmp_path)
    data = ShelfDataset(root)
    samples = data.split("train")
    check_samples(data, samples)  # clean
    first = put_label(root, "train")
    second = root / "masks" / f"{split_stems(root, 'train')[1]}.png"
    write_mask(second, np.full((96, 128), 77, np.uint8))
    with pytest.raises(BadInput) as err:
        check_samples(data, samples)
    assert str(err.value).startswith(f"{first}: label values [200] are outside the 10 classes")
    assert "(2 problems; `prodseg-data check" in str(err.value)


def test_a_worker_traceback_shrinks_back_to_its_message():
    from prodseg.data.torch_datasets import DataError

    text = (
        "Caught DataError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise DataError(msg)\n'
        "prodseg.data.torch_datasets.DataError: /d/images/a.jpg: cannot decode the image; replace it\n"
    )
    assert str(DataError(text)) == "/d/images/a.jpg: cannot decode the image; replace it"
    assert str(DataError("/d/a.png: plain: message")) == "/d/a.png: plain: message"
