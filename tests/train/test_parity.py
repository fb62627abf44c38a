"""Training on par with ultralytics' trainer: EMA of the weights, clip scale, standard mask mAP, resume."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prodseg.config import HyperParameters, load_config
from prodseg.errors import ConfigError
from prodseg.train.checkpoint import load_checkpoint
from prodseg.train.ema import ModelEMA, ema_enabled
from prodseg.train.engine import LoopState, Precision, clip_threshold, train_one_epoch
from prodseg.train.instance_metrics import StandardAndDeployedMAP
from tests.train.test_engine import Crash
from tests.train.test_engine import fit_cfg as engine_fit_cfg

REPO = Path(__file__).resolve().parents[2]


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)
        self.bn = nn.BatchNorm1d(1)


def test_ema_follows_ultralytics_formula_on_floats_only():
    model = Linear()
    ema = ModelEMA(model, decay=0.9, tau=2.0)
    start = ema.module.fc.weight.clone()
    with torch.no_grad():
        model.fc.weight.add_(1.0)
        model.bn.num_batches_tracked.fill_(7)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 2.0))
    torch.testing.assert_close(ema.module.fc.weight, d * start + (1 - d) * model.fc.weight)
    assert ema.updates == 1 and int(ema.module.bn.num_batches_tracked) == 0  # integer buffers: not averaged
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    assert ema.factor(10**6) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("key", "value"), [("decay", 1.0), ("decay", 0.0), ("decay", -0.5), ("tau", 0), ("tau", -1)]
)
def test_ema_settings_out_of_range_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=f"training.ema.{key}"):
        load_config(None, {f"training.ema.{key}": value})


def test_ema_is_on_by_default_for_yolo_only_and_can_be_switched():
    def on(**over):
        return ema_enabled(load_config(None, over))

    assert on(**{"model.architecture": "yolov8_seg"}) and not on(**{"model.architecture": "unet"})
    assert on(**{"model.architecture": "unet", "training.ema.enabled": True})
    assert not on(**{"model.architecture": "yolov8_seg", "training.ema.enabled": False})


class PerImage(nn.Module):
    """Loss = mean over images, declared to be clipped in the summed loss' units (like YoloSegModel)."""

    grad_clip_per_image = True

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def forward(self, images):
        return images

    def compute_loss(self, outputs, batch, criterion):
        loss = ((outputs.mean(dim=(2, 3)) - self.w) ** 2).sum(1).mean() + 0 * batch["mask"].sum()
        return loss, {}


def test_per_image_models_are_clipped_in_units_of_the_summed_loss():
    assert clip_threshold(PerImage(), 10.0, 8) == 1.25 and clip_threshold(nn.Linear(1, 1), 10.0, 8) == 10.0
    assert clip_threshold(PerImage(), None, 8) is None
    model = PerImage()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    hp = HyperParameters(grad_clip_norm=0.04, amp=False)
    batch = {"image": torch.full((4, 3, 2, 2), 5.0), "mask": torch.zeros(4, 2, 2, dtype=torch.long)}
    scaler, cpu = torch.amp.GradScaler("cpu", enabled=False), Precision(torch.device("cpu"), False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    train_one_epoch(model, None, opt, sched, scaler, [batch], cpu, hp, LoopState())
    assert model.w.detach().norm() == pytest.approx(0.04 / 4, rel=1e-4)  # the step is lr * clip / images


def _instances(box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    semantic, ids = torch.zeros(32, 32, dtype=torch.long), torch.zeros(32, 32, dtype=torch.long)
    y0, x0, y1, x1 = box
    semantic[y0:y1, x0:x1], ids[y0:y1, x0:x1] = 2, 1
    return semantic, ids, (ids == 1).numpy()


def test_standard_map_counts_low_scores_and_the_deployed_row_drops_them():
    scores = StandardAndDeployedMAP(num_classes=3, threshold=0.25)
    semantic, ids, mask = _instances((4, 4, 20, 20))
    scores.add(semantic, ids, [{"class_id": 2, "score": 0.1, "mask": mask}])
    got = scores.compute()
    assert got["map50"] == pytest.approx(1.0) and got["map50_95"] == pytest.approx(1.0)
    assert got["map50_at_conf"] == 0.0 and got["map50_95_at_conf"] == 0.0


def test_yolo_val_scores_detections_below_the_deployed_threshold(tiny_dataset, tmp_path):
    from prodseg.data.imageio import read_image
    from prodseg.data.layout import ShelfDataset
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.evaluate import load_label_maps
    from prodseg.train.models import build_model

    cfg = load_config(
        None, {"model.architecture": "yolov8_seg", "model.num_classes": 9, "data.image_size": [64, 64]}
    )
    classes = ShelfDataset(tiny_dataset).classes
    path = save_checkpoint(
        tmp_path / "y.pt",
        build_checkpoint(build_model(cfg.model), cfg, list(classes.names), [list(c) for c in classes.colors]),
    )
    predictor = load_label_maps(path)
    sample = ShelfDataset(tiny_dataset).split("val")[0]
    image = read_image(sample.image)
    labels, found = predictor.with_instances(sample.stem, image)
    assert predictor.confidence_threshold == 0.25 and predictor.runner.meta.confidence_threshold == 0.25
    assert found and len(found) <= 300 and min(d["score"] for d in found) < 0.25  # an untrained model
    assert np.array_equal(labels, predictor(sample.stem, image))  # the label map stays at 0.25


# --- fit with EMA (DeepLabV3+ MobileNetV2 at 64x64 on the tiny dataset) -----------------------------


# test_engine's resume configuration, with an EMA that moves within its few steps and 2 epochs
EMA_RUN = {
    "logging.sample_images": 0,
    "training.hyperparameters.num_epochs": 2,
    "training.ema.enabled": True,
    "training.ema.tau": 2.0,
    "training.ema.decay": 0.9,
}


def fit_cfg(root, out, **over):
    return engine_fit_cfg(root, out, **{**EMA_RUN, **over})


@pytest.mark.slow
def test_resume_with_ema_is_bit_exact_and_checkpoints_hold_the_average(tiny_dataset, tmp_path):
    from prodseg.train.fit import fit

    straight = fit(fit_cfg(tiny_dataset, tmp_path / "a"), progress=False)

    def crash_after_one(run, row):
        if run.state.epoch == 1:
            raise Crash

    with pytest.raises(Crash):
        fit(fit_cfg(tiny_dataset, tmp_path / "b"), progress=False, on_epoch_end=crash_after_one)
    crashed = next((tmp_path / "b").iterdir())
    resumed = fit(fit_cfg(tiny_dataset, tmp_path / "b"), resume=crashed / "last.pt", progress=False)
    a, b = load_checkpoint(straight.run_dir / "last.pt"), load_checkpoint(resumed.run_dir / "last.pt")
    assert a["ema"]["updates"] == b["ema"]["updates"] == a["global_step"] > 0
    for part in ("model", "live"):
        x = a["model"] if part == "model" else a["ema"]["live_model"]
        y = b["model"] if part == "model" else b["ema"]["live_model"]
        for key, tensor in x.items():
            assert torch.equal(tensor, y[key]), (part, key)
    assert any(
        not torch.equal(v, a["ema"]["live_model"][k]) for k, v in a["model"].items() if v.is_floating_point()
    )  # the average is not the live weights
    assert [r["val/miou"] for r in a["history"]] == [r["val/miou"] for r in b["history"]]
    best = load_checkpoint(straight.run_dir / "best.pt")
    assert "ema" in best and best["epoch"] == straight.best_epoch


@pytest.mark.slow
def test_extending_a_finished_run_keeps_the_lr_low_and_says_so(tiny_dataset, tmp_path, caplog):
    from prodseg.train.fit import fit

    done = fit(
        fit_cfg(
            tiny_dataset,
            tmp_path,
            **{"training.hyperparameters.num_epochs": 1, "training.ema.enabled": False},
        ),
        progress=False,
    )
    end_lr = done.history[-1]["train/lr"]
    with caplog.at_level("INFO", logger="prodseg.train"):
        longer = fit(
            fit_cfg(
                tiny_dataset,
                tmp_path,
                **{"training.hyperparameters.num_epochs": 3, "training.ema.enabled": False},
            ),
            resume=done.run_dir / "last.pt",
            progress=False,
        )
    assert "LR schedule is re-planned from step" in caplog.text
    assert [r["train/lr"] for r in longer.history[1:]] == pytest.approx([end_lr, end_lr])  # no jump back up


@pytest.mark.slow
def test_compare_script_prints_both_trainers_and_their_ratio(tiny_dataset, tmp_path):
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "compare_ultralytics_train.py"),
            str(tiny_dataset),
            "--epochs",
            "1",
            "--imgsz",
            "64",
            "--batch",
            "4",
            "--out",
            str(tmp_path / "work"),
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(line.split()[:1] == ["prodseg"] and len(line.split()) == 5 for line in lines)
    assert any(line.split()[:1] == ["ultralytics"] and len(line.split()) == 5 for line in lines)
    assert any(line.startswith("ratio prodseg/ultralytics: mAP50 ") and "mAP50-95 " in line for line in lines)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_map_counts_detections_ranked_beyond_100_in_an_image():
    scores = StandardAndDeployedMAP(num_classes=3, threshold=None)
    semantic, ids, mask = _instances((4, 4, 20, 20))
    wrong = np.zeros_like(mask)
    wrong[24:30, 24:30] = True
    found = [{"class_id": 2, "score": 0.9 - i * 1e-3, "mask": wrong} for i in range(150)]
    scores.add(semantic, ids, [*found, {"class_id": 2, "score": 0.01, "mask": mask}])
    got = scores.compute()
    assert set(got) == {"map50", "map50_95"}  # no deployed threshold, no *_at_conf row
    # the true mask is the 151st detection: precision 1/151 at full recall, so AP = 1/151 at every IoU
    assert got["map50"] == pytest.approx(1 / 151, rel=0.05) and got["map50_95"] == pytest.approx(got["map50"])


def test_compare_script_set_null_sets_null(tiny_dataset, tmp_path):
    """`--set key=null` reaches the config as null (bias warmup off), not as "not given"."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "compare_train", REPO / "scripts" / "compare_ultralytics_train.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = (tiny_dataset, script.DEFAULT_CONFIG, 1, 64, 4, 0, tmp_path)
    assert script.prodseg_config(*args, {}).training.scheduler.warmup_bias_lr == 0.1
    off = script.prodseg_config(*args, {"training.scheduler.warmup_bias_lr": None})
    assert off.training.scheduler.warmup_bias_lr is None
