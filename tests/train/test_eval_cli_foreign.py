"""prodseg-eval scores a model exported elsewhere with the same model flags as predict and bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from prodseg.train.eval_cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))
from foreign_models import SHELF10, export_semantic  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("foreign_eval")
    return {
        "static": export_semantic(d / "seg.onnx"),
        "dynamic": export_semantic(d / "dyn.onnx", dynamic=True),
    }


def evaluate(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("kind, extra", [("static", []), ("dynamic", ["--input-size", "96x128"])])
def test_semantic_onnx_with_flags_only(models, tiny_dataset: Path, tmp_path: Path, kind: str, extra) -> None:
    card = tmp_path / "card.json"
    res = evaluate(
        "--model",
        models[kind],
        "--data",
        tiny_dataset,
        "--task",
        "semantic",
        "--names",
        tiny_dataset / "classes.yaml",
        *extra,
        "--save-card",
        card,
    )
    assert res.exit_code == 0, res.output
    assert "mIoU" in res.output
    assert json.loads(card.read_text())["class_names"] == SHELF10


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--task", "semantic", "--names", "a,b"], "--names gives 2 names but the model outputs 10 classes"),
        (["--task", "semantic"], "has no prodseg metadata; describe the model with --task"),
        (["--mean", "1,2"], "--mean 1,2: give 3 comma-separated numbers"),
        (["--task", "panoptic"], "--task panoptic: choose one of semantic, yolo-seg"),
        (
            ["--task", "semantic", "--names", ",".join(SHELF10), "--input-size", "65x64"],
            "takes a fixed 64x64 input",
        ),
    ],
)
def test_bad_model_flags_are_one_line(models, tiny_dataset: Path, tmp_path: Path, args, phrase: str) -> None:
    res = evaluate(
        "--model",
        models["static"],
        "--data",
        tiny_dataset,
        *args,
        "--report",
        tmp_path / "rep",
        "--save-card",
        tmp_path / "card.json",
    )
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert phrase in lines[0] and "Traceback" not in res.output
    assert not (tmp_path / "rep").exists() and not (tmp_path / "card.json").exists()


def test_model_flags_need_a_model(tiny_dataset: Path, tmp_path: Path) -> None:
    res = evaluate("--predictions", tmp_path, "--data", tiny_dataset, "--task", "semantic")
    assert res.exit_code == 2 and "--task: describe a --model" in res.output
