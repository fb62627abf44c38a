"""prodseg-tune: exit codes, one-line errors, a diverging trial recorded as FAILED, a shared study."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from prodseg.train.tune_cli import main
from tests.train.test_tune import LR, tiny_config, write_config

optuna = pytest.importorskip("optuna")


def run_cli(args: list[str]):
    return CliRunner().invoke(main, args)


def error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "search,message",
    [
        ({}, "the search block is empty"),
        (
            {"training.hyperparameters.lr": {"type": "float", "low": 0.1, "high": 1.0}},
            "unknown key 'training.hyperparameters.lr'; allowed keys there:",
        ),
        ({LR: {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log: true needs low > 0 (got 0.0)"),
    ],
)
def test_bad_search_space_exits_2_before_any_trial(tmp_path, search, message):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, tmp_path / "runs", search))
    result = run_cli(["--config", str(cfg), "--trials", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert error_line(result).startswith(f"error: {cfg}: ") and message in result.stderr
    assert not (tmp_path / "out" / "tune.db").exists()


def test_missing_data_folder_exits_2(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "nope", tmp_path / "runs"))
    result = run_cli(["--config", str(cfg), "--trials", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert error_line(result) == (
        f"error: {tmp_path / 'nope'}: dataset folder not found; create one with `prodseg-data synth DIR`"
    )


def test_trials_is_required_and_positive(tmp_path):
    assert run_cli(["--config", "fast_cpu"]).exit_code == 2
    assert run_cli(["--config", "fast_cpu", "--trials", "0"]).exit_code == 2


@pytest.mark.slow
def test_diverging_trials_are_failed_the_study_goes_on_and_exit_is_1(tiny_dataset, tmp_path):
    search = {LR: {"type": "categorical", "choices": [1.0e6]}}  # AdamW at lr 1e6: loss becomes nan
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tiny_dataset, tmp_path / "runs", search))
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--trials", "2", "--epochs", "1", "--out", str(out), "--study", "d"]
    result = run_cli(args)
    assert result.exit_code == 1, result.output
    assert error_line(result).startswith(
        "error: no trial completed (2 fail); first error: loss became nan at epoch 1"
    )
    study = optuna.load_study(study_name="d", storage=f"sqlite:///{out / 'tune.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert all("lower the learning rate" in t.user_attrs["error"] for t in study.trials)
    assert (out / "trials.csv").read_text().count("FAIL") == 2 and not (out / "best_config.yaml").exists()


@pytest.mark.slow
def test_a_second_process_adds_trials_to_the_same_study_and_its_best_config_trains(tiny_dataset, tmp_path):
    search = {
        LR: {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
        "model.backbone": {"type": "categorical", "choices": ["mobilenet_v2"]},
    }
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tiny_dataset, tmp_path / "runs", search))
    out, storage = tmp_path / "out", f"sqlite:///{tmp_path / 'shared.db'}"
    common = [
        "--config",
        str(cfg),
        "--trials",
        "1",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--storage",
        storage,
        "--study",
        "shared",
    ]
    first = run_cli([*common, "--seed", "1"])
    assert first.exit_code == 0, first.output
    summary = "this process: 1 trial(s): 1 complete, 0 pruned, 0 failed; study 'shared' holds 1 trial(s)"
    assert summary in first.output and "learning_rate" in first.output and "COMPLETE" in first.output
    assert f"best config: {out / 'best_config.yaml'}" in first.output

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    second = subprocess.run(
        [sys.executable, "-m", "prodseg.train.tune_cli", *common, "--seed", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    assert "study 'shared' holds 2 trial(s)" in second.stdout
    study = optuna.load_study(study_name="shared", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert len({t.params[LR] for t in study.trials}) == 2
    assert not (out / "tune.db").exists()  # --storage was used, not the default

    best = out / "best_config.yaml"
    assert "search" not in yaml.safe_load(best.read_text())
    from prodseg.train.cli import main as train_main

    trained = CliRunner().invoke(
        train_main,
        ["--config", str(best), "--epochs", "1", "--no-progress", "--out", str(tmp_path / "again")],
    )
    assert trained.exit_code == 0, trained.output
    assert "best val mIoU" in trained.output and any(Path(tmp_path / "again").glob("*/best.pt"))


def test_timeout_stops_starting_trials(tiny_dataset, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tiny_dataset, tmp_path / "runs"))
    result = run_cli(["--config", str(cfg), "--trials", "3", "--timeout", "0", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert error_line(result).startswith("error: no trial completed (none ran)")
    assert "study 'c' holds 0 trial(s)" in result.output and not (tmp_path / "runs").exists()
