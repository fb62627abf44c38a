"""prodseg-eval: saved-mask scoring (exact values), report files, overlays, predictor registry, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from prodseg.data.imageio import read_image, read_mask, write_mask
from prodseg.data.layout import ShelfDataset
from prodseg.errors import BadInput
from prodseg.train.eval_cli import main
from prodseg.train.evaluate import ModelLabelMaps, SavedLabelMaps, evaluate_split, load_label_maps
from prodseg.train.report import colorize, overlay


def test_own_masks_score_one_and_write_a_full_report(tiny_dataset, tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "--predictions",
            str(tiny_dataset / "masks"),
            "--data",
            str(tiny_dataset),
            "--report",
            str(tmp_path / "rep"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mIoU 1.0000  mean Dice 1.0000  pixel accuracy 1.0000" in res.output
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["miou"] == 1.0 and metrics["split"] == "val"
    for name in ("report.md", "confusion_matrix.png", "per_class_iou.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert len(list((tmp_path / "rep" / "samples").glob("*.png"))) == len(
        ShelfDataset(tiny_dataset).split("val")
    )
    assert "| miou | 1.0000 |" in (tmp_path / "rep" / "report.md").read_text()


def test_all_background_predictions_score_exactly(tiny_dataset, tmp_path):
    ds = ShelfDataset(tiny_dataset)
    targets = [read_mask(s.mask) for s in ds.split("val")]
    for s, t in zip(ds.split("val"), targets, strict=True):
        write_mask(tmp_path / f"{s.stem}.png", np.zeros_like(t))
    result = evaluate_split(SavedLabelMaps(tmp_path), tiny_dataset, "val")
    gt = np.concatenate([t.ravel() for t in targets])
    gt = gt[gt != 255]
    present = np.unique(gt)
    # Background IoU = background pixels / all pixels; every other present class scores 0.
    expected = (np.sum(gt == 0) / gt.size) / len(present)
    assert result.metrics["miou"] == pytest.approx(expected, abs=1e-12)
    assert result.metrics["pixel_accuracy"] == pytest.approx(np.mean(gt == 0), abs=1e-12)
    assert result.confusion[:, 1:].sum() == 0 and result.confusion.sum() == gt.size


def test_missing_prediction_and_bad_arguments_exit_2(tiny_dataset, tmp_path):
    (tmp_path / "preds").mkdir()
    res = CliRunner().invoke(main, ["--predictions", str(tmp_path / "preds"), "--data", str(tiny_dataset)])
    assert res.exit_code == 2 and "no prediction for image" in res.output
    res = CliRunner().invoke(main, ["--data", str(tiny_dataset)])
    assert res.exit_code == 2 and "exactly one of --model" in res.output
    with pytest.raises(BadInput, match="model not found"):
        load_label_maps(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(main, ["--model", str(garbage), "--data", str(tiny_dataset)])
    assert res.exit_code == 2 and "garbage.pt: not a readable checkpoint" in res.output


def test_checkpoints_run_through_the_runtimes_torch_runner(tiny_dataset, tmp_path):
    from prodseg.config import load_config
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.models import build_model

    cfg = load_config(
        None, {"model.backbone": "mobilenet_v2", "model.num_classes": 10, "data.image_size": [64, 64]}
    )
    classes = ShelfDataset(tiny_dataset).classes
    path = save_checkpoint(
        tmp_path / "m.pt",
        build_checkpoint(build_model(cfg.model), cfg, list(classes.names), [list(c) for c in classes.colors]),
    )
    predictor = load_label_maps(path)
    assert isinstance(predictor, ModelLabelMaps) and predictor.runner.backend == "torch"
    result = evaluate_split(predictor, tiny_dataset, "val", samples=1)
    stem, (image, target, pred) = next(iter(result.samples.items()))
    assert pred.shape == target.shape == image.shape[:2] and pred.max() < 10
    assert 0.0 <= result.metrics["miou"] <= 1.0
    from prodseg.runtime import load

    with load(path) as runtime:  # eval's label map is the runtime's, exactly
        assert np.array_equal(pred, runtime.predict(image).label_map)


def test_a_saved_prediction_of_255_is_an_error_not_ignore(tiny_dataset, tmp_path):
    ds = ShelfDataset(tiny_dataset)
    for s in ds.split("val"):
        write_mask(tmp_path / f"{s.stem}.png", np.full_like(read_mask(s.mask), 255))
    res = CliRunner().invoke(main, ["--predictions", str(tmp_path), "--data", str(tiny_dataset)])
    assert res.exit_code == 2 and "prediction holds label(s) 255 outside the 10 classes" in res.stderr
    assert res.stderr.count("\n") == 1


def test_colorize_and_overlay_exact():
    labels = np.array([[0, 1], [2, 255]], np.uint8)
    colors = [[0, 0, 0], [200, 0, 0], [0, 100, 0]]
    assert colorize(labels, colors).tolist() == [[[0, 0, 0], [200, 0, 0]], [[0, 100, 0], [0, 0, 0]]]
    image = np.full((2, 2, 3), 100, np.uint8)
    out = overlay(image, labels, colors, alpha=0.5)
    assert out.tolist() == [[[100, 100, 100], [150, 50, 50]], [[50, 100, 50], [100, 100, 100]]]


class GroundTruthInstances:
    """The dataset's own instances (score 1) as predictions: mask mAP exactly 1 (0 with wrong classes)."""

    instance_output = True
    class_names = class_colors = None

    def __init__(self, root, class_shift: int = 0):
        from prodseg.data.formats.coco import read_coco

        records, _ = read_coco(ShelfDataset(root).instances_json)
        self.records = {r.stem: r for r in records}
        self.masks = {s.stem: read_mask(s.mask) for s in ShelfDataset(root).split("all")}
        self.shift = class_shift

    def with_instances(self, stem, image):
        found = [
            {"class_id": (i.class_id + self.shift - 1) % 9 + 1, "score": 1.0, "mask": i.mask}
            for i in self.records[stem].instances
        ]
        return self.masks[stem], found


def test_mask_map_of_perfect_instances_is_one_and_of_wrong_classes_zero(tiny_dataset):
    perfect = evaluate_split(GroundTruthInstances(tiny_dataset), tiny_dataset, "val")
    assert perfect.metrics["miou"] == 1.0
    assert perfect.metrics["map50"] == pytest.approx(1.0)
    assert perfect.metrics["map50_95"] == pytest.approx(1.0)
    wrong = evaluate_split(GroundTruthInstances(tiny_dataset, class_shift=1), tiny_dataset, "val")
    assert wrong.metrics["map50"] == 0.0 and wrong.metrics["map50_95"] == 0.0


def test_semantic_predictors_get_no_mask_map(tiny_dataset):
    result = evaluate_split(SavedLabelMaps(tiny_dataset / "masks"), tiny_dataset, "val")
    assert "map50" not in result.metrics


@pytest.mark.slow
def test_yolo_checkpoint_gives_instances_at_image_size_and_mask_map(tiny_dataset, tmp_path):
    from prodseg.config import load_config
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.models import build_model

    cfg = load_config(
        None,
        {
            "model.architecture": "yolov8_seg",
            "model.num_classes": 9,
            "model.confidence_threshold": 0.001,
            "data.image_size": [64, 64],
        },
    )
    torch.manual_seed(0)  # the random weights, and so whether any instance clears 0.001, fixed
    classes = ShelfDataset(tiny_dataset).classes
    path = save_checkpoint(
        tmp_path / "y.pt",
        build_checkpoint(build_model(cfg.model), cfg, list(classes.names), [list(c) for c in classes.colors]),
    )
    predictor = load_label_maps(path)
    assert predictor.instance_output
    sample = ShelfDataset(tiny_dataset).split("val")[0]
    image = read_image(sample.image)
    labels, found = predictor.with_instances(sample.stem, image)
    # the same label map as a plain prediction; a random-weight YOLO paints near-tied instances, which a
    # second forward pass may order differently when kernels sum in another order (seen in full runs)
    assert (labels == predictor(sample.stem, image)).mean() > 0.99
    assert found and all(d["mask"].shape == image.shape[:2] and d["mask"].dtype == bool for d in found)
    assert all(1 <= d["class_id"] <= 9 for d in found)
    res = CliRunner().invoke(main, ["--model", str(path), "--data", str(tiny_dataset)])
    assert res.exit_code == 0, res.output
    assert "mask mAP50 " in res.output and "mAP50-95 " in res.output


def test_a_reordered_classes_yaml_gives_the_same_miou_and_a_mismatch_exits_2(tiny_dataset, tmp_path):
    import shutil

    import yaml

    from prodseg.data.taxonomy import ClassList

    class Model:  # a model that predicts the truth, numbered in its own class order
        def __init__(self, names):
            self.class_names, self.source = names, "model.onnx"
            data = list(ShelfDataset(tiny_dataset).classes.names)
            self.to_model = np.array([names.index(n) for n in data] + [0] * (256 - len(data)), np.uint8)
            self.masks = {s.stem: read_mask(s.mask) for s in ShelfDataset(tiny_dataset).split("all")}

        def __call__(self, stem, image):
            truth = self.masks[stem]
            return np.where(truth == 255, 0, self.to_model[truth]).astype(np.uint8)

    names = list(ShelfDataset(tiny_dataset).classes.names)
    same = evaluate_split(Model(names), tiny_dataset, "val")
    reordered = evaluate_split(Model(names[::-1]), tiny_dataset, "val")
    assert same.metrics["miou"] == reordered.metrics["miou"] == 1.0
    other = tmp_path / "other"
    shutil.copytree(tiny_dataset, other)
    classes = ClassList.load(other / "classes.yaml")
    (other / "classes.yaml").write_text(yaml.safe_dump({**classes.to_dict(), "names": [*names[:-1], "logo"]}))
    with pytest.raises(BadInput, match=r"model.onnx and .*classes.yaml have different classes"):
        evaluate_split(Model(names), other, "val")


def test_plain_folders_of_masks_score_without_a_dataset(tiny_dataset, tmp_path):
    truth, preds = tmp_path / "truth", tmp_path / "preds"
    truth.mkdir()
    preds.mkdir()
    for s in ShelfDataset(tiny_dataset).split("val"):
        mask = read_mask(s.mask)
        write_mask(truth / f"{s.stem}.png", mask)
        write_mask(preds / f"{s.stem}.png", np.where(mask == 255, 0, mask).astype(np.uint8))
    res = CliRunner().invoke(
        main,
        [
            "--predictions",
            str(preds),
            "--gt",
            str(truth),
            "--classes",
            str(tiny_dataset / "classes.yaml"),
            "--report",
            str(tmp_path / "rep"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mIoU 1.0000" in res.output and "price_tag" in res.output
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["miou"] == 1.0
    numbered = CliRunner().invoke(main, ["--predictions", str(preds), "--gt", str(truth)])
    assert numbered.exit_code == 0 and "class_1" in numbered.output
    both = ["--predictions", str(preds), "--gt", str(truth), "--data", str(tiny_dataset)]
    res = CliRunner().invoke(main, both)
    assert res.exit_code == 2 and "--predictions DIR with --gt DIR" in res.stderr
