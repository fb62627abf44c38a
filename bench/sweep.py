"""`prodseg-bench --sweep`: one model on one video over every installed backend, precision, mode and
request count; a table and the recommended configuration (the fastest end to end that passes the
accuracy gate).

The accuracy gate compares each configuration's label maps on the video's first frames with those of
the reference, the artifact's own arithmetic (the first configuration: f32 on the first backend):
the share of pixels that agree must reach `min_agreement`. INT8 or bf16 that changes results beyond
that is listed but never recommended.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from prodseg.bench.measure import BenchOptions, bench_one
from prodseg.bench.results import ModelResult
from prodseg.bench.source import BoundedSource
from prodseg.bench.timers import Deadline

AGREEMENT_FRAMES = 8  # frames compared with the reference for the accuracy gate
MIN_AGREEMENT = 0.99  # share of label-map pixels equal to the reference's
REQUESTS = (2, 4)  # requests in flight tried in throughput mode
# backend -> (precision label, runner options) it can run an artifact at; the first is the artifact's own.
PRECISIONS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "onnxruntime": [("artifact", {})],
    "openvino": [("f32", {"inference_precision": "f32"}), ("bf16", {"inference_precision": "bf16"})],
}
SUFFIX_SWEEP = {".onnx": ("onnxruntime", "openvino"), ".xml": ("openvino",)}


@dataclass(frozen=True)
class SweepConfig:
    backend: str
    precision: str
    mode: str
    requests: int
    runner_options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        how = "latency" if self.mode == "latency" else f"throughput x{self.requests}"
        return f"{self.backend} {self.precision} {how}"


def _bf16_capable() -> bool:
    """Whether OpenVINO's CPU plugin computes in bf16 natively here (else bf16 is emulated: never faster)."""
    from prodseg.runtime.runners.openvino_runner import shared_core

    return "BF16" in shared_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def precisions(backend: str) -> list[tuple[str, dict[str, Any]]]:
    """The precisions worth trying on this machine."""
    found = PRECISIONS.get(backend, [("artifact", {})])
    if backend == "openvino" and not _bf16_capable():
        found = [p for p in found if p[0] != "bf16"]
    return found


def configurations(artifact: Path, device: str = "cpu") -> list[SweepConfig]:
    """Installed backends that run the artifact x their precisions x latency / throughput x REQUESTS."""
    backends = (
        [b for b in SUFFIX_SWEEP.get(artifact.suffix.lower(), ()) if importlib.util.find_spec(b) is not None]
        if device == "cpu"
        else []
    )
    if not backends:
        from prodseg.runtime import backend_for

        backends = [backend_for(artifact, "auto", device)]
    configs = []
    for backend in backends:
        for precision, opts in precisions(backend):
            configs.append(SweepConfig(backend, precision, "latency", 1, opts))
            configs += [SweepConfig(backend, precision, "throughput", n, opts) for n in REQUESTS]
    return configs


def label_maps(artifact: str, video: str, opts: BenchOptions, frames: int = AGREEMENT_FRAMES) -> list[Any]:
    """The label maps of the video's first frames under one configuration."""
    from prodseg.bench.measure import load_for_bench

    with load_for_bench(artifact, video, opts) as predictor:
        return [predictor.predict_frame(f).label_map for f in BoundedSource(video, Deadline(frames=frames))]


def agreement(maps: list[Any], reference: list[Any]) -> float:
    """The share of pixels whose label equals the reference's, over all compared frames."""
    same = sum(int(np.count_nonzero(a == b)) for a, b in zip(maps, reference, strict=True))
    return same / max(1, sum(int(b.size) for b in reference))


@dataclass
class SweepRow:
    config: SweepConfig
    result: ModelResult
    agreement: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            **dataclasses.asdict(self.config),
            "fps_e2e": round(r.fps_e2e, 2),
            "fps_model": round(r.fps_model, 2),
            "e2e_vs_model": round(r.fps_e2e / r.fps_model, 3) if r.fps_model else None,
            "p99_ms": round(r.latency.p99, 2),
            "agreement": round(self.agreement, 5),
            "passed": self.passed,
        }


def run_sweep(
    artifact: str,
    video: str,
    base: BenchOptions,
    min_agreement: float = MIN_AGREEMENT,
    configs: list[SweepConfig] | None = None,
) -> list[SweepRow]:
    """Measure every configuration (prodseg-bench's full run each) and gate it against the reference."""
    configs = configs or configurations(Path(artifact), base.device)
    rows: list[SweepRow] = []
    reference: list[Any] | None = None
    for config in configs:
        opts = dataclasses.replace(
            base,
            backend=config.backend,
            mode=config.mode,
            requests=config.requests,
            runner_options={**base.runner_options, **config.runner_options},
        )
        maps = label_maps(artifact, video, opts)
        reference = maps if reference is None else reference
        agree = agreement(maps, reference)
        rows.append(SweepRow(config, bench_one(artifact, video, opts), agree, agree >= min_agreement))
    return rows


def recommended(rows: list[SweepRow]) -> SweepRow | None:
    """The fastest end to end among the rows that pass the accuracy gate."""
    passing = [r for r in rows if r.passed]
    return max(passing, key=lambda r: r.result.fps_e2e) if passing else None


def sweep_table(rows: list[SweepRow]) -> Table:
    """One line per configuration; the recommended one marked."""
    best = recommended(rows)
    table = Table(title="prodseg-bench --sweep")
    for header in (
        "backend",
        "precision",
        "mode",
        "FPS e2e",
        "FPS model",
        "e2e/model",
        "p99 ms",
        "agreement",
        "gate",
        "",
    ):
        table.add_column(header, justify="left" if header in ("backend", "precision", "mode") else "right")
    for row in rows:
        d = row.as_dict()
        mode = "latency" if row.config.mode == "latency" else f"throughput x{row.config.requests}"
        table.add_row(
            row.config.backend,
            row.config.precision,
            mode,
            f"{d['fps_e2e']:.1f}",
            f"{d['fps_model']:.1f}",
            f"{d['e2e_vs_model'] or 0:.2f}",
            f"{d['p99_ms']:.1f}",
            f"{row.agreement:.4f}",
            "pass" if row.passed else "FAIL",
            "recommended" if row is best else "",
        )
    return table


def sweep_document(rows: list[SweepRow], min_agreement: float) -> dict[str, Any]:
    """The sweep's JSON: every row and the recommendation, next to the usual bench results."""
    best = recommended(rows)
    return {
        "min_agreement": min_agreement,
        "rows": [r.as_dict() for r in rows],
        "recommended": None if best is None else best.as_dict(),
    }


def sweep_job(job: Any, min_agreement: float = MIN_AGREEMENT) -> dict[str, Any]:
    """`prodseg-bench --sweep`: one model and one video; the table, the recommendation, --json."""
    from rich.console import Console

    from prodseg.atomic import write_json
    from prodseg.bench.results import run_document
    from prodseg.bench.suite import settings, warn_if_busy, wide_console
    from prodseg.errors import BadInput

    if len(job.models) != 1 or len(job.videos) != 1:
        raise BadInput(
            f"--sweep: give one --model and one video (got {len(job.models)} and "
            f"{len(job.videos)}); the sweep tries the backends itself"
        )
    job.check()
    console, err = wide_console(), Console(stderr=True)
    warn_if_busy(err)
    rows = run_sweep(job.models[0], job.videos[0], job.options, min_agreement)
    console.print(sweep_table(rows))
    best = recommended(rows)
    console.print(
        f"recommended: {best.config.name} ({best.result.fps_e2e:.1f} FPS end to end)"
        if best
        else f"recommended: none passes the accuracy gate (agreement >= {min_agreement})"
    )
    doc = run_document([r.result for r in rows], settings(job))
    doc["sweep"] = sweep_document(rows, min_agreement)
    if job.json_path is not None:
        write_json(job.json_path, doc)
    return doc
