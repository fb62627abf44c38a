"""metrics.csv, TensorBoard events and a real MLflow SQLite store (params, metrics, images, registry)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from prodseg.config import load_config
from prodseg.train.tracking import CsvTracker, MlflowTracker, build_trackers, flatten, mlflow_tracking_uri


def test_csv_rows_are_the_union_of_keys_and_a_resume_keeps_earlier_epochs(tmp_path):
    path = tmp_path / "metrics.csv"
    t = CsvTracker(path)
    t.log_metrics({"train/loss": 1.5}, 1)
    t.log_metrics({"val/miou": 0.25}, 1)
    t.log_metrics({"train/loss": 1.0, "val/miou": 0.5}, 2)
    t.log_metrics({"train/loss": 0.5}, 3)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert rows[0] == {"epoch": "1", "train/loss": "1.5", "val/miou": "0.25"}
    assert rows[2] == {"epoch": "3", "train/loss": "0.5", "val/miou": ""}
    resumed = CsvTracker(path, keep_until_epoch=2)  # epoch 3 is redone after a resume from epoch 2
    resumed.log_metrics({"train/loss": 0.4}, 3)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and rows[2]["train/loss"] == "0.4"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [2], "e": {}}


def test_tensorboard_writes_event_files(tmp_path):
    cfg = load_config(None, {"logging.mlflow": False, "logging.out_dir": str(tmp_path)})
    trackers = build_trackers(cfg, tmp_path / "run")
    trackers.log_metrics({"val/miou": 0.5}, 1)
    trackers.log_image("sample0", np.zeros((8, 8, 3), np.uint8), 1)
    trackers.close()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_tracking_uri_defaults_to_sqlite_in_out_dir_and_respects_the_env(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "azureml://example")
    assert mlflow_tracking_uri(tmp_path) == "azureml://example"


@pytest.mark.slow
def test_mlflow_logs_and_registers_in_a_real_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    t = MlflowTracker(tmp_path / "runs", "exp", "run-a")
    t.log_params({"model.architecture": "unet", "training.hyperparameters.learning_rate": 0.01})
    t.log_metrics({"val/miou": 0.25}, 1)
    t.log_metrics({"val/miou": 0.5}, 2)
    t.log_image("sample0", np.full((8, 8, 3), 200, np.uint8), 2)
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"weights")
    assert t.register(ckpt, "shelf-model") == "shelf-model/1"
    assert t.register(ckpt, "shelf-model") == "shelf-model/2"
    t.close()

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    run = client.get_run(t.run_id)
    assert run.data.params["model.architecture"] == "unet" and run.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(t.run_id, "val_miou")] == [0.25, 0.5]
    arts = {a.path for a in client.list_artifacts(t.run_id, "samples")}
    assert arts == {"samples/sample0_epoch002.png"}
    version = client.get_model_version("shelf-model", "1")
    assert version.run_id == t.run_id and version.source.endswith("checkpoint/best.pt")
    local = client.download_artifacts(t.run_id, "checkpoint/best.pt", str(tmp_path / "dl"))
    assert open(local, "rb").read() == b"weights"
    assert (tmp_path / "runs" / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_mlflow_resume_continues_its_run_or_a_new_one_when_the_store_lacks_it(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = MlflowTracker(tmp_path / "runs", "exp", "run-a")
    first.close()
    again = MlflowTracker(tmp_path / "runs", "exp", "run-a", run_id=first.run_id)
    assert again.run_id == first.run_id
    again.close()
    other = MlflowTracker(tmp_path / "elsewhere", "exp", "run-a", run_id=first.run_id)
    assert other.run_id != first.run_id
    assert f"MLflow run {first.run_id} is not in sqlite:///" in caplog.text
    other.close()
