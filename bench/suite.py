"""The `prodseg-bench` job: every (artifact, backend, video), the table, JSON, report, baseline and gates."""

from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prodseg.atomic import check_output_path, write_json
from prodseg.bench.gates import LIMIT_GATES, Miss, check_baseline, check_limits
from prodseg.bench.machine import load_average, machine_info
from prodseg.bench.measure import BenchOptions, bench_one
from prodseg.bench.names import model_labels
from prodseg.bench.results import ModelResult, load_document, run_document
from prodseg.bench.table import comparison_table
from prodseg.errors import BadInput, GateFailed, require


@dataclass
class BenchJob:
    """Everything one `prodseg-bench` invocation asks for."""

    videos: list[str]
    models: list[str]
    backends: list[str] = field(default_factory=lambda: ["auto"])
    options: BenchOptions = field(default_factory=BenchOptions)
    limits: dict[str, float | None] = field(default_factory=dict)  # keys of gates.LIMIT_GATES
    baseline: Path | None = None
    max_regression: float = 0.10
    save_baseline: Path | None = None
    json_path: Path | None = None
    report_dir: Path | None = None
    labels: list[str] = field(default_factory=list)  # --label, one per model; default parent/name

    def check(self) -> None:
        """Fail fast (exit 2) on missing or undecodable inputs, before minutes of measuring."""
        from prodseg.runtime import check_artifact
        from prodseg.runtime.sources import open_source

        for v in self.videos:
            if "://" not in v and not v.isdigit() and not Path(v).is_file():
                raise BadInput(f"{v}: no such video file; give a video path, a camera index or a URL")
            open_source(v).close()  # BadInput when not even the first frame decodes
        used = []
        for m in self.models:
            if not Path(m).exists():
                raise BadInput(f"--model {m}: not found; give an exported .onnx, .xml, .engine or its folder")
            for backend in self.backends:
                used.append(check_artifact(m, backend, self.options.device)[1])  # before minutes of measuring
        self.check_model_flags(used)
        model_labels(self.models, self.labels)  # one unique --label per model
        unknown = set(self.limits) - set(LIMIT_GATES)
        if unknown:
            raise BadInput(f"unknown gate(s) {sorted(unknown)}; known: {', '.join(LIMIT_GATES)}")
        for option, path in (("--json", self.json_path), ("--save-baseline", self.save_baseline)):
            if path is not None:
                check_output_path(path, option)
        if self.report_dir is not None:
            check_output_path(self.report_dir, "--report", folder=True)
            require("matplotlib", "report", "--report plots")  # before measuring, not after

    def check_model_flags(self, backends: list[str]) -> None:
        """--precision/--channels-last need a run they apply to; --save-card describes exactly one model."""
        from prodseg.runtime.model_options import check_precision_opts

        check_precision_opts(self.options.precision_opts, backends)
        card = self.options.spec.save_card
        if card is not None:
            if len(self.models) != 1:
                raise BadInput(f"--save-card {card}: describes one model; give one --model with it")
            check_output_path(card, "--save-card")


def measure_all(job: BenchJob, console: Console) -> list[ModelResult]:
    """Benchmark every (model, backend, video) with a progress bar on the console."""
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        named = list(zip(job.models, model_labels(job.models, job.labels), strict=True))
        for (model, label), backend, video in itertools.product(named, job.backends, job.videos):
            name = f"{label} [{backend}] {Path(video).name}"
            task = progress.add_task(name, total=job.options.frames)
            phases: list[str] = []

            def step(
                phase: str, n: int, task: Any = task, name: str = name, phases: list[str] = phases
            ) -> None:
                if phase not in phases:  # each phase (pipeline, model-only) counts its own frames
                    phases.append(phase)
                    progress.reset(task, total=job.options.frames, description=f"{name}: {phase}")
                progress.update(task, advance=n)

            opts = BenchOptions(**{**job.options.__dict__, "backend": backend})
            results.append(bench_one(model, video, opts, step, label=label))
            progress.remove_task(task)
    return results


def run_job(job: BenchJob, console: Console | None = None, err: Console | None = None) -> dict[str, Any]:
    """Run the job: print the table, write outputs, then raise GateFailed on any missed gate."""
    console = console or wide_console()
    err = err or Console(stderr=True)
    job.check()
    baseline = load_document(job.baseline) if job.baseline is not None else None
    warn_if_busy(err)
    results = measure_all(job, err)
    doc = run_document(results, settings(job))
    console.print(comparison_table(doc["results"]))
    if job.json_path is not None:
        write_json(job.json_path, doc)
    if job.report_dir is not None:
        from prodseg.bench.report import write_report

        write_report(job.report_dir, results, doc)
    misses = gate_misses(job, doc, baseline)
    for miss in misses:
        err.print(miss.line(), markup=False, highlight=False, soft_wrap=True)
    if misses:
        raise GateFailed(
            f"{len(misses)} gate(s) failed"
            + ("; baseline not saved" if job.save_baseline is not None else "")
        )
    if job.save_baseline is not None:
        write_json(job.save_baseline, doc)
    return doc


def wide_console() -> Console:
    """stdout console; CI logs are not terminals, so give the table room instead of 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def warn_if_busy(err: Console) -> None:
    """Say so when other processes already load the CPU: every figure will be lower and noisier."""
    load, cores = load_average(), os.cpu_count() or 1
    if load > 0.5 * cores:
        err.print(
            f"warning: load average {load:.1f} on {cores} cores before the run; other processes "
            "compete for the CPU, so FPS is lower and latency noisier than on an idle machine",
            highlight=False,
            soft_wrap=True,
        )


def gate_misses(job: BenchJob, doc: dict[str, Any], baseline: dict[str, Any] | None) -> list[Miss]:
    """Absolute budgets first, then regressions against the baseline."""
    misses = check_limits(doc["results"], job.limits)
    if baseline is not None:
        misses += check_baseline(
            doc["results"], baseline, machine_info(), job.max_regression, str(job.baseline)
        )
    return misses


def settings(job: BenchJob) -> dict[str, Any]:
    """The job's knobs as recorded in the JSON document."""
    o = job.options
    return {
        "videos": job.videos,
        "models": job.models,
        "backends": job.backends,
        "device": o.device,
        "threads": o.threads,
        "warmup": o.warmup,
        "frames": o.frames,
        "duration_s": o.duration_s,
        "mode": o.mode,
        "requests": o.requests,
        "gt_masks": None if o.gt_masks is None else str(o.gt_masks),
        "limits": job.limits,
        "max_regression": job.max_regression,
        "model_flags": {k: v for k, v in dataclasses.asdict(o.spec).items() if v is not None},
        "precision_options": o.precision_opts,
        "baseline": None if job.baseline is None else str(job.baseline),
    }
