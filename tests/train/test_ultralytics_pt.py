"""ultralytics `.pt` files are read without executing anything from them; every other global is refused."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from prodseg.config import ModelConfig
from prodseg.errors import BadInput
from prodseg.train.models import build_model
from prodseg.train.ultralytics_pt import load_ultralytics_checkpoint

YOLO = ModelConfig(architecture="yolov8_seg", num_classes=4, model_size="n")


@pytest.fixture(scope="module")
def ultralytics_pt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A yolov8n-seg.pt saved by ultralytics itself (from its bundled YAML), and the model's own tensors."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO as UltralyticsYOLO

    path = tmp_path_factory.mktemp("ultralytics") / "yolov8n-seg.pt"
    model = UltralyticsYOLO("yolov8n-seg.yaml", task="segment")
    model.save(str(path))
    # ultralytics saves half precision: the reference is the model's tensors rounded the same way
    state = model.model.state_dict().items()
    reference = {k: v.half().float() if v.is_floating_point() else v.clone() for k, v in state}
    return path, reference, model.model


class Payload:
    """Unpickling this would run `touch MARKER` through os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_ultralytics_saved_checkpoint_gives_the_models_own_tensors(ultralytics_pt) -> None:
    path, reference, _ = ultralytics_pt
    ckpt = load_ultralytics_checkpoint(path)
    assert set(ckpt.state_dict) == set(reference)
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in reference.items())
    assert ckpt.model_class == "ultralytics.nn.tasks.SegmentationModel" and ckpt.task == "segment"
    assert ckpt.yaml["nc"] == 80 and len(ckpt.names) == 80
    assert "ultralytics.nn.tasks" not in repr(type(ckpt.state_dict))


def test_fine_tuning_weights_load_everything_but_the_class_dependent_head(ultralytics_pt, caplog) -> None:
    path, reference, _ = ultralytics_pt
    caplog.set_level("INFO")
    model = build_model(dataclasses.replace(YOLO, weights=str(path)))
    own = model.net.state_dict()
    matching = [k for k, v in reference.items() if own[k].shape == v.shape]
    skipped = set(reference) - set(matching)
    # only the head's class branch (cv3, whose width follows the class count) is re-initialised
    assert skipped and all(k.startswith("model.22.cv3.") for k in skipped) and len(matching) > 350
    assert all(torch.equal(own[k], reference[k]) for k in matching)
    assert f"loaded {len(matching)} tensors from {path}" in caplog.text


@pytest.mark.parametrize("where", ["train_args", "model", "top"])
def test_a_payload_in_any_field_is_refused_and_runs_nothing(ultralytics_pt, tmp_path: Path, where) -> None:
    marker = tmp_path / "marker"
    evil = Payload(marker)
    crafted = {"model": ultralytics_pt[2], "ema": None, "train_args": {}, "date": "2026-01-01"}
    crafted = evil if where == "top" else {**crafted, where: evil}
    path = tmp_path / "yolov8n-seg.pt"  # named like an ultralytics release on purpose
    torch.save(crafted, path)
    with pytest.raises(BadInput, match=r"refused, it asks to run posix\.system"):
        load_ultralytics_checkpoint(path)
    with pytest.raises(BadInput, match="never executes code"):
        build_model(dataclasses.replace(YOLO, weights=str(path)))
    assert not marker.exists()


def test_the_training_cli_refuses_a_payload_with_exit_2(tmp_path: Path, tiny_dataset: Path) -> None:
    from prodseg.train.cli import main

    marker = tmp_path / "marker"
    path = tmp_path / "yolo_best.pt"
    torch.save({"model": Payload(marker)}, path)
    args = ["--arch", "yolov8_seg", "--data", tiny_dataset, "--weights", path, "--out", tmp_path / "runs"]
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    assert "never executes code" in res.stderr and res.stderr.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_an_ultralytics_checkpoint_runs_as_a_prodseg_model_with_the_same_outputs(ultralytics_pt) -> None:
    from prodseg.train.checkpoint import checkpoint_metadata, model_from_checkpoint

    path, reference, network = ultralytics_pt
    model, cfg, ckpt = model_from_checkpoint(path)
    assert (model.arch, model.num_classes, cfg.model.model_size) == ("yolov8_seg", 81, "n")
    assert cfg.data.image_size == [640, 640]
    same_weights = type(network)(network.yaml).eval()
    same_weights.load_state_dict(reference)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = model(x), same_weights(x)
    assert torch.equal(ours[0][0], theirs[0][0]) and torch.equal(ours[0][1], theirs[0][1])
    meta = checkpoint_metadata(model, cfg, ckpt, path)
    assert meta.class_names[:2] == ["background", "0"] and len(meta.class_names) == 81
    assert meta.output_kind == "yolo_seg"


def test_resume_refuses_an_ultralytics_checkpoint(ultralytics_pt) -> None:
    from prodseg.train.checkpoint import load_checkpoint

    with pytest.raises(BadInput, match="cannot be resumed; fine-tune from it with --weights"):
        load_checkpoint(ultralytics_pt[0])


FOUR = ("product", "price_label", "empty_space", "shelf_edge")


def four_class_export(root: Path) -> Path:
    """An ultralytics-style YOLO-seg export with four classes, one shape of each per image."""
    import numpy as np

    from tests.data.tool_exports import CIRCLE, RECT_POINTS, TRIANGLE, photo, yolo_line

    circle = np.array(
        [
            [CIRCLE[0][0] + int(CIRCLE[1] * np.cos(a)), CIRCLE[0][1] + int(CIRCLE[1] * np.sin(a))]
            for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)
        ]
    )
    edge = np.array([[2, 58], [77, 58], [77, 62], [2, 62]])
    shapes = [RECT_POINTS, TRIANGLE, circle, edge]
    for split, count in (("train", 4), ("val", 2)):
        for k in range(count):
            photo(root / "images" / split / f"{split}{k}.jpg", k)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{split}{k}.txt").write_text(
                "".join(yolo_line(c, s) for c, s in enumerate(shapes))
            )
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames: " + str(list(FOUR)) + "\n"
    )
    return root


@pytest.mark.slow
def test_fine_tuning_an_ultralytics_pt_on_four_user_classes(ultralytics_pt, tmp_path: Path) -> None:
    import subprocess
    import sys

    from prodseg.train.checkpoint import load_checkpoint

    export = four_class_export(tmp_path / "export")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PRODSEG_OFFLINE": "1",
        "YOLO_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    convert = ["prodseg-data", "convert", str(export), "--to", str(tmp_path / "mine")]
    subprocess.run(convert, check=True, env=env, capture_output=True)
    train = [
        "prodseg-train",
        "--arch",
        "yolov8_seg",
        "--weights",
        str(ultralytics_pt[0]),
        "--data",
        str(tmp_path / "mine"),
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--out",
        str(tmp_path / "runs"),
    ]
    res = subprocess.run(train, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = re.search(r"loaded (\d+) tensors from .*yolov8n-seg\.pt \((\d+) skipped", res.stderr)
    assert loaded and int(loaded[1]) > 350, res.stderr[-2000:]
    ckpt = load_checkpoint(next((tmp_path / "runs").glob("yolov8_seg-*/last.pt")))
    assert ckpt["class_names"] == ["background", *FOUR]
