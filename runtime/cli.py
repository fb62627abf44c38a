"""prodseg-predict: run an exported model on a video, image folder, camera or stream."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from prodseg.cli import handle_errors, setup_logging
from prodseg.errors import BadInput
from prodseg.runtime.runners import RUNNERS

log = logging.getLogger("prodseg.predict")


def _sinks(out: Path | None, save_video: bool, save_masks: bool, meta: Any, fps: float) -> list[Any]:
    from prodseg.runtime.sinks import JsonlSink, MaskSink, OverlayVideoSink

    if out is None:
        if save_video or save_masks:
            raise BadInput("--save-video/--save-masks need --out DIR")
        return []
    sinks: list[Any] = [JsonlSink(out / "predictions.jsonl")]
    if save_video:
        sinks.append(OverlayVideoSink(out / "overlay.mp4", meta, fps))
    if save_masks:
        sinks.append(MaskSink(out / "masks"))
    return sinks


def _progress(total: int | None) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]}"),
                   TimeRemainingColumn(), transient=True)
    return bar, bar.add_task("frames", total=total, fps="")


def predict(source: str, model: str, out: Path | None, save_video: bool, save_masks: bool, backend: str,
            device: str, threads: int | None, max_frames: int | None, queue_size: int) -> dict[str, Any]:
    """Run the pipeline with sinks and a progress bar; returns the run summary (also written to --out)."""
    import prodseg.runtime as rt
    from prodseg.runtime.pipeline import run_pipeline
    from prodseg.runtime.sources import open_source

    src = open_source(source)
    # the pipeline's own threads need CPU too: ONNX Runtime's idle workers must not spin
    predictor = rt.load(model, backend=backend, device=device, threads=threads, allow_spinning=False)
    sinks = _sinks(out, save_video, save_masks, predictor.meta, src.fps)
    total = src.frame_count if max_frames is None else min(src.frame_count or max_frames, max_frames)
    bar, task = _progress(total)
    ok = False
    try:
        with bar, contextlib.closing(predictor):
            def tick(frame: Any, pred: Any) -> None:
                model_fps = 1000 / max(pred.timings.get("infer", 1.0), 1e-3)
                bar.update(task, advance=1, fps=f"{model_fps:.1f} FPS model")

            stats = run_pipeline(src, predictor, sinks, queue_size=queue_size, max_frames=max_frames,
                                 on_result=tick)
        ok = True
    finally:
        for sink in sinks:
            sink.close(ok)
        src.close()
    summary = {"source": source, "model": model, "backend": predictor.backend, **stats.summary()}
    if out is not None:
        from prodseg.atomic import write_json

        write_json(out / "summary.json", summary)
    return summary


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source")
@click.option("--model", "model", required=True, help="Exported artifact: .onnx, .xml, .engine/.plan or .pt.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder for the results.")
@click.option("--save-video", is_flag=True, help="Write OUT/overlay.mp4 (class colours and legend).")
@click.option("--save-masks", is_flag=True, help="Write OUT/masks/<frame>.png label masks.")
@click.option("--backend", type=click.Choice(["auto", *RUNNERS]), default="auto", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:N], GPU, NPU (backend's names).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Inference threads (backend default).")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after N frames.")
@click.option("--queue-size", type=click.IntRange(1), default=4, show_default=True)
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def main(source: str, model: str, out: Path | None, save_video: bool, save_masks: bool, backend: str,
         device: str, threads: int | None, max_frames: int | None, queue_size: int, verbose: bool) -> None:
    """Segment every frame of SOURCE (video, image folder, camera index, rtsp/http URL) with --model."""
    setup_logging(verbose)
    if not verbose:  # FFmpeg's own decode warnings would bury the one-line report (read at first open)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    s = predict(source, model, out, save_video, save_masks, backend, device, threads, max_frames, queue_size)
    ms = s["mean_ms"]
    stages = ", ".join(f"{name} {value:.1f}" for name, value in ms.items())
    click.echo(f"{s['frames']} frames in {s['wall_s']:.2f}s = {s['fps']:.1f} FPS end to end "
               f"({s['backend']}); mean ms: {stages}" + (f"; wrote {out}" if out else ""))
    if s["decode_error"] is not None:
        raise BadInput(f"{source}: decoding stopped at frame {s['decode_error']} "
                       f"(the file is truncated or corrupt); {s['frames']} frames were processed")
    log.debug(json.dumps(s))
