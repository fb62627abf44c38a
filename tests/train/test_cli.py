"""prodseg-train: option mapping, shipped configs, exit codes, a real run with MLflow registration."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from prodseg.train.cli import build_config, main, shipped_configs


def test_shipped_configs_load_and_options_map_onto_config_keys():
    assert set(shipped_configs()) >= {"deeplabv3plus", "unet", "yolov8_seg", "fast_cpu"}
    for name in shipped_configs():
        build_config(name, None, {})
    cfg = build_config(
        "fast_cpu",
        None,
        {
            "arch": "unet",
            "backbone": "resnet18",
            "epochs": 7,
            "batch_size": 3,
            "learning_rate": 0.02,
            "optimizer": "sgd",
            "weight_decay": 0.001,
            "accumulate_grad_batches": 2,
            "augmentation_strength": 0.5,
            "data": "/d",
            "out": "/o",
            "device": "cpu",
            "amp": False,
            "seed": 5,
            "workers": 1,
            "weights": None,
            "image_size": (96, 128),
        },
    )
    hp = cfg.training.hyperparameters
    assert (cfg.model.architecture, cfg.model.backbone) == ("unet", "resnet18")
    assert (hp.num_epochs, hp.batch_size, hp.learning_rate, hp.weight_decay) == (7, 3, 0.02, 0.001)
    assert (hp.accumulate_grad_batches, hp.amp, hp.seed) == (2, False, 5)
    assert (cfg.training.optimizer.type, cfg.training.augmentation.strength) == ("sgd", 0.5)
    assert (cfg.data.root, cfg.logging.out_dir, cfg.training.device, cfg.data.num_workers) == (
        "/d",
        "/o",
        "cpu",
        1,
    )
    assert cfg.data.image_size == [96, 128]
    assert build_config("fast_cpu", None, {}).model.backbone == "mobilenet_v2"  # None options are no override


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config", "nope"], "no shipped config of that name; shipped: deeplabv3plus, fast_cpu"),
        (["--resume", "missing.pt"], "missing.pt: checkpoint not found"),
        (["--config", "fast_cpu", "--data", "no/such/dir"], "no/such/dir: dataset folder not found"),
        (["--config", "fast_cpu", "--learning-rate", "-1"], "learning_rate: -1.0 is out of range"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_image_size_must_be_multiples_of_32():
    res = CliRunner().invoke(main, ["--image-size", "100"])
    assert res.exit_code == 2 and "multiples of 32" in res.output


def train_one_epoch(config: str, data, out, *extra: str):
    """prodseg-train CONFIG on `data` for one epoch at 64x64, batch 4, into `out`."""
    args = [
        "--config",
        config,
        "--data",
        str(data),
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--batch-size",
        "4",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    return CliRunner().invoke(main, args)


@pytest.mark.slow
def test_train_one_epoch_and_register_in_mlflow(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    res = train_one_epoch("fast_cpu", tiny_dataset, "runs", "--register", "shelf")
    assert res.exit_code == 0, res.output
    assert "untrained val mIoU:" in res.output and "best val mIoU:" in res.output
    assert "registered model version: shelf/1" in res.output
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir() and p.name.startswith("deeplab"))
    assert {"best.pt", "last.pt", "metrics.csv", "tensorboard"} <= {p.name for p in run_dir.iterdir()}

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    version = client.get_model_version("shelf", "1")
    assert version.source.endswith("checkpoint/best.pt")
    samples = [a.path for a in client.list_artifacts(version.run_id, "samples")]
    assert "samples/sample0_epoch001.png" in samples
    assert client.get_run(version.run_id).data.metrics["val_miou"] >= 0


@pytest.mark.slow
def test_yolov8_seg_trains_in_the_same_loop(tiny_dataset, tmp_path):
    res = train_one_epoch("yolov8_seg", tiny_dataset, tmp_path, "--workers", "0", "--device", "cpu")
    assert res.exit_code == 0, res.output
    from prodseg.train.checkpoint import load_checkpoint

    run_dir = next(tmp_path.glob("yolov8_seg-*"))
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["arch"] == "yolov8_seg" and {"val/map50", "val/map50_95", "val/miou"} <= set(
        ckpt["history"][0]
    )


def test_arch_switch_across_yolo_keeps_the_dataset_class_count(tmp_path):
    # The shipped configs leave the count to the dataset; an explicit one is recounted across the
    # YOLO boundary (10 with background for the semantic models, 9 without it for yolov8_seg).
    assert build_config("fast_cpu", None, {"arch": "yolov8_seg"}).model.num_classes is None
    mine = tmp_path / "mine.yaml"
    mine.write_text("model:\n  architecture: unet\n  num_classes: 10\n")
    assert build_config(str(mine), None, {"arch": "yolov8_seg"}).model.num_classes == 9
    assert build_config(str(mine), None, {"arch": "deeplabv3plus"}).model.num_classes == 10


def test_resume_with_a_config_warns_about_settings_that_differ_from_the_checkpoint(tmp_path, caplog):
    from prodseg.config import apply_overrides
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.cli import warn_resume_drift
    from prodseg.train.models import build_model

    cfg = build_config("fast_cpu", None, {"arch": "unet", "image_size": (64, 64)})
    cfg = apply_overrides(cfg, {"model.num_classes": 1})  # what training fills in from classes.yaml
    model = build_model(cfg.model)
    ckpt = save_checkpoint(tmp_path / "last.pt", build_checkpoint(model, cfg, ["a"], [[0, 0, 0]]))
    (tmp_path / "same.yaml").write_text(cfg.to_yaml())
    same = build_config(str(tmp_path / "same.yaml"), str(ckpt), {"epochs": 9, "out": "/elsewhere"})
    assert warn_resume_drift(str(ckpt), same) == [] and "differ" not in caplog.text
    build_config(str(tmp_path / "same.yaml"), str(ckpt), {"batch_size": 2, "learning_rate": 0.5})
    assert (
        "2 setting(s) differ from the checkpoint's and the new values apply: "
        "training.hyperparameters.batch_size 4 -> 2, training.hyperparameters.learning_rate 0.005 -> 0.5"
    ) in caplog.text
