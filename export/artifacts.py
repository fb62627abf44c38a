"""What an export run produced: one record per artifact, and the shared state exporters build on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prodseg.export.calibration import CalibrationSet
from prodseg.export.config import ExportConfig
from prodseg.export.source import ExportSource
from prodseg.runtime.facts import SUFFIX_BACKENDS


@dataclass
class Artifact:
    """One written artifact and how the runtime should load it."""

    name: str
    path: Path
    precision: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return SUFFIX_BACKENDS[self.path.suffix]  # the runtime backend that loads this kind


@dataclass
class ExportContext:
    """Everything exporters share: options, source model, output folder and artifacts so far.

    `out` is the folder being built: a temporary sibling of the final folder, swapped in when complete.
    """

    config: ExportConfig
    source: ExportSource
    out: Path
    calib_images: list[Path] = field(default_factory=list)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    _calib: CalibrationSet | None = None

    def add(self, artifact: Artifact) -> Artifact:
        self.artifacts[artifact.name] = artifact
        return artifact

    def path(self, name: str) -> Path:
        """The path of an artifact already exported in this run."""
        return self.artifacts[name].path

    @property
    def calibration(self) -> CalibrationSet:
        """Calibration feeds, preprocessed by the runtime loaded on the FP32 ONNX (same as inference).

        The quantizers run the exported graph itself, which takes normalised float NCHW input: the
        runtime must not move normalisation into the model here (fuse_preprocess=False).
        """
        if self._calib is None:
            from prodseg.runtime import load

            predictor = load(self.path("onnx"), backend="onnxruntime", device="cpu", fuse_preprocess=False)
            self._calib = CalibrationSet(self.calib_images, lambda rgb: predictor.preprocess(rgb)[0])
        return self._calib
