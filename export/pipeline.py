"""`run_export`: checks first, then the exporters in registry order, verification, table and manifest."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prodseg.atomic import ensure_writable_dir
from prodseg.errors import BadInput, GateFailed
from prodseg.export.artifacts import Artifact, ExportContext
from prodseg.export.config import ExportConfig
from prodseg.export.images import calibration_images, is_dataset, verification_samples
from prodseg.export.registry import EXPORTERS
from prodseg.export.report import render_table, write_manifest
from prodseg.export.source import load_source
from prodseg.export.verify import VerifyRow, verify_all

log = logging.getLogger(__name__)
MANIFEST = "export_manifest.json"


@dataclass
class ExportResult:
    out: Path
    artifacts: list[Artifact]
    rows: list[VerifyRow] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def warnings(self) -> list[VerifyRow]:
        return [r for r in self.rows if r.status != "ok"]


def preflight(cfg: ExportConfig) -> Path:
    """Fail before any work: TensorRT/GPU for --trt, the checkpoint, a writable output folder."""
    if cfg.wants("trt"):
        from prodseg.export.trt import require_tensorrt

        require_tensorrt()
    if not cfg.checkpoint.is_file():
        raise BadInput(f"{cfg.checkpoint}: checkpoint not found; "
                       "pass a best.pt/last.pt written by prodseg-train")
    return ensure_writable_dir(cfg.out_dir)


def dataset_for(cfg: ExportConfig, config_root: str) -> Path:
    """The labelled dataset that verifies (and by default calibrates): --calib-data, else the config's."""
    if cfg.calib_data is not None and is_dataset(cfg.calib_data):
        return cfg.calib_data
    root = Path(config_root)
    if not is_dataset(root):
        raise BadInput(f"{root}: the checkpoint's dataset folder is not here; pass a labelled dataset with "
                       "--calib-data DIR (or --no-verify)")
    return root


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export every requested artifact, verify each through the runtime, write the manifest."""
    out = preflight(cfg)
    source = load_source(cfg.checkpoint)
    data_root = dataset_for(cfg, source.config.data.root) if cfg.verify else None
    samples = verification_samples(data_root, cfg.verify_images) if data_root else []
    ctx = ExportContext(cfg, source, out)
    if cfg.wants("int8"):
        calib_dir = cfg.calib_data or data_root or Path(source.config.data.root)
        ctx.calib_images = calibration_images(calib_dir, cfg.calib_images, {s.stem for s in samples})
    t0 = time.perf_counter()
    for name in ("onnx", *[f for f in EXPORTERS if f != "onnx" and cfg.wants(f)]):
        EXPORTERS[name](ctx)
    result = ExportResult(out, list(ctx.artifacts.values()))
    log.info("exported %d artifacts in %.1f s", len(result.artifacts), time.perf_counter() - t0)
    if cfg.verify:
        result.rows = verify_all(result.artifacts, source, samples, cfg.thresholds)
        render_table(result.rows)
    result.manifest = write_manifest(out / MANIFEST, manifest(cfg, ctx, result, samples))
    if result.warnings:
        msg = "; ".join(f"{r.artifact}: {r.note}" for r in result.warnings)
        if cfg.strict:
            raise GateFailed(f"verification failed (--strict): {msg}")
        log.warning("verification warnings: %s", msg)
    return result


def manifest(cfg: ExportConfig, ctx: ExportContext, result: ExportResult, samples: list) -> dict[str, Any]:
    """The manifest payload: source, options, artifacts (with metadata) and verification rows."""
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("checkpoint", "out")}
    return {
        "checkpoint": str(cfg.checkpoint),
        "source_checkpoint_sha256": ctx.source.meta.source_checkpoint_sha256,
        "metadata": ctx.source.meta.to_dict(),
        "options": options,
        "artifacts": [{"name": a.name, "path": str(a.path.relative_to(result.out)), "precision": a.precision,
                       "backend": a.backend, **a.info} for a in result.artifacts],
        "verification": {"images": [s.stem for s in samples], "rows": [r.to_dict() for r in result.rows]},
        "calibration_images": [str(p) for p in ctx.calib_images],
    }
