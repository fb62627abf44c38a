"""The result of benchmarking one artifact on one video, and the versioned JSON document of a run."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prodseg.bench.accuracy import AccuracyResult
from prodseg.bench.machine import load_average, machine_info
from prodseg.bench.names import artifact_label
from prodseg.bench.stats import Stats
from prodseg.errors import BadInput
from prodseg.runtime.facts import MB, artifact_files

SCHEMA = "prodseg-bench/1"
NOT_POSTPROCESS = ("input_shape", "backend_choice")  # the predictor's settings that are not YOLO-seg's
CHUNK = 1 << 20  # bytes read at a time while hashing


def artifact_digest(artifact: str | Path) -> tuple[str, float]:
    """(sha256 over the artifact and its companions, total size in MB = 10^6 bytes)."""
    h = hashlib.sha256()
    size = 0
    for f in artifact_files(artifact):
        with f.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
    return h.hexdigest(), size / MB


@dataclass
class ModelResult:
    """Everything measured for one (artifact, backend, video) run. Timings in ms; warm-up excluded."""

    artifact: str
    sha256: str
    size_mb: float
    backend: str
    device: str
    precision: str
    arch: str
    video: str
    mode: str
    requests: int
    frames: int
    warmup: int
    wall_s: float
    stages: dict[str, Stats]
    latency: Stats  # per frame, from decode start to postprocess end
    model_only: Stats  # infer alone, on preprocessed frames of the same video
    peak_rss_mb: float
    rss_method: str
    cpu_percent: float
    cores_busy: float
    dropped: int = 0
    gpu_memory_mb: float | None = None
    gpu_memory_source: str | None = None  # TORCH_PEAK or NVML_USED (bench.memory): not comparable
    accuracy: AccuracyResult | None = None
    fps_timeline: list[tuple[float, float]] = field(default_factory=list)
    # The predictor's settings: input_shape used, YOLO-seg conf/iou/max_det, kept classes.
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # the model's name in tables and reports, unique within a run
    classes: list[str] = field(default_factory=list)  # the model's class names, background first

    @property
    def fps_e2e(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def fps_model(self) -> float:
        return 1000.0 * self.model_only.count / self.model_only.total if self.model_only.total > 0 else 0.0

    @property
    def key(self) -> str:
        """What a baseline entry must match: the same bytes on the same backend and video, same mode."""
        return f"{self.sha256}|{self.backend}|{Path(self.video).name}|{self.mode}x{self.requests}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label or artifact_label(self.artifact),
            "artifact": self.artifact,
            "sha256": self.sha256,
            "size_mb": round(self.size_mb, 3),
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "arch": self.arch,
            "classes": list(self.classes),
            "video": self.video,
            "mode": self.mode,
            "requests": self.requests,
            "frames": self.frames,
            "warmup": self.warmup,
            "dropped": self.dropped,
            "wall_s": round(self.wall_s, 4),
            "fps_e2e": round(self.fps_e2e, 3),
            "fps_model": round(self.fps_model, 3),
            "latency_ms": self.latency.as_dict(),
            "model_only_ms": self.model_only.as_dict(),
            "stages_ms": {name: s.as_dict() for name, s in self.stages.items()},
            "memory": {
                "peak_rss_mb": round(self.peak_rss_mb, 1),
                "rss_method": self.rss_method,
                "gpu_memory_mb": None if self.gpu_memory_mb is None else round(self.gpu_memory_mb, 1),
                "gpu_memory_source": self.gpu_memory_source,
            },
            "cpu": {"percent": round(self.cpu_percent, 1), "cores_busy": round(self.cores_busy, 3)},
            "accuracy": None if self.accuracy is None else self.accuracy.as_dict(),
            "fps_timeline": [[round(t, 3), round(f, 2)] for t, f in self.fps_timeline],
            "input_shape": self.settings.get("input_shape"),
            "backend_choice": self.settings.get("backend_choice"),
            "postprocess": {k: v for k, v in self.settings.items() if k not in NOT_POSTPROCESS},
        }


def run_document(results: list[ModelResult], settings: dict[str, Any]) -> dict[str, Any]:
    """The `--json` / baseline document: schema version, machine, settings, one entry per run."""
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_1m": load_average(),
        "settings": settings,
        "results": [r.as_dict() for r in results],
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


# What the gates read from a saved document: field -> (check, what it must be).
DOCUMENT_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "machine": (lambda v: isinstance(v, dict), "an object"),
    "results": (lambda v: isinstance(v, list), "a list"),
}
RESULT_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "key": (lambda v: isinstance(v, str), "a string"),
    "fps_e2e": (_is_number, "a finite number >= 0"),
    "fps_model": (_is_number, "a finite number >= 0"),
}


def _problem(doc: dict[str, Any]) -> str | None:
    """The first field the gates would trip over, as 'where: what is wrong', else None."""
    checks = [("", doc, DOCUMENT_FIELDS)]
    checks += [(f"results[{i}].", r, RESULT_FIELDS) for i, r in enumerate(doc.get("results") or [])]
    for prefix, obj, fields in checks:
        if not isinstance(obj, dict):
            return f"{prefix[:-1]} is {type(obj).__name__}, not an object"
        for name, (ok, what) in fields.items():
            if name not in obj:
                return f"'{prefix}{name}' is missing"
            if not ok(obj[name]):
                return f"'{prefix}{name}' is {obj[name]!r}, not {what}"
    return None


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a saved `--json`/`--save-baseline` document, checking its schema and the fields gates read."""
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise BadInput(f"--baseline {path}: {what}; record one with --save-baseline FILE")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"--baseline {path}: not valid JSON ({exc}); record it again with --save-baseline"
        ) from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise BadInput(
            f"--baseline {path}: schema {found!r} is not {SCHEMA!r}; record it again with --save-baseline"
        )
    problem = _problem(doc)
    if problem is not None:
        raise BadInput(
            f"--baseline {path}: {problem} (edited by hand?); record it again with --save-baseline"
        )
    return doc
