"""Train YOLOv8n-seg with prodseg and with ultralytics' own trainer on one dataset; score both one way.

    python scripts/compare_ultralytics_train.py DATA [--epochs 12 --imgsz 160 --batch 8 --seed 0]

DATA is a folder written by `prodseg-data synth` (or convert): prodseg's layout plus a YOLO-seg
`dataset.yaml` and the COCO `instances.json`. Both trainers get the same recipe, read from the prodseg
config (--config, the shipped YOLO config by default): optimizer AdamW, learning rate, weight decay,
cosine schedule to min_lr, warmup epochs, flips / scale / colour jitter, no mosaic, no accumulation
(ultralytics' nbs = batch), fp32 on the CPU, random init. Ultralytics is built from yolov8n-seg.yaml with
pretrained=False and YOLO_OFFLINE=1: nothing is downloaded.

Both final models (last.pt: each trainer's EMA when it keeps one) are scored by ONE evaluator: the same
forward pass and NMS (IoU 0.7, every detection down to confidence 0.001, at most 300 per image, as
ultralytics val and COCO do) and pycocotools' COCOeval (segm) against DATA/instances.json, val split.
Prints each trainer's mask mAP50 and mAP50-95, training images/s, and prodseg's ratio to ultralytics.
`--set key=value` overrides prodseg's config (ablations); `--only prodseg|ultralytics` trains one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import torch
import yaml

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "train" / "configs" / "yolov8_seg_fast.yaml"
SCORE_CONF, SCORE_IOU = 0.001, 0.7
# ultralytics' logging integrations (it would write mlflow.db and mlruns/ into the working folder)
INTEGRATIONS = ("mlflow", "tensorboard", "wandb", "comet", "clearml", "dvc", "hub", "neptune", "raytune")


def parse_value(text: str) -> Any:
    """`--set` values are YAML scalars (numbers, true/false, null, lists)."""
    return yaml.safe_load(text)


def prodseg_config(
    data: Path, config: Path, epochs: int, imgsz: int, batch: int, seed: int, out: Path, sets: dict[str, Any]
) -> Any:
    from prodseg.config import apply_overrides, load_config

    nc = int(yaml.safe_load((data / "dataset.yaml").read_text())["nc"])
    base = {
        "data.root": str(data),
        "data.image_size": [imgsz, imgsz],
        "data.num_workers": 0,
        "model.num_classes": nc,
        "training.hyperparameters.num_epochs": epochs,
        "training.hyperparameters.batch_size": batch,
        "training.hyperparameters.seed": seed,
        "training.hyperparameters.val_every": epochs,
        "training.hyperparameters.accumulate_grad_batches": 1,
        "training.device": "cpu",
        "logging.out_dir": str(out),
        "logging.tensorboard": False,
        "logging.mlflow": False,
        "logging.sample_images": 0,
    }
    # --set key=null sets null (e.g. training.scheduler.warmup_bias_lr=null turns bias warmup off)
    return apply_overrides(load_config(config, base), sets, str(config), skip_none=False)


def train_prodseg(cfg: Any) -> tuple[Path, float, float]:
    """(last.pt, seconds in training epochs, training images/s)."""
    from prodseg.train.fit import fit

    result = fit(cfg, progress=False)
    seconds = sum(row["train/seconds"] for row in result.history)
    images = sum(row["train/images_per_s"] * row["train/seconds"] for row in result.history)
    return result.run_dir / "last.pt", seconds, images / seconds


def ultralytics_args(cfg: Any, data: Path, out: Path) -> dict[str, Any]:
    """ultralytics' train() arguments for the same recipe as prodseg's config."""
    hp, sc, aug = cfg.training.hyperparameters, cfg.training.scheduler, cfg.training.augmentation
    s = aug.strength
    return dict(
        data=str(data / "dataset.yaml"),
        epochs=hp.num_epochs,
        imgsz=int(cfg.data.image_size[0]),
        batch=hp.batch_size,
        seed=hp.seed,
        deterministic=True,
        device="cpu",
        workers=0,
        amp=False,
        pretrained=False,
        optimizer="AdamW",
        lr0=hp.learning_rate,
        lrf=sc.min_lr / hp.learning_rate,
        cos_lr=sc.type == "cosine",
        warmup_epochs=sc.warmup_epochs,
        momentum=cfg.training.optimizer.betas[0],
        weight_decay=hp.weight_decay,
        nbs=hp.batch_size,  # nbs = batch: no accumulation, decay unscaled
        mosaic=0.0,
        close_mosaic=0,
        mixup=0.0,
        copy_paste=0.0,
        translate=0.0,
        shear=0.0,
        perspective=0.0,
        degrees=aug.rotation * s,
        scale=(aug.scale[1] - 1.0) * s,
        fliplr=aug.horizontal_flip * s,
        flipud=aug.vertical_flip * s,
        hsv_h=aug.hue * s,
        hsv_s=aug.saturation * s,
        hsv_v=aug.brightness * s,
        erasing=0.0,
        project=str(out),
        name="ultralytics",
        exist_ok=True,
        val=False,
        plots=False,
        verbose=False,
        save=True,
    )


def train_ultralytics(cfg: Any, data: Path, out: Path) -> tuple[Path, float, float]:
    """(last.pt, seconds in training epochs, training images/s), timed by epoch callbacks."""
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    for key in INTEGRATIONS:  # in memory only: JSONDict.__setitem__ would rewrite the user's settings file
        dict.__setitem__(SETTINGS, key, False)
    model = YOLO("yolov8n-seg.yaml", task="segment")
    times: dict[str, float] = {"train": 0.0}

    def epoch_start(trainer: Any) -> None:
        times["start"] = time.perf_counter()

    def epoch_end(trainer: Any) -> None:  # before validation and saving
        times["train"] += time.perf_counter() - times["start"]
        times["images"] = times.get("images", 0) + len(trainer.train_loader.dataset)

    model.add_callback("on_train_epoch_start", epoch_start)
    model.add_callback("on_train_epoch_end", epoch_end)
    model.train(**ultralytics_args(cfg, data, out))
    last = out / "ultralytics" / "weights" / "last.pt"
    return last, times["train"], times["images"] / max(times["train"], 1e-9)


def val_images(data: Path) -> list[Path]:
    from prodseg.data.check import checked_split
    from prodseg.data.layout import ShelfDataset

    return [s.image for s in checked_split(ShelfDataset(data), "val")]


@torch.inference_mode()
def predict_coco(
    checkpoint: Path, images: list[Path], image_ids: dict[str, int], imgsz: int
) -> list[dict[str, Any]]:
    """COCO results (RLE masks at each image's size) of one checkpoint, prodseg's or ultralytics'."""
    import cv2

    from prodseg.data.imageio import read_image
    from prodseg.train.checkpoint import model_from_checkpoint
    from prodseg.train.instance_metrics import _rle

    model, _, _ = model_from_checkpoint(checkpoint)
    mean, std = torch.tensor(model.mean).view(3, 1, 1), torch.tensor(model.std).view(3, 1, 1)
    results = []
    for path in images:
        rgb = read_image(path)
        size = rgb.shape[:2]
        x = torch.from_numpy(cv2.resize(rgb, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR))
        x = ((x.permute(2, 0, 1).float() / 255.0 - mean) / std)[None]
        found = model.predict_instances(model(x), size, conf=SCORE_CONF, iou=SCORE_IOU)[0]
        results += [
            {
                "image_id": image_ids[path.name],
                "category_id": int(d["class_id"]),
                "score": float(d["score"]),
                "segmentation": _rle(d["mask"]),
            }
            for d in found
        ]
    return results


def score(results: list[dict[str, Any]], gt: Any, ids: list[int]) -> dict[str, float]:
    """pycocotools COCOeval (segm) over the val images: mask mAP50 and mAP50-95 (up to 300 per image)."""
    from prodseg.train.instance_metrics import coco_mask_map

    if not results:
        return {"map50": 0.0, "map50_95": 0.0}
    return coco_mask_map(gt, results, ids)


def evaluator(data: Path) -> tuple[Any, list[Path], dict[str, int]]:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data / "instances.json"))
    image_ids = {Path(im["file_name"]).name: im["id"] for im in gt.dataset["images"]}
    return gt, val_images(data), image_ids


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--epochs", default=12, show_default=True)
@click.option("--imgsz", default=160, show_default=True)
@click.option("--batch", default=8, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="prodseg config the recipe is read from.",
)
@click.option("--set", "sets", multiple=True, help="prodseg config override key=value (repeatable).")
@click.option("--only", type=click.Choice(["both", "prodseg", "ultralytics"]), default="both")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Work folder (default: temp).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the numbers here.")
def main(
    data: Path,
    epochs: int,
    imgsz: int,
    batch: int,
    seed: int,
    config: Path,
    sets: tuple[str, ...],
    only: str,
    out: Path | None,
    json_out: Path | None,
) -> None:
    """Train prodseg and ultralytics on DATA with one recipe; print mask mAP of both and their ratio."""
    import tempfile

    torch.set_num_threads(max(1, torch.get_num_threads()))
    overrides = dict((k, parse_value(v)) for k, v in (s.split("=", 1) for s in sets))
    work = out or Path(tempfile.mkdtemp(prefix="compare-ultralytics-"))
    cfg = prodseg_config(data.resolve(), config, epochs, imgsz, batch, seed, work / "prodseg", overrides)
    gt, images, image_ids = evaluator(data)
    ids = [image_ids[p.name] for p in images]
    rows: dict[str, dict[str, float]] = {}
    trainers = {
        "prodseg": lambda: train_prodseg(cfg),
        "ultralytics": lambda: train_ultralytics(cfg, data.resolve(), work),
    }
    for name, train in trainers.items():
        if only not in ("both", name):
            continue
        checkpoint, seconds, ips = train()
        rows[name] = {
            **score(predict_coco(checkpoint, images, image_ids, imgsz), gt, ids),
            "train_seconds": seconds,
            "images_per_s": ips,
        }
    report(rows, {"epochs": epochs, "imgsz": imgsz, "batch": batch, "seed": seed, "set": overrides})
    if json_out:
        json_out.write_text(
            json.dumps(
                {
                    "settings": {
                        "epochs": epochs,
                        "imgsz": imgsz,
                        "batch": batch,
                        "seed": seed,
                        "set": overrides,
                    },
                    **rows,
                },
                indent=1,
            )
        )


def report(rows: dict[str, dict[str, float]], settings: dict[str, Any]) -> None:
    print(f"settings: {json.dumps(settings)}")
    print(f"{'trainer':<12} {'mAP50':>7} {'mAP50-95':>9} {'train img/s':>12} {'train s':>8}")
    for name, r in rows.items():
        print(
            f"{name:<12} {r['map50']:>7.4f} {r['map50_95']:>9.4f} {r['images_per_s']:>12.1f} "
            f"{r['train_seconds']:>8.1f}"
        )
    if len(rows) == 2:
        p, u = rows["prodseg"], rows["ultralytics"]
        ratio = [p[k] / u[k] if u[k] > 0 else float("nan") for k in ("map50", "map50_95")]
        print(f"ratio prodseg/ultralytics: mAP50 {ratio[0]:.2f}x  mAP50-95 {ratio[1]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
