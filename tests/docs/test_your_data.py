"""The "Your own data" guide's five commands, run on a fixture export of every labelling tool it names.

Each export (built by tests/data/tool_exports.py around OpenCV shapes, laid out as the tool writes it)
carries the user's classes — background, bottle, can — which must reach classes.yaml, the checkpoint,
the exported model, prodseg-bench's JSON, prodseg-eval's report and prodseg-predict's JSONL.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.data import tool_exports
from tests.docs.test_examples import read_blocks, run_env

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "your-data.md"
MARKER = "<!-- your-data: five commands -->"
TOOLS = [
    "cvat_coco",
    "cvat_segmentation_mask",
    "roboflow_coco",
    "roboflow_yolo",
    "ultralytics_yolo",
    "labelme",
]


def five_commands() -> str:
    """The guide's block right after the marker, as written."""
    text = GUIDE.read_text()
    line = text[: text.index(MARKER)].count("\n") + 1
    block = next(b for b in read_blocks(GUIDE) if b.line > line)
    assert block.text.count("\n") >= 4 and "prodseg-data convert my_export" in block.text, block.text
    return block.text


def run(script: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{script}\n--- stderr (end)\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def shelf_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("video")
    run("prodseg-data video shelf.mp4 --frames 12 --size 160x96", folder)
    return folder / "shelf.mp4"


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_five_commands_carry_the_users_classes(tool: str, tmp_path: Path, shelf_video: Path) -> None:
    getattr(tool_exports, tool)(tmp_path / "my_export")
    (tmp_path / "shelf.mp4").symlink_to(shelf_video)
    names = list(tool_exports.NAMES)
    run(five_commands(), tmp_path)
    assert yaml.safe_load((tmp_path / "data/mine/classes.yaml").read_text())["names"] == names
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert [r["classes"] for r in bench["results"]] == [names, names]
    assert {r["label"] for r in bench["results"]} == {"exported/model.onnx", "openvino/model.xml"}
    run(
        "prodseg-eval --model exported/model.onnx --data data/mine --report eval_report\n"
        "prodseg-predict shelf.mp4 --model exported/model.onnx --out predictions --max-frames 3",
        tmp_path,
    )
    report = (tmp_path / "eval_report/report.md").read_text()
    assert all(re.search(rf"\| {name} \|", report) for name in names), report
    assert json.loads((tmp_path / "predictions/summary.json").read_text())["classes"] == names
    first = json.loads((tmp_path / "predictions/predictions.jsonl").read_text().splitlines()[0])
    assert set(first["class_pixels"]) <= set(names)
