"""Hostile values for the training-memory settings (batch_size auto, memory fraction, FSDP strategy, aspect
buckets) on prodseg-train: each ends as exit 2 with one `error:` line naming the key, no traceback, and no
output folder; a machine where not even the probe's batch fits ends the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from prodseg.train import autobatch
from prodseg.train.cli import main as train_main
from tests.hostile import check_error

FAST = [
    "--config",
    "fast_cpu",
    "--arch",
    "unet",
    "--image-size",
    "64",
    "--epochs",
    "1",
    "--device",
    "cpu",
    "--no-amp",
    "--workers",
    "0",
    "--no-progress",
]


OPTIONS: list[tuple[list[str], str]] = [
    (
        ["--batch-size", "eight"],
        "command line: training.hyperparameters.batch_size: expected int or 'auto', got 'eight'",
    ),
    (["--batch-size", "0"], "command line: training.hyperparameters.batch_size: 0 is out of range"),
    (["--batch-size", "-3"], "command line: training.hyperparameters.batch_size: -3 is out of range"),
    (["--batch-size", "2.5"], "training.hyperparameters.batch_size: expected int or 'auto', got '2.5'"),
    (["--batch-size", ""], "training.hyperparameters.batch_size: expected int or 'auto', got ''"),
    (["--batch-memory-fraction", "0"], "command line: training.batch_memory_fraction: 0.0 is out of range"),
    (["--batch-memory-fraction", "1.5"], "command line: training.batch_memory_fraction: 1.5 is out of range"),
    (["--batch-memory-fraction", "nan"], "training.batch_memory_fraction: expected float"),
]


@pytest.mark.parametrize("args, phrase", OPTIONS, ids=[" ".join(a) for a, _ in OPTIONS])
def test_bad_option(tiny_dataset: Path, tmp_path: Path, args: list[str], phrase: str) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(train_main, [*FAST, "--data", str(tiny_dataset), "--out", str(out), *args])
    check_error(result, phrase)
    assert not out.exists()


CONFIGS: list[tuple[dict, str]] = [
    ({"training": {"hyperparameters": {"batch_size": [4]}}}, "batch_size: expected int or 'auto', got [4]"),
    ({"training": {"hyperparameters": {"batch_size": "max"}}}, "batch_size: expected int or 'auto'"),
    ({"training": {"hyperparameters": {"effective_batch_size": 0}}}, "effective_batch_size: 0 is out of"),
    (
        {"training": {"hyperparameters": {"effective_batch_size": "auto"}}},
        "effective_batch_size: expected int, got 'auto'",
    ),
    ({"training": {"batch_memory_fraction": -0.5}}, "training.batch_memory_fraction: -0.5 is out of range"),
    (
        {"training": {"distributed": {"strategy": "zero"}}},
        "training.distributed.strategy: 'zero' is not allowed; choose one of ddp, fsdp",
    ),
    ({"training": {"distributed": 3}}, "'training.distributed' must be a mapping, got int"),
    ({"training": {"distributed": {"shards": 2}}}, "unknown key 'training.distributed.shards'"),
    ({"data": {"bucket_by_aspect": "yes"}}, "data.bucket_by_aspect: expected bool, got 'yes'"),
]


@pytest.mark.parametrize("raw, phrase", CONFIGS, ids=[yaml.safe_dump(r).strip() for r, _ in CONFIGS])
def test_bad_config_value(tiny_dataset: Path, tmp_path: Path, raw: dict, phrase: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        train_main, ["--config", str(path), "--data", str(tiny_dataset), "--out", str(out)]
    )
    line = check_error(result, phrase)
    assert line.startswith(f"error: {path}: ")
    assert not out.exists()


def test_auto_where_nothing_fits(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(autobatch.AVAILABLE, "cpu", lambda device: 4096)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        train_main, [*FAST, "--data", str(tiny_dataset), "--out", str(out), "--batch-size", "auto"]
    )
    check_error(result, "training.hyperparameters.batch_size: auto found that not even 2 images of 64x64 fit")
    assert not out.exists()
