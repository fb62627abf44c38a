"""`prodseg-bench`: FPS, latency, memory and accuracy of exported models on shelf videos, with gates."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from prodseg.bench.measure import MODES, BenchOptions
from prodseg.bench.suite import BenchJob, run_job
from prodseg.classes import read_class_map
from prodseg.cli import OneLineUsage, handle_errors, setup_logging
from prodseg.runtime.model_options import ModelFlags, model_options, precision_options


class Finite(click.FloatRange):
    """A float in a range that is also finite: `nan` passes every comparison, so a plain range lets it in."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


LIMIT = Finite(min=0, min_open=True)


@click.command(cls=OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("videos", nargs=-1, required=True)
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    help="Exported artifact (.onnx, .xml, .engine); repeat to compare.",
)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    default=("auto",),
    show_default=True,
    help="Runtime backend; repeat to compare backends on each model.",
)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="Inference threads (default: the backend's)."
)
@click.option(
    "--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed frames first."
)
@click.option("--frames", type=click.IntRange(min=1), default=None, help="Timed frames (the video loops).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, help="Timed seconds.")
@click.option("--mode", type=click.Choice(MODES), default="latency", show_default=True)
@click.option(
    "--requests",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Requests in flight in throughput mode.",
)
@click.option(
    "--gt-masks",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of per-frame masks 000000.png... -> mIoU and flicker.",
)
@click.option(
    "--gt-classes",
    type=click.Path(path_type=Path),
    default=None,
    help="classes.yaml of the --gt-masks (default: the folder's own classes.yaml).",
)
@click.option(
    "--class-map",
    "class_map_file",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML mapping model class names to the masks' class names, when they differ.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Name of each --model in tables and reports (repeat, in --model order) [default: folder/file name].",
)
@click.option("--min-fps", type=LIMIT, default=None, help="Gate: end-to-end FPS at least this.")
@click.option("--max-p99-ms", type=LIMIT, default=None, help="Gate: p99 per-frame latency at most this.")
@click.option(
    "--max-memory-mb", type=LIMIT, default=None, help="Gate: peak RSS at most this, in MB (10^6 bytes)."
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="Saved result (--save-baseline) to compare with.",
)
@click.option(
    "--max-regression",
    type=Finite(0, 1, max_open=True),
    default=0.10,
    show_default=True,
    help="Allowed FPS drop vs --baseline, as a fraction.",
)
@click.option(
    "--save-baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="Write this run as a baseline (only when every gate passed).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the results JSON (schema prodseg-bench/1).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write report.md and plots here (needs prodseg[report]).",
)
@click.option(
    "--sweep",
    is_flag=True,
    help="One model: every installed backend x precision x latency/throughput x requests, and "
    "the fastest configuration that passes the accuracy gate.",
)
@click.option(
    "--min-agreement",
    type=Finite(0, 1),
    default=0.99,
    show_default=True,
    help="--sweep's accuracy gate: share of label-map pixels equal to the artifact's own "
    "arithmetic (f32) on the first frames.",
)
@model_options
@precision_options
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def main(
    videos: tuple[str, ...],
    models: tuple[str, ...],
    backends: tuple[str, ...],
    device: str,
    threads: int | None,
    warmup: int,
    frames: int | None,
    duration: float | None,
    mode: str,
    requests: int,
    gt_masks: Path | None,
    gt_classes: Path | None,
    class_map_file: Path | None,
    labels: tuple[str, ...],
    min_fps: float | None,
    max_p99_ms: float | None,
    max_memory_mb: float | None,
    baseline: Path | None,
    max_regression: float,
    save_baseline: Path | None,
    json_path: Path | None,
    report_dir: Path | None,
    sweep: bool,
    min_agreement: float,
    verbose: bool,
    model_flags: ModelFlags,
    precision_opts: dict[str, Any],
) -> None:
    """Benchmark exported models (or .pt checkpoints) on VIDEO(s); exit 1 when a gate fails, 2 on bad input.

    Models without prodseg metadata run with the model flags (--task, --names, ...); sizes are in
    MB = 10^6 bytes.
    """
    setup_logging(verbose)
    options = BenchOptions(
        device=device,
        threads=threads,
        warmup=warmup,
        frames=frames,
        duration_s=duration,
        mode=mode,
        requests=requests,
        gt_masks=gt_masks,
        gt_classes=gt_classes,
        class_map=read_class_map(class_map_file) if class_map_file else None,
        spec=model_flags.spec(),
        precision_opts=precision_opts,
    )
    limits = {"min-fps": min_fps, "max-p99-ms": max_p99_ms, "max-memory-mb": max_memory_mb}
    if sweep:
        from prodseg.bench.sweep import sweep_job

        sweep_job(
            BenchJob(
                videos=list(videos),
                models=list(models),
                options=options,
                json_path=json_path,
                labels=list(labels),
            ),
            min_agreement,
        )
        return
    run_job(
        BenchJob(
            videos=list(videos),
            models=list(models),
            backends=list(backends),
            options=options,
            limits=limits,
            baseline=baseline,
            max_regression=max_regression,
            save_baseline=save_baseline,
            json_path=json_path,
            report_dir=report_dir,
            labels=list(labels),
        )
    )


if __name__ == "__main__":
    main()
