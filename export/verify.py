"""Verification: every artifact through the runtime vs PyTorch on the same preprocessed held-out images."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from prodseg.classes import ClassMatch
from prodseg.data.imageio import read_image, read_mask
from prodseg.data.layout import Sample
from prodseg.export.artifacts import Artifact
from prodseg.export.config import Thresholds
from prodseg.export.source import ExportSource
from prodseg.metrics import ConfusionMatrix
from prodseg.runtime.facts import size_mb

log = logging.getLogger(__name__)

# OpenVINO runs float models in bf16 on CPUs with AMX/AVX512-BF16 unless told otherwise: verify what the
# artifact itself computes (its weights at their precision, f32 arithmetic); the bench measures defaults.
RUNNER_OPTS: dict[tuple[str, str], dict[str, Any]] = {
    ("openvino", "fp32"): {"inference_precision": "f32"},
    ("openvino", "fp16"): {"inference_precision": "f32"},
}


@dataclass
class VerifyRow:
    """One artifact's distance from PyTorch, as fractions: label-map agreement, mIoU of both, and
    delta_miou = PyTorch mIoU - artifact mIoU (0.01 = one point)."""

    artifact: str
    path: str
    precision: str
    backend: str
    size_mb: float
    max_abs_diff: float
    agreement: float
    miou: float
    miou_torch: float
    delta_miou: float
    infer_ms: float
    status: str = "ok"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TorchReference:
    """PyTorch's side of every comparison: the checkpoint through the runtime's torch runner.

    Verification is "the same image, letterboxed to the same size, through runner A and runner B": the
    artifact's runner and this one. Each prepares its own input (a backend may take uint8 pixels and
    normalise inside the model); the size is the artifact's, which may differ from the training size.
    Outputs are cached per (image, size) because every artifact is compared with them.
    """

    def __init__(self, source: ExportSource):
        from prodseg.runtime import load

        self.predictor = load(source.checkpoint, backend="torch", device="cpu")
        self._cache: dict[tuple[str, tuple[int, int]], dict[str, np.ndarray]] = {}

    def outputs(self, key: str, image: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
        if (key, size) not in self._cache:
            self.predictor.input_size = size  # fully convolutional: runs at whatever size was exported
            feed, _ = self.predictor.preprocess(image)
            self._cache[key, size] = self.predictor.infer(feed)
        return self._cache[key, size]

    def close(self) -> None:
        self.predictor.close()


def max_abs_diff(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> float:
    """Largest |artifact - torch| over outputs matched by name, else by position."""
    got_list = [got[n] for n in ref] if set(ref) <= set(got) else list(got.values())
    pairs = zip(got_list, ref.values(), strict=True)
    return max(float(np.abs(g.astype(np.float32) - r).max()) for g, r in pairs)


def verify_artifact(
    artifact: Artifact,
    samples: list[Sample],
    ref: TorchReference,
    thresholds: Thresholds,
    classes: ClassMatch,
) -> VerifyRow:
    """Run one artifact through prodseg.runtime on the samples and compare it with PyTorch."""
    from prodseg.runtime import load

    opts = RUNNER_OPTS.get((artifact.backend, artifact.precision), {})
    device = "cuda" if artifact.backend == "tensorrt" else "cpu"  # engines run on the GPU they were built on
    with load(artifact.path, backend=artifact.backend, device=device, **opts) as predictor:
        return judge(compare(artifact, predictor, samples, ref, classes), thresholds)


def compare(
    artifact: Artifact, predictor: Any, samples: list[Sample], ref: TorchReference, classes: ClassMatch
) -> VerifyRow:
    """Outputs, label maps and mIoU of one loaded artifact vs PyTorch on the samples.

    Agreement compares the two label maps as the model numbers its classes; mIoU reads them in the
    data's numbering (`classes`), against the data's masks.
    """
    n = classes.data_classes if classes.lut is not None else predictor.meta.num_classes
    mats = {"art": ConfusionMatrix(n), "ref": ConfusionMatrix(n)}
    same = total = 0
    diff = 0.0
    infer_ms: list[float] = []
    for s in samples:
        image = read_image(s.image)
        feed, ctx = predictor.preprocess(image)
        t0 = time.perf_counter()
        got = predictor.infer(feed)
        infer_ms.append(1000 * (time.perf_counter() - t0))
        ref_out = ref.outputs(s.stem, image, predictor.input_size)
        diff = max(diff, max_abs_diff(got, ref_out))
        art_map = predictor.postprocess(got, ctx).label_map
        ref_map = predictor.postprocess(dict(ref_out), ctx).label_map
        gt = read_mask(s.mask) if s.mask is not None else None
        same += int((art_map == ref_map).sum())
        total += art_map.size
        if gt is not None:
            mats["art"].update(gt, classes.apply(art_map), where=str(s.mask))
            mats["ref"].update(gt, classes.apply(ref_map), where=str(s.mask))
    m_art, m_ref = mats["art"].scores().miou, mats["ref"].scores().miou
    return VerifyRow(
        artifact.name,
        str(artifact.path),
        artifact.precision,
        artifact.backend,
        round(size_mb(artifact.path), 3),
        diff,
        same / max(total, 1),
        m_art,
        m_ref,
        m_ref - m_art,
        float(np.median(infer_ms)),
    )


def judge(row: VerifyRow, t: Thresholds) -> VerifyRow:
    """Mark a row 'WARN' when it misses its precision's threshold (agreement, or ΔmIoU for int8)."""
    if row.precision == "int8":
        if not row.delta_miou <= t.int8_delta_miou:
            row.status, row.note = (
                "WARN",
                (f"ΔmIoU {100 * row.delta_miou:.2f} > {100 * t.int8_delta_miou:g} points"),
            )
        return row
    need = {"fp32": t.fp32_agreement, "fp16": t.fp16_agreement, "bf16": t.bf16_agreement}[row.precision]
    if not row.agreement >= need:
        row.status, row.note = "WARN", f"agreement {100 * row.agreement:.3f}% < {100 * need:g}%"
    return row


def verify_all(
    artifacts: list[Artifact],
    source: ExportSource,
    samples: list[Sample],
    thresholds: Thresholds,
    classes: ClassMatch | None = None,
) -> list[VerifyRow]:
    """Verify every artifact on the same samples against one cached PyTorch reference."""
    ref = TorchReference(source)
    rows = []
    try:
        for art in artifacts:
            log.info("verifying %s through the %s runtime on %d images", art.name, art.backend, len(samples))
            rows.append(verify_artifact(art, samples, ref, thresholds, classes or ClassMatch(None)))
    finally:
        ref.close()
    return rows
