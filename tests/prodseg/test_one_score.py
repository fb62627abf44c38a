"""Export verification, prodseg-eval and prodseg-bench score the same predictions to the same mIoU.

All three count through prodseg.metrics; this feeds each one's own scoring loop the same label maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from prodseg.bench.accuracy import VideoAccuracy
from prodseg.classes import ClassMatch
from prodseg.data.imageio import write_image, write_mask
from prodseg.data.layout import Sample
from prodseg.metrics import ConfusionMatrix

rng = np.random.default_rng(7)
TRUTHS = [rng.integers(0, 4, (12, 16)).astype(np.uint8) for _ in range(3)]
for t in TRUTHS:
    t[0, :3] = 255  # ignore pixels
PREDS = [
    np.where(rng.random(t.shape) < 0.7, np.where(t == 255, 0, t), rng.integers(0, 4, t.shape)).astype(
        np.uint8
    )
    for t in TRUTHS
]


@dataclass
class Saved:
    """Predictions by image index, as every scorer asks for them."""

    maps: list[np.ndarray]
    class_names = None

    def __call__(self, stem: str, image: np.ndarray) -> np.ndarray:
        return self.maps[int(stem)]


def test_the_three_scorers_agree(tmp_path: Path) -> None:
    from prodseg.export.artifacts import Artifact
    from prodseg.export.verify import compare
    from prodseg.train.evaluate import Item, score

    core = ConfusionMatrix(4)
    for t, p in zip(TRUTHS, PREDS, strict=True):
        core.update(t, p)
    expected = core.scores().miou

    items = []
    for i, t in enumerate(TRUTHS):
        write_mask(tmp_path / f"{i}.png", t)
        write_image(tmp_path / f"{i}.jpg", np.zeros((*t.shape, 3), np.uint8))
        items.append(Item(str(i), tmp_path / f"{i}.jpg", tmp_path / f"{i}.png"))
    names, colors = ["a", "b", "c", "d"], [[0, 0, 0]] * 4
    evaluated = score(Saved(PREDS), items, names, colors, tmp_path / "classes.yaml", 0, None, None)

    video = VideoAccuracy(4)
    for i, (t, p) in enumerate(zip(TRUTHS, PREDS, strict=True)):
        video.update(i, t, p)

    calls = iter(range(len(PREDS)))
    shown: dict[str, int] = {}

    class Runner:  # the artifact's and PyTorch's label maps are both the saved prediction of the image
        meta = SimpleNamespace(num_classes=4)
        input_size = (12, 16)

        def preprocess(self, image: np.ndarray) -> tuple[dict, int]:
            i = next(calls)
            return {"x": np.zeros(1)}, i

        def infer(self, feed: dict) -> dict:
            return {"x": np.zeros(1)}

        def postprocess(self, out: dict, i: int) -> SimpleNamespace:
            return SimpleNamespace(label_map=PREDS[i])

    class Reference:
        def outputs(self, key: str, image: np.ndarray, size: tuple[int, int]) -> dict:
            shown[key] = 1
            return {"x": np.zeros(1)}

    samples = [Sample(str(i), tmp_path / f"{i}.jpg", tmp_path / f"{i}.png") for i in range(len(TRUTHS))]
    row = compare(
        Artifact("onnx", tmp_path / "m.onnx", "fp32"), Runner(), samples, Reference(), ClassMatch(None)
    )
    assert evaluated.metrics["miou"] == pytest.approx(expected, abs=0)
    assert video.result().miou == pytest.approx(expected, abs=0)
    assert row.miou == pytest.approx(expected, abs=0) and row.miou_torch == row.miou and row.agreement == 1.0
