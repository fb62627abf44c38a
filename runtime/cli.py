"""prodseg-predict: run an exported model on a video, image folder, camera or stream."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from prodseg.atomic import check_output_path, write_json
from prodseg.cli import OneLineUsage, Terminated, handle_errors, setup_logging
from prodseg.errors import BadInput, Interrupted
from prodseg.runtime.model_options import (
    ModelFlags,
    ModelSpec,
    backend_options,
    check_precision_opts,
    model_options,
    precision_options,
    save_card,
)
from prodseg.runtime.outputs import OutputFolder, signals_held
from prodseg.runtime.runners import PIPELINE_OPTS, RUNNERS

log = logging.getLogger("prodseg.predict")


def _sinks(out: Path, save_video: bool, save_masks: bool, meta: Any, src: Any) -> list[Any]:
    from prodseg.runtime.sinks import JsonlSink, MaskSink, OverlayImageSink, OverlayVideoSink
    from prodseg.runtime.sources import ImageFolderSource

    sinks: list[Any] = [JsonlSink(out / "predictions.jsonl", meta)]
    if save_video and isinstance(src, ImageFolderSource):
        sinks.append(OverlayImageSink(out / "overlays", meta))  # images of any size, named like the inputs
    elif save_video:
        sinks.append(OverlayVideoSink(out / "overlay.mp4", meta, src.fps))
    if save_masks:
        sinks.append(MaskSink(out / "masks"))
    return sinks


def _progress(total: int | None) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]}"),
        TimeRemainingColumn(),
        transient=True,
    )
    return bar, bar.add_task("frames", total=total, fps="")


def predict(
    source: str,
    model: str,
    out: Path | None,
    save_video: bool,
    save_masks: bool,
    backend: str,
    device: str,
    threads: int | None,
    max_frames: int | None,
    queue_size: int,
    overwrite: bool = False,
    spec: ModelSpec | None = None,
    precision_opts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the pipeline with sinks and a progress bar; returns the run summary (also written to --out)."""
    import prodseg.runtime as rt
    from prodseg.runtime.sources import open_source

    spec, precision_opts = spec or ModelSpec(), precision_opts or {}
    if out is None and (save_video or save_masks):
        raise BadInput("--save-video/--save-masks need --out DIR")
    if spec.save_card is not None:
        check_output_path(spec.save_card, "--save-card")
    _, name = rt.check_artifact(model, backend, device)
    check_precision_opts(precision_opts, [name])
    folder = OutputFolder(out, overwrite) if out is not None else None  # before any work
    src = open_source(source)
    try:
        # backend as asked: 'auto' brings its choice's own options
        predictor = rt.load(
            model,
            backend=backend,
            device=device,
            threads=threads,
            spec=spec,
            **PIPELINE_OPTS.get(name, {}),
            **backend_options(precision_opts, name),
        )
    except BaseException:
        src.close()
        raise
    with contextlib.closing(src), contextlib.closing(predictor):
        predictor.adapt_to((src.size[1], src.size[0]))  # a dynamic model runs at the source's aspect
        header = {
            "source": source,
            "model": model,
            "backend": predictor.backend,
            "classes": list(predictor.meta.class_names),
            "settings": predictor.settings(),
        }
        summary = _Run(src, predictor, folder, save_video, save_masks).execute(max_frames, queue_size, header)
        if spec.save_card is not None:
            save_card(spec.save_card, predictor.meta, Path(predictor.runner.path))
        return summary


class _Run:
    """One pipelined run into the output folder: failures remove its outputs, interruptions report them."""

    def __init__(
        self, src: Any, predictor: Any, folder: OutputFolder | None, save_video: bool, save_masks: bool
    ):
        self.src, self.predictor, self.folder = src, predictor, folder
        self.save_video, self.save_masks = save_video, save_masks
        self.sinks: list[Any] = []
        self.done = 0

    def execute(self, max_frames: int | None, queue_size: int, header: dict[str, Any]) -> dict[str, Any]:
        from prodseg.runtime.pipeline import run_pipeline

        total = (
            self.src.frame_count
            if max_frames is None
            else min(self.src.frame_count or max_frames, max_frames)
        )
        bar, task = _progress(total)
        try:
            if self.folder is not None:
                self.sinks = _sinks(
                    self.folder.prepare(), self.save_video, self.save_masks, self.predictor.meta, self.src
                )
            with bar:

                def tick(frame: Any, pred: Any) -> None:
                    self.done += 1
                    model_fps = 1000 / max(pred.timings.get("infer", 1.0), 1e-3)
                    bar.update(task, advance=1, fps=f"{model_fps:.1f} FPS model")

                stats = run_pipeline(
                    self.src,
                    self.predictor,
                    self.sinks,
                    queue_size=queue_size,
                    max_frames=max_frames,
                    on_result=tick,
                )
            summary = {**header, **stats.summary()}
            self._close(ok=True)
            if self.folder is not None:
                write_json(self.folder.path / "summary.json", summary)
            return summary
        except (KeyboardInterrupt, Terminated) as exc:
            with signals_held():
                self._interrupted(exc)
            raise
        except BaseException:
            with signals_held():
                self._close(ok=False)
                if self.folder is not None:
                    self.folder.discard()
            raise

    def _close(self, ok: bool) -> None:
        for sink in self.sinks:
            sink.close(ok)

    def _interrupted(self, exc: BaseException) -> None:
        """Keep the frames finished so far (complete files) and raise Interrupted saying what is on disk."""
        folder = self.folder
        if folder is None or self.done == 0:
            self._close(ok=False)
            if folder is not None:
                folder.discard()
            return  # nothing under a final name: the caller re-raises for the generic message
        self._close(ok=True)
        folder.sweep_temps()
        (folder.path / "summary.json").unlink(missing_ok=True)  # a summary would claim a finished run
        raise Interrupted(
            f"interrupted after {self.done} frames: {folder.describe()}; no summary.json "
            f"(the run did not finish); rerun with --overwrite to replace them",
            exit_code=130 if isinstance(exc, KeyboardInterrupt) else 143,
        ) from exc


@click.command(cls=OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source")
@click.option("--model", "model", required=True, help="Exported artifact: .onnx, .xml, .engine/.plan or .pt.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder for the results (new or empty).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier prodseg-predict output in --out (refused if it holds other files).",
)
@click.option(
    "--save-video",
    is_flag=True,
    help="Write OUT/overlay.mp4 (class colours, legend); an image folder: OUT/overlays/<stem>.png.",
)
@click.option(
    "--save-masks",
    is_flag=True,
    help="Write OUT/masks/<frame>.png label masks (<stem>.png for an image folder).",
)
@click.option("--backend", type=click.Choice(["auto", *RUNNERS]), default="auto", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:N], GPU, NPU (backend's names).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Inference threads (backend default).")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after N frames.")
@click.option("--queue-size", type=click.IntRange(1), default=4, show_default=True)
@model_options
@precision_options
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def main(
    source: str,
    model: str,
    out: Path | None,
    overwrite: bool,
    save_video: bool,
    save_masks: bool,
    backend: str,
    device: str,
    threads: int | None,
    max_frames: int | None,
    queue_size: int,
    verbose: bool,
    model_flags: ModelFlags,
    precision_opts: dict[str, Any],
) -> None:
    """Segment every frame of SOURCE (video, image folder, camera index, rtsp/http URL) with --model.

    A model exported elsewhere without prodseg metadata runs with --task and --names (see the model
    flags); --save-card keeps that description beside it for later runs.
    """
    setup_logging(verbose)
    if not verbose:  # FFmpeg's own decode warnings would bury the one-line report (read at first open)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    s = predict(
        source,
        model,
        out,
        save_video,
        save_masks,
        backend,
        device,
        threads,
        max_frames,
        queue_size,
        overwrite,
        model_flags.spec(),
        precision_opts,
    )
    ms = s["mean_ms"]
    stages = ", ".join(f"{name} {value:.1f}" for name, value in ms.items())
    click.echo(
        f"{s['frames']} frames in {s['wall_s']:.2f}s = {s['fps']:.1f} FPS end to end "
        f"({s['backend']}); mean ms: {stages}" + (f"; wrote {out}" if out else "")
    )
    if s["decode_error"] is not None:
        raise BadInput(
            f"{source}: decoding stopped at frame {s['decode_error']} "
            f"(the file is truncated or corrupt); {s['frames']} frames were processed"
        )
    log.debug(json.dumps(s))


if __name__ == "__main__":
    main()
