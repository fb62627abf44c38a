"""--gt-masks are read by class name: a reordered classes.yaml gives the same mIoU, other names exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from prodseg.bench.cli import main
from prodseg.data.imageio import read_mask, write_mask
from prodseg.data.taxonomy import SHELF10

pytestmark = pytest.mark.slow  # exports a tiny model once per session


def _bench(video, model, masks, tmp_path, *extra):
    out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
    res = CliRunner().invoke(
        main,
        [
            str(a)
            for a in (
                video,
                "--model",
                model,
                "--frames",
                8,
                "--warmup",
                1,
                "--gt-masks",
                masks,
                "--json",
                out,
                *extra,
            )
        ],
    )
    doc = json.loads(out.read_text()) if res.exit_code == 0 else None
    return res, doc


def test_reordered_truth_classes_score_the_same(tiny_video, tiny_artifacts, tmp_path):
    video, masks = tiny_video
    res, doc = _bench(video, tiny_artifacts["onnx"], masks, tmp_path)
    assert res.exit_code == 0, res.output
    original = doc["results"][0]["accuracy"]
    assert original["classes"] == list(SHELF10.names)  # no classes.yaml: the shelf10 default, as the model
    reordered = tmp_path / "reordered"
    shutil.copytree(masks, reordered)
    order = list(range(10))[::-1]
    new_of_old = np.arange(256, dtype=np.uint8)
    new_of_old[order] = np.arange(10, dtype=np.uint8)
    for mask in reordered.glob("*.png"):
        write_mask(mask, new_of_old[read_mask(mask)])
    (reordered / "classes.yaml").write_text(
        yaml.safe_dump(
            {"names": [SHELF10.names[o] for o in order], "colors": [list(SHELF10.colors[o]) for o in order]}
        )
    )
    res, doc = _bench(video, tiny_artifacts["onnx"], reordered, tmp_path)
    assert res.exit_code == 0, res.output
    remapped = doc["results"][0]["accuracy"]
    assert remapped["miou"] == original["miou"]
    assert remapped["iou"] == [original["iou"][o] for o in order]


def test_other_truth_classes_or_an_unknown_taxonomy_exit_2(tiny_video, tiny_artifacts, tmp_path):
    video, masks = tiny_video
    other = tmp_path / "other"
    shutil.copytree(masks, other)
    names = [*SHELF10.names[:-1], "logo"]
    (other / "classes.yaml").write_text(
        yaml.safe_dump({"names": names, "colors": [list(c) for c in SHELF10.colors]})
    )
    res, _ = _bench(video, tiny_artifacts["onnx"], other, tmp_path)
    assert res.exit_code == 2 and "have different classes" in res.stderr and "logo" in res.stderr
    mine = ",".join(f"c{i}" for i in range(10))  # the model described with other names
    res, _ = _bench(video, tiny_artifacts["onnx"], masks, tmp_path, "--names", mine)
    assert res.exit_code == 2 and "pass --gt-classes FILE" in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == [res.stderr.splitlines()[-1]]  # one error line (a busy-machine warning may precede it)
