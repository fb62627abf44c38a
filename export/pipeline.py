"""`run_export`: checks first, then the exporters in registry order, verification, table and manifest."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prodseg.classes import ClassMatch, match_classes
from prodseg.data.layout import ShelfDataset
from prodseg.errors import BadInput, GateFailed
from prodseg.export.artifacts import Artifact, ExportContext
from prodseg.export.config import ExportConfig
from prodseg.export.files import MANIFEST, check_output_folder, export_folder, leftovers, relocate
from prodseg.export.images import calibration_images, folder_images, is_dataset, verification_samples
from prodseg.export.registry import EXPORTERS, NEEDS, WRITES
from prodseg.export.report import render_table, write_manifest
from prodseg.export.source import ExportSource, load_source
from prodseg.export.verify import VerifyRow, verify_all

log = logging.getLogger(__name__)


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
    """Fail before any work: TensorRT/GPU for --trt, the checkpoint, --calib-data, the output folder."""
    if cfg.wants("trt"):
        from prodseg.export.trt import require_tensorrt

        require_tensorrt()
    if not cfg.checkpoint.is_file():
        what = "is a folder, not a checkpoint" if cfg.checkpoint.is_dir() else "checkpoint not found"
        raise BadInput(f"{cfg.checkpoint}: {what}; pass a best.pt/last.pt written by prodseg-train")
    if cfg.calib_data is not None:
        folder_images(cfg.calib_data)
    # Absolute and without symlinks: the swap renames the real folder, never a link or ".".
    out = cfg.out_dir.resolve()
    check_output_folder(out, (cfg.checkpoint, cfg.calib_data))
    for stale in leftovers(out):
        log.warning("%s was left by an interrupted export; delete it to free its space", stale)
    return out


def dataset_for(cfg: ExportConfig, config_root: str) -> Path:
    """The labelled dataset that verifies: --calib-data when it is one, else the checkpoint config's."""
    given = cfg.calib_data
    if given is not None and is_dataset(given):
        return given
    if given is not None and not cfg.wants("int8"):
        raise BadInput(
            f"{given}: --calib-data has no masks to verify against (not a prodseg dataset: "
            "images/ + masks/ + classes.yaml); pass a labelled dataset, or add --int8 to "
            "calibrate on these images"
        )
    root = Path(config_root)
    if not is_dataset(root):
        raise BadInput(
            f"{root}: the checkpoint's dataset folder is not here; pass a labelled dataset with "
            "--calib-data DIR (or --no-verify)"
        )
    if given is not None:
        log.info(
            "calibrating on %s, verifying on the checkpoint's dataset %s (the former has no masks)",
            given,
            root,
        )
    return root


def plan(cfg: ExportConfig, out: Path, samples: list, calib_images: list[Path]) -> str:
    """One line saying what this run will do, printed once every input has been checked."""
    steps = []
    for name in export_order(cfg):
        source = f" from {', '.join(NEEDS[name](cfg))}" if NEEDS[name](cfg) else ""
        calib = f", {len(calib_images)} calibration images" if name == "int8" else ""
        steps.append(f"{name}{source} -> {WRITES[name]}{calib}")
    verify = f"verify each on {len(samples)} images" if cfg.verify else "no verification"
    return (
        f"plan: {'; '.join(steps)}; {verify}; write {MANIFEST}; "
        f"built beside {out} and swapped in when complete"
    )


def export_order(cfg: ExportConfig) -> list[str]:
    """The requested families (ONNX FP32 always: everything derives from it) and what they read, each
    after its inputs."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in order:
            for need in NEEDS[name](cfg):
                visit(need)
            order.append(name)

    for name in ["onnx", *(f for f in EXPORTERS if f != "onnx" and cfg.wants(f))]:
        visit(name)
    return order


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export every requested artifact, verify each through the runtime, write the manifest.

    The whole set and its manifest are built in a temporary folder beside the output folder and
    replace it only when complete: an interrupted export leaves the earlier set (or nothing).
    """
    out = preflight(cfg)
    source = load_source(cfg.checkpoint)
    source.meta = cfg.artifact_meta(source.meta)  # every artifact (and verification) at the exported size
    data_root = dataset_for(cfg, source.config.data.root) if cfg.verify else None
    samples = verification_samples(data_root, cfg.verify_images) if data_root else []
    classes = data_classes(source, data_root) if data_root else ClassMatch(None)
    calib: list[Path] = []
    if cfg.wants("int8"):
        calib_dir = cfg.calib_data or data_root or Path(source.config.data.root)
        calib = calibration_images(calib_dir, cfg.calib_images, {s.stem for s in samples})
    log.info(plan(cfg, out, samples, calib))
    with export_folder(out) as tmp:
        ctx = ExportContext(cfg, source, tmp, calib_images=calib)
        result = export_and_verify(ctx, samples, out, classes)
        write_manifest(tmp / MANIFEST, manifest(cfg, ctx, result, samples))
    result.manifest = out / MANIFEST
    if result.warnings:
        msg = "; ".join(f"{r.artifact}: {r.note}" for r in result.warnings)
        if cfg.strict:
            raise GateFailed(f"verification failed (--strict): {msg}")
        log.warning("verification warnings: %s", msg)
    return result


def data_classes(source: ExportSource, data_root: Path) -> ClassMatch:
    """The checkpoint's classes against the verification data's, by name (BadInput when they differ)."""
    data = ShelfDataset(data_root).classes.names
    match = match_classes(
        source.meta.class_names, data, str(source.checkpoint), str(data_root / "classes.yaml")
    )
    if match.note:
        log.info("%s", match.note)
    return match


def export_and_verify(ctx: ExportContext, samples: list, out: Path, classes: ClassMatch) -> ExportResult:
    """Run the exporters into ctx.out and verify; the result names the paths the files will have in `out`."""
    t0 = time.perf_counter()
    for name in export_order(ctx.config):
        EXPORTERS[name](ctx)
    artifacts = list(ctx.artifacts.values())
    log.info("exported %d artifacts in %.1f s", len(artifacts), time.perf_counter() - t0)
    rows = []
    if ctx.config.verify:
        rows = verify_all(artifacts, ctx.source, samples, ctx.config.thresholds, classes)
        render_table(rows)
    return ExportResult(
        out,
        [dataclasses.replace(a, path=relocate(a.path, ctx.out, out)) for a in artifacts],
        [dataclasses.replace(r, path=str(relocate(r.path, ctx.out, out))) for r in rows],
    )


def manifest(cfg: ExportConfig, ctx: ExportContext, result: ExportResult, samples: list) -> dict[str, Any]:
    """The manifest payload: source, options, artifacts (with metadata) and verification rows."""
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("checkpoint", "out")}
    return {
        "checkpoint": str(cfg.checkpoint),
        "source_checkpoint_sha256": ctx.source.meta.source_checkpoint_sha256,
        "metadata": ctx.source.meta.to_dict(),
        "options": options,
        "artifacts": [
            {
                "name": a.name,
                "path": str(a.path.relative_to(result.out)),
                "precision": a.precision,
                "backend": a.backend,
                **a.info,
            }
            for a in result.artifacts
        ],
        "verification": {"images": [s.stem for s in samples], "rows": [r.to_dict() for r in result.rows]},
        "calibration_images": [str(p) for p in ctx.calib_images],
    }
