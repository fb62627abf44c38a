"""Experiment tracking: `metrics.csv`, TensorBoard and MLflow behind one small interface.

MLflow goes to `MLFLOW_TRACKING_URI` when set (an Azure ML workspace's MLflow URI receives runs that
way) and otherwise to a local SQLite store, `<logging.out_dir>/mlflow.db`, with artifacts beside it in
`<logging.out_dir>/mlartifacts` (browse with `mlflow ui --backend-store-uri sqlite:///runs/train/mlflow.db`).
MLflow and TensorBoard are imported only when switched on: importing MLflow alone takes seconds.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from prodseg.atomic import write_text
from prodseg.config import Config
from prodseg.errors import require

log = logging.getLogger("prodseg.train")


class Tracker:
    """One destination for params, metrics and images; every method is optional."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Record flat run parameters once."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at `step` (the epoch)."""

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        """Record an RGB uint8 (H,W,3) image."""

    def register(self, checkpoint: Path, name: str) -> str | None:
        """Register a checkpoint as a model version; returns its identifier, if the tracker has a registry."""
        return None

    def close(self) -> None:
        """Flush and release resources."""


class CsvTracker(Tracker):
    """`metrics.csv`: one row per epoch, columns the union of all keys, rewritten atomically each time."""

    def __init__(self, path: Path, keep_until_epoch: int = 0) -> None:
        self.path = path
        self.rows: dict[int, dict[str, Any]] = {}
        if keep_until_epoch and path.is_file():  # a resumed run keeps the rows it already wrote
            for row in csv.DictReader(path.read_text().splitlines()):
                epoch = int(row["epoch"])
                if epoch <= keep_until_epoch:
                    self.rows[epoch] = {k: v for k, v in row.items() if v != ""}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.rows.setdefault(step, {"epoch": step}).update(metrics)
        self._write()

    def _write(self) -> None:
        columns = ["epoch"] + sorted({k for row in self.rows.values() for k in row} - {"epoch"})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for epoch in sorted(self.rows):
            writer.writerow(self.rows[epoch])
        write_text(self.path, buf.getvalue())


class TensorBoardTracker(Tracker):
    """TensorBoard event files under `<run>/tensorboard`."""

    def __init__(self, logdir: Path) -> None:
        tb = require(
            "torch.utils.tensorboard", "train", "TensorBoard logging (or set logging.tensorboard: false)"
        )
        self.writer = tb.SummaryWriter(log_dir=str(logdir))

    def log_params(self, params: dict[str, Any]) -> None:
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in sorted(params.items())))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(name, image, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def mlflow_tracking_uri(out_dir: Path) -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite store in `out_dir`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out_dir.resolve() / 'mlflow.db'}"


class MlflowTracker(Tracker):
    """An MLflow run: params, per-epoch metrics, sample images, and model registration of best.pt."""

    def __init__(self, out_dir: Path, experiment: str, run_name: str, run_id: str | None = None) -> None:
        self.mlflow = require("mlflow", "train", "MLflow tracking (or set logging.mlflow: false)")
        uri = mlflow_tracking_uri(out_dir)
        self.client = self.mlflow.MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            # Local stores keep artifacts next to the database instead of MLflow's ./mlruns in the cwd.
            location = (out_dir.resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
            exp_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        if run_id is not None:
            try:
                self.client.update_run(run_id, status="RUNNING")
            except self.mlflow.exceptions.MlflowException:
                # e.g. MLFLOW_TRACKING_URI now names another store: continue in a new run, say so.
                log.warning("MLflow run %s is not in %s; the resumed training logs to a new run", run_id, uri)
                run_id = None
        if run_id is None:
            run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        self.run_id = run_id
        self.uri = uri

    def log_params(self, params: dict[str, Any]) -> None:
        existing = self.client.get_run(self.run_id).data.params
        fresh = [self.mlflow.entities.Param(k, str(v)[:500]) for k, v in params.items() if k not in existing]
        for i in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = int(1000 * time.time())
        batch = [
            self.mlflow.entities.Metric(k.replace("/", "_"), float(v), ts, step) for k, v in metrics.items()
        ]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, image, artifact_file=f"samples/{name}_epoch{step:03d}.png")

    def register(self, checkpoint: Path, name: str) -> str:
        """Log the checkpoint as a run artifact and create a registered model version pointing at it."""
        self.client.log_artifact(self.run_id, str(checkpoint), artifact_path="checkpoint")
        source = f"{self.client.get_run(self.run_id).info.artifact_uri}/checkpoint/{checkpoint.name}"
        if not self.client.search_registered_models(filter_string=f"name = '{name}'"):
            self.client.create_registered_model(name, description="prodseg segmentation checkpoint")
        version = self.client.create_model_version(name, source=source, run_id=self.run_id)
        return f"{name}/{version.version}"

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Trackers(Tracker):
    """Fan out every call to each enabled tracker."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def log_params(self, params: dict[str, Any]) -> None:
        for t in self.trackers:
            t.log_params(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.log_metrics(metrics, step)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        for t in self.trackers:
            t.log_image(name, image, step)

    def close(self) -> None:
        for t in self.trackers:
            t.close()

    def register(self, checkpoint: Path, name: str) -> str | None:
        ids = [t.register(checkpoint, name) for t in self.trackers]
        return next((i for i in ids if i), None)

    @property
    def mlflow(self) -> MlflowTracker | None:
        return next((t for t in self.trackers if isinstance(t, MlflowTracker)), None)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`, for tracker params."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


TRACKERS: dict[str, Callable[[Config, Path, dict[str, Any]], Tracker]] = {
    "tensorboard": lambda cfg, run_dir, state: TensorBoardTracker(run_dir / "tensorboard"),
    "mlflow": lambda cfg, run_dir, state: MlflowTracker(
        Path(cfg.logging.out_dir), cfg.logging.experiment, run_dir.name, state.get("mlflow_run_id")
    ),
}


def build_trackers(cfg: Config, run_dir: Path, state: dict[str, Any] | None = None) -> Trackers:
    """metrics.csv always, plus TensorBoard / MLflow as `cfg.logging` switches them; `state` resumes."""
    state = state or {}
    trackers: list[Tracker] = [CsvTracker(run_dir / "metrics.csv", keep_until_epoch=state.get("epoch", 0))]
    for name, factory in TRACKERS.items():
        if getattr(cfg.logging, name):
            trackers.append(factory(cfg, run_dir, state))
    return Trackers(trackers)
