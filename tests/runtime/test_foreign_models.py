"""Models exported elsewhere run with the model flags; outputs are matched by shape; runner options typed."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import prodseg.runtime as rt
from prodseg.errors import BadInput
from prodseg.metadata import sidecar_path
from prodseg.runtime.cli import main as predict_main
from prodseg.runtime.facts import classify_outputs, size_mb
from prodseg.runtime.model_options import ModelFlags, ModelSpec, parse_input_size
from prodseg.runtime.predictor import aspect_size

sys.path.insert(0, str(Path(__file__).parent))
from foreign_models import SHELF10, YOLO_NAMES, export_semantic, export_yolo, ultralytics_openvino  # noqa: E402

NAMES = ",".join(SHELF10)
SEMANTIC = ModelSpec(task="semantic_logits", names=SHELF10)
YOLO = ["--task", "yolo-seg", "--names", ",".join(YOLO_NAMES)]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("foreign")
    yolo = export_yolo(d / "yolo.onnx")
    return {
        "static": export_semantic(d / "seg.onnx"),
        "dynamic": export_semantic(d / "dyn.onnx", dynamic=True),
        "yolo": yolo,
        "yolo_swapped": export_yolo(d / "yolo_swapped.onnx", swap=True),
        "ultra_ir": ultralytics_openvino(d / "yolo_openvino_model", yolo),
    }


def predict(*args: object) -> object:
    return CliRunner().invoke(predict_main, [str(a) for a in args])


@pytest.mark.parametrize(
    "shapes, kind, roles, classes",
    [
        ([(1, 10, 64, 64)], "semantic_logits", {"logits": 0}, 10),
        ([(1, 10, "h", "w")], "semantic_logits", {"logits": 0}, 10),
        ([(1, 39, 64), (1, 32, 8, 8)], "yolo_seg", {"pred": 0, "protos": 1}, 3),
        ([(1, 32, 8, 8), (1, 39, 64)], "yolo_seg", {"pred": 1, "protos": 0}, 3),
        ([(1, "c", "n"), (1, 32, "h", "w")], "yolo_seg", {"pred": 0, "protos": 1}, None),
    ],
)
def test_outputs_are_classified_by_shape(shapes, kind, roles, classes) -> None:
    layout = classify_outputs(shapes)
    assert (layout.kind, layout.roles, layout.num_classes) == (kind, roles, classes)


@pytest.mark.parametrize("shapes", [[(1, 10)], [(1, 39, 64), (1, 16, 8, 8)], [(1, 3, 8, 8)] * 2, []])
def test_unknown_output_shapes_are_named(shapes) -> None:
    with pytest.raises(BadInput, match="neither semantic logits"):
        classify_outputs(shapes, "m.onnx")


def test_sizes_in_mb_are_10_to_the_6(tmp_path: Path) -> None:
    (tmp_path / "m.xml").write_bytes(b"x" * 500_000)
    (tmp_path / "m.bin").write_bytes(b"x" * 1_500_000)
    assert size_mb(tmp_path / "m.xml") == 2.0


@pytest.mark.parametrize("text, size", [("64", (64, 64)), ("480x640", (480, 640)), ("96,128", (96, 128))])
def test_input_size_parses(text: str, size: tuple[int, int]) -> None:
    assert parse_input_size(text) == size


@pytest.mark.parametrize(
    "raw, phrase",
    [
        ({"input_size": "abc"}, "--input-size abc: give HxW"),
        ({"input_size": "0x64"}, "from 1 to 16384"),
        ({"mean": "0.5,0.5"}, "--mean 0.5,0.5: give 3"),
        ({"std": "1,0,1"}, "must be > 0"),
        ({"task": "detect"}, "--task detect: choose one of semantic, yolo-seg"),
        ({"names": "a,,b"}, "without empty"),
        ({"names": "a,b,a"}, "'a' appears twice"),
        ({"resize": "crop"}, "choose one of stretch, letterbox"),
        ({"conf": "2"}, "from 0 to 1"),
        ({"max_det": "0"}, "at least 1"),
        ({"names": "nope.yaml"}, "nope.yaml: --names file not found"),
    ],
)
def test_bad_flag_values_are_bad_input(raw: dict, phrase: str) -> None:
    with pytest.raises(BadInput, match=phrase.replace("(", r"\(")):
        ModelFlags(raw).spec()


def test_aspect_size_rounds_to_the_stride() -> None:
    assert aspect_size((640, 640), (1080, 1920)) == (384, 640)
    assert aspect_size((128, 128), (96, 160)) == (96, 128)
    assert aspect_size((100, 100), (1920, 1080)) == (128, 96)


def test_runner_options_are_typed(foreign) -> None:
    with pytest.raises(
        BadInput,
        match="onnxruntime: unknown runner option 'hint'; valid options: "
        "graph_optimization, allow_spinning, providers",
    ):
        rt.load(foreign["yolo"], backend="onnxruntime", hint="LATENCY")
    with pytest.raises(BadInput, match="openvino: hint 'FAST' is not one of LATENCY"):
        rt.load(foreign["ultra_ir"], hint="fast")


def test_a_model_without_metadata_names_the_flags(foreign) -> None:
    with pytest.raises(
        BadInput,
        match=r"has no prodseg metadata; describe the model with --task "
        r"semantic\|yolo-seg and --names .* --save-card .*seg\.json",
    ):
        rt.load(foreign["static"])


def test_semantic_onnx_runs_with_flags_and_its_card(foreign, tiny_video, tmp_path: Path) -> None:
    card = tmp_path / "seg.json"
    res = predict(
        tiny_video[0],
        "--model",
        foreign["static"],
        "--out",
        tmp_path / "o",
        "--task",
        "semantic",
        "--names",
        NAMES,
        "--max-frames",
        3,
        "--save-card",
        card,
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["settings"]["input_shape"] == [1, 3, 64, 64]
    meta = json.loads(card.read_text())
    assert meta["class_names"] == SHELF10 and meta["output_kind"] == "semantic_logits"
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["resize"] == "resize"
    # the card beside the model: later runs need no flags
    copy = tmp_path / "seg.onnx"
    copy.write_bytes(foreign["static"].read_bytes())
    assert sidecar_path(copy) == card
    assert rt.load(copy).meta.class_names == SHELF10


def test_dynamic_onnx_needs_input_size_then_follows_the_video(foreign, tiny_video, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="dynamic input height/width and no metadata; give --input-size"):
        rt.load(foreign["dynamic"], spec=SEMANTIC)
    with pytest.raises(BadInput, match="a dynamic model needs multiples of 32"):
        rt.load(foreign["dynamic"], spec=dataclasses.replace(SEMANTIC, input_size=(65, 64)))
    res = predict(
        tiny_video[0],
        "--model",
        foreign["dynamic"],
        "--out",
        tmp_path / "o",
        "--task",
        "semantic",
        "--names",
        NAMES,
        "--input-size",
        "64x96",
        "--max-frames",
        2,
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["settings"]["input_shape"] == [1, 3, 64, 96]
    # nominal 128 from a card: a 160x96 video runs at its own aspect, rounded to 32
    p = rt.load(foreign["dynamic"], spec=dataclasses.replace(SEMANTIC, input_size=(128, 128)))
    card = tmp_path / "dyn.json"
    card.write_text(json.dumps(p.meta.to_dict()))
    copy = tmp_path / "dyn.onnx"
    copy.write_bytes(foreign["dynamic"].read_bytes())
    with rt.load(copy) as q:
        assert q.adapt_to((96, 160)) == (96, 128)
        assert q.predict(np.zeros((96, 160, 3), np.uint8)).label_map.shape == (96, 160)


def test_flags_override_metadata_and_say_so(deeplab, shelf_frame, caplog) -> None:
    caplog.set_level("INFO", "prodseg.runtime")
    p = rt.load(deeplab[0], spec=ModelSpec(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]))
    assert p.meta.mean == [0.5, 0.5, 0.5] and p.meta.arch == "deeplabv3plus"
    assert "deeplab.onnx: --mean, --std override the model's own metadata" in caplog.text
    with pytest.raises(BadInput, match="--conf: apply to YOLO-seg models"):
        rt.load(deeplab[0], spec=ModelSpec(conf=0.5))


def test_yolo_outputs_in_either_order_agree(foreign, shelf_frame) -> None:
    spec = ModelSpec(task="yolo_seg", names=YOLO_NAMES)
    a = rt.load(foreign["yolo"], spec=spec).predict(shelf_frame)
    b = rt.load(foreign["yolo_swapped"], spec=spec).predict(shelf_frame)
    assert len(a.instances) > 0 and np.array_equal(a.label_map, b.label_map)
    assert [d.class_id for d in a.instances] == [d.class_id for d in b.instances]


def test_nameless_openvino_outputs_run_and_agree_with_onnx(foreign, shelf_frame) -> None:
    ov = rt.load(foreign["ultra_ir"], inference_precision="f32")  # ultralytics' metadata.yaml
    assert ov.runner.output_names == ["output0", "output1"] and ov.meta.class_names[1:] == YOLO_NAMES
    ort = rt.load(foreign["yolo"], backend="onnxruntime", spec=ModelSpec(task="yolo_seg", names=YOLO_NAMES))
    a, b = ov.predict(shelf_frame), ort.predict(shelf_frame)
    assert len(a.instances) == len(b.instances) > 0 and (a.label_map == b.label_map).mean() > 0.99


def test_conf_iou_max_det_and_classes(foreign, tiny_video, tmp_path: Path) -> None:
    res = predict(
        tiny_video[0],
        "--model",
        foreign["ultra_ir"],
        "--out",
        tmp_path / "o",
        "--max-frames",
        2,
        "--conf",
        "0.3",
        "--iou",
        "0.5",
        "--max-det",
        "4",
        "--classes",
        "can,1",
    )
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "o" / "summary.json").read_text())["settings"]
    assert settings == {
        "input_shape": [1, 3, 64, 64],
        "conf": 0.3,
        "iou": 0.5,
        "max_det": 4,
        "classes": ["bottle", "can"],
    }
    records = [json.loads(line) for line in (tmp_path / "o" / "predictions.jsonl").read_text().splitlines()]
    found = [d for r in records for d in r["instances"]]
    assert found and len(found) <= 8 and {d["class_id"] for d in found} <= {1, 2}
    assert min(d["score"] for d in found) > 0.3
    res = predict(tiny_video[0], "--model", foreign["ultra_ir"], "--classes", "cat")
    assert res.exit_code == 2 and "--classes cat: not a class of this model" in res.output


def test_precision_flags_need_a_checkpoint(foreign, checkpoint, tiny_video, tmp_path: Path) -> None:
    res = predict(
        tiny_video[0], "--model", foreign["yolo"], *YOLO, "--backend", "onnxruntime", "--precision", "bf16"
    )
    assert res.exit_code == 2 and "--precision: applies to torch and openvino runs only" in res.output
    res = predict(
        tiny_video[0],
        "--model",
        checkpoint,
        "--precision",
        "bf16",
        "--channels-last",
        "--max-frames",
        2,
        "--out",
        tmp_path / "o",
    )
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def ultralytics_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolov8n-seg.pt as ultralytics itself saves it (random weights, 80 classes, 640)."""
    YOLO = pytest.importorskip("ultralytics", reason="ultralytics is a training extra").YOLO

    path = tmp_path_factory.mktemp("ultralytics") / "yolov8n-seg.pt"
    YOLO("yolov8n-seg.yaml", task="segment").save(str(path))
    return path


@pytest.mark.slow
def test_ultralytics_pt_predicts_on_cpu(ultralytics_pt: Path, tiny_video, tmp_path: Path) -> None:
    res = predict(
        tiny_video[0],
        "--model",
        ultralytics_pt,
        "--device",
        "cpu",
        "--out",
        tmp_path / "o",
        "--max-frames",
        2,
        "--conf",
        "0.5",
        "--precision",
        "bf16",
        "--channels-last",
        "--threads",
        1,
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["backend"] == "torch" and summary["frames"] == 2
    assert summary["settings"]["input_shape"] == [1, 3, 640, 640] and summary["settings"]["conf"] == 0.5
