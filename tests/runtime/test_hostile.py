"""prodseg-predict against hostile input: one `error:` line, exit 2, no traceback, nothing left behind;
--out reuse, failures that clean up, and Ctrl-C/SIGTERM of a real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from prodseg.runtime.cli import main
from prodseg.runtime.runners import auto_backend
from tests.hostile import one_error_line

Setup = Callable[[Path, dict[str, Path]], list[str]]


def _run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _junk(tmp: Path, name: str, data: bytes = b"\x00garbage\xff" * 50) -> str:
    (tmp / name).write_bytes(data)
    return str(tmp / name)


def _ir_copy(tmp: Path, fx: dict[str, Path], bin_bytes: Callable[[bytes], bytes | None]) -> str:
    """The OpenVINO IR fixture copied to tmp with its .bin replaced by bin_bytes(original) (None: removed)."""
    xml = fx["ir"]
    for f in xml.parent.glob(xml.stem + ".*"):
        if f.suffix != ".bin":
            shutil.copy(f, tmp / f.name)
    data = bin_bytes(xml.with_suffix(".bin").read_bytes())
    if data is not None:
        (tmp / xml.with_suffix(".bin").name).write_bytes(data)
    return str(tmp / xml.name)


def _file_out(tmp: Path, fx: dict[str, Path]) -> list[str]:
    (tmp / "out").write_text("keep me")
    return [fx["video"], "--model", fx["onnx"], "--out", tmp / "out"]


def _foreign_out(tmp: Path, fx: dict[str, Path], overwrite: bool) -> list[str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "predictions.jsonl").write_text("{}\n")
    (tmp / "out" / "notes.txt").write_text("my notes")
    return [fx["video"], "--model", fx["onnx"], "--out", tmp / "out", *(["--overwrite"] if overwrite else [])]


def _lookalike_out(tmp: Path, fx: dict[str, Path], inside: str) -> list[str]:
    """An --out whose names resemble a predict run's but hold something else, with --overwrite."""
    (tmp / "out" / inside).parent.mkdir(parents=True)
    (tmp / "out" / inside).write_text("not a mask")
    return [fx["video"], "--model", fx["onnx"], "--out", tmp / "out", "--overwrite"]


def _bare_onnx(tmp: Path, fx: dict[str, Path]) -> str:
    """The ONNX fixture without its metadata_props: a model exported elsewhere."""
    import onnx

    model = onnx.load(str(fx["onnx"]))
    del model.metadata_props[:]
    onnx.save(model, str(tmp / "bare.onnx"))
    return str(tmp / "bare.onnx")


def _video(spec: Callable[[Path], str]) -> Setup:
    return lambda tmp, fx: [spec(tmp), "--model", fx["onnx"], "--out", tmp / "out"]


def _model(spec: Callable[[Path, dict[str, Path]], str], *extra: str) -> Setup:
    return lambda tmp, fx: [fx["video"], "--model", spec(tmp, fx), "--out", tmp / "out", *extra]


# id -> (command line built in tmp_path, phrase the one error line must contain)
# The backend that loads an .onnx by default here, as its error message names it.
ONNX_LOADER = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}[auto_backend(".onnx", "cpu")[0]]
ONNX_CANNOT = f"m.onnx: {ONNX_LOADER} cannot load this model"
CASES: dict[str, tuple[Setup, str]] = {
    "missing video": (_video(lambda t: str(t / "nope.mp4")), "no such video"),
    "empty video": (_video(lambda t: _junk(t, "empty.mp4", b"")), "empty.mp4: cannot open this video"),
    "garbage video": (_video(lambda t: _junk(t, "junk.mkv")), "junk.mkv: cannot open this video"),
    "empty image folder": (_video(lambda t: (t / "frames").mkdir() or str(t / "frames")), "no images"),
    "garbage image": (_video(lambda t: _junk(t, "x.png")), "x.png: cannot decode this image"),
    "missing model": (_model(lambda t, fx: str(t / "m.onnx")), "model file not found"),
    "garbage onnx": (_model(lambda t, fx: _junk(t, "m.onnx")), ONNX_CANNOT),
    # without torch (an edge install) a .pt is refused before it is read, naming the extra to install
    "garbage checkpoint": (
        _model(lambda t, fx: _junk(t, "m.pt")),
        "m.pt",
    ),  # with torch: not a checkpoint; without: torch is missing to read m.pt
    "garbage xml": (_model(lambda t, fx: _junk(t, "m.xml")), "m.xml: not a valid OpenVINO IR"),
    "xml without bin": (_model(lambda t, fx: _ir_copy(t, fx, lambda b: None)), ".bin: missing"),
    "truncated bin": (_model(lambda t, fx: _ir_copy(t, fx, lambda b: b[: len(b) // 3])), ".bin: truncated"),
    "empty bin": (_model(lambda t, fx: _ir_copy(t, fx, lambda b: b"")), ".bin: truncated (0 bytes"),
    "unknown suffix": (_model(lambda t, fx: _junk(t, "m.tflite")), "unknown artifact type '.tflite'"),
    "unknown backend": (_model(lambda t, fx: str(fx["onnx"]), "--backend", "tflite"), "tflite"),
    "onnx on cuda": (_model(lambda t, fx: str(fx["onnx"]), "--device", "cuda"), "use --device cpu"),
    "checkpoint on cuda": (_model(lambda t, fx: str(fx["pt"]), "--device", "cuda"), "no CUDA device"),
    "checkpoint on mps": (_model(lambda t, fx: str(fx["pt"]), "--device", "mps"), "--device mps"),
    "out is a file": (_file_out, "--out"),
    "out under a file": (lambda t, fx: _file_out(t, fx)[:-1] + [str(t / "out" / "sub")], "is a file"),
    "out not empty": (lambda t, fx: _foreign_out(t, fx, False), "not empty"),
    "overwrite foreign files": (lambda t, fx: _foreign_out(t, fx, True), "notes.txt"),
    "overwrite a folder named like an output": (
        lambda t, fx: _lookalike_out(t, fx, "summary.json/x"),
        "summary.json",
    ),
    "overwrite masks holding other files": (
        lambda t, fx: _lookalike_out(t, fx, "masks/notes.txt"),
        "masks/notes.txt",
    ),
    "masks without out": (lambda t, fx: [fx["video"], "--model", fx["onnx"], "--save-masks"], "need --out"),
    # model flags
    "input size not a size": (
        _model(lambda t, fx: str(fx["onnx"]), "--input-size", "abc"),
        "--input-size abc: give HxW",
    ),
    "input size zero": (_model(lambda t, fx: str(fx["onnx"]), "--input-size", "0x64"), "from 1 to 16384"),
    "input size off a static model": (
        _model(lambda t, fx: str(fx["onnx"]), "--input-size", "65x64"),
        "takes a fixed 64x96 input",
    ),
    "names count off the model": (
        _model(lambda t, fx: str(fx["onnx"]), "--names", "a,b"),
        "--names gives 2 names but the model outputs 10 classes",
    ),
    "mean with 2 values": (
        _model(lambda t, fx: str(fx["onnx"]), "--mean", "0.5,0.5"),
        "--mean 0.5,0.5: give 3",
    ),
    "task unknown": (_model(lambda t, fx: str(fx["onnx"]), "--task", "detect"), "--task detect: choose one"),
    "task against the outputs": (
        _model(lambda t, fx: str(fx["onnx"]), "--task", "yolo-seg"),
        "not yolo-seg; pass --task semantic",
    ),
    "no metadata, no flags": (_model(lambda t, fx: _bare_onnx(t, fx)), "describe the model with --task"),
    "conf for a semantic model": (
        _model(lambda t, fx: str(fx["onnx"]), "--conf", "0.5"),
        "--conf: apply to YOLO-seg models",
    ),
    "unknown class to keep": (_model(lambda t, fx: str(fx["onnx"]), "--classes", "cat"), "--classes cat"),
    "precision for onnxruntime": (
        _model(lambda t, fx: str(fx["onnx"]), "--backend", "onnxruntime", "--precision", "bf16"),
        "--precision: applies to torch and openvino runs only",
    ),
    "channels-last for openvino": (
        _model(lambda t, fx: str(fx["onnx"]), "--channels-last"),
        "--channels-last: applies to torch runs only",
    ),
    "save-card is a folder": (_model(lambda t, fx: str(fx["onnx"]), "--save-card", "."), "--save-card"),
}


@pytest.fixture(scope="module")
def fx(deeplab, deeplab_ir, tiny_video) -> dict[str, Path]:
    return {"onnx": deeplab[0], "ir": deeplab_ir, "video": tiny_video[0]}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_exits_2_with_one_line(case: str, fx: dict[str, Path], tmp_path: Path, request) -> None:
    setup, phrase = CASES[case]
    if case.startswith("checkpoint "):  # a real checkpoint needs torch: these cases skip on an edge install
        fx = {**fx, "pt": request.getfixturevalue("checkpoint")}
    args = setup(tmp_path, fx)
    before = _snapshot(tmp_path)
    res = _run(*args)
    assert res.exit_code == 2, (case, res.output)
    assert phrase in one_error_line(res.output)
    assert _snapshot(tmp_path) == before  # nothing written, nothing removed
    assert not [
        p for p in tmp_path.rglob("*") if p.is_dir() and p.name in ("out", "masks") and not any(p.iterdir())
    ], "an empty output folder was left"


# ONNX Runtime's GPU providers where they cannot start. ORT's CPU build is what installs here: the GPU build
# lists its providers as available even where CUDA/cuDNN/TensorRT cannot load, which `claim` stands in for
# (get_available_providers says so); the session is then ORT's own, which really falls back to the CPU.
# id -> (CLI, --device, claim those providers available, installed onnxruntime builds, phrases of the line)
GPU_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
FALLBACK = "but runs on CPUExecutionProvider"
GPU_CASES: dict[str, tuple[str, str, bool, list[str], list[str]]] = {
    "predict cuda falls back": ("predict", "cuda", True, [], ["asked for CUDAExecutionProvider", FALLBACK]),
    "predict cuda:1 falls back": (
        "predict",
        "cuda:1",
        True,
        [],
        ["asked for CUDAExecutionProvider", FALLBACK],
    ),
    "predict tensorrt falls back": (
        "predict",
        "tensorrt",
        True,
        [],
        ["asked for TensorrtExecutionProvider", FALLBACK, "TensorRT 10"],
    ),
    "bench cuda falls back": ("bench", "cuda", True, [], ["asked for CUDAExecutionProvider", FALLBACK]),
    "bench tensorrt falls back": (
        "bench",
        "tensorrt",
        True,
        [],
        ["asked for TensorrtExecutionProvider", FALLBACK],
    ),
    "predict cuda, CPU build shadows the GPU one": (
        "predict",
        "cuda",
        False,
        ["onnxruntime", "onnxruntime-gpu"],
        ["onnxruntime and onnxruntime-gpu are installed together", "CUDAExecutionProvider is missing"],
    ),
    "bench tensorrt, CPU build shadows the GPU one": (
        "bench",
        "tensorrt",
        False,
        ["onnxruntime", "onnxruntime-gpu"],
        ["installed together", "TensorrtExecutionProvider is missing"],
    ),
    "predict cuda, both builds, GPU one falls back": (
        "predict",
        "cuda",
        True,
        ["onnxruntime", "onnxruntime-gpu"],
        ["asked for CUDAExecutionProvider", FALLBACK],
    ),
    "predict device index not a number": ("predict", "cuda:x", True, [], ["device 'cuda:x'", "a GPU number"]),
}


def _cli_args(cli: str, model: Path, video: Path, tmp: Path, device: str) -> list[str]:
    outputs = ["--out", tmp / "out"] if cli == "predict" else ["--json", tmp / "r.json", "--frames", 2]
    return [video, "--model", model, "--device", device, *outputs]


@pytest.mark.parametrize("case", list(GPU_CASES))
def test_gpu_provider_that_cannot_start_is_refused(
    case: str, fx: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    """A run asked for a GPU provider never reports CPU figures as the GPU's: exit 2, one line naming the
    provider asked for, the one running and the remedy; no output, no empty TensorRT cache folder."""
    ort = pytest.importorskip("onnxruntime")
    from prodseg.bench.cli import main as bench_main
    from prodseg.runtime.runners import onnxrt

    cli, device, claim, builds, phrases = GPU_CASES[case]
    if claim:
        available = ort.get_available_providers()
        monkeypatch.setattr(ort, "get_available_providers", lambda: [*GPU_PROVIDERS, *available])
    monkeypatch.setattr(onnxrt, "onnxruntime_builds", lambda: builds or ["onnxruntime"])
    model = tmp_path / "m.onnx"
    shutil.copy(fx["onnx"], model)  # beside it is where the TensorRT cache would go
    before = _snapshot(tmp_path)
    args = _cli_args(cli, model, fx["video"], tmp_path, device)
    res = CliRunner().invoke(main if cli == "predict" else bench_main, [str(a) for a in args])
    assert res.exit_code == 2, (case, res.output)
    line = one_error_line(res.output)
    assert all(phrase in line for phrase in phrases), line
    if "asked for" in line:
        assert "pip uninstall -y onnxruntime onnxruntime-gpu" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"] and _snapshot(tmp_path) == before


def test_vfr_mkv_runs_to_the_end(deeplab, vfr_video, tmp_path: Path) -> None:
    path, gaps = vfr_video
    res = _run(path, "--model", deeplab[0], "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (tmp_path / "o" / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == len(gaps) + 1
    assert records[-1]["timestamp_s"] == pytest.approx(sum(gaps) / 1000, abs=2e-3)


def test_overwrite_replaces_an_earlier_run(deeplab, tiny_video, tmp_path: Path) -> None:
    out = tmp_path / "o"
    args = [tiny_video[0], "--model", deeplab[0], "--out", out, "--save-masks"]
    assert _run(*args, "--max-frames", 5).exit_code == 0
    (out / ".predictions.abc.tmp.jsonl").write_text("left by a killed run")
    res = _run(*args, "--max-frames", 2)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert len(list((out / "masks").iterdir())) == 5  # refused: untouched
    res = _run(*args, "--max-frames", 2, "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["000000.png", "000001.png"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in out.iterdir()) == ["masks", "predictions.jsonl", "summary.json"]


def _fail_at(monkeypatch, at: int, exc: BaseException) -> None:
    """Make the at-th postprocess call raise exc (in the pipeline's thread, like a bug or a signal)."""
    from prodseg.runtime.predictor import Predictor

    calls = []
    original = Predictor.postprocess

    def failing(self, outputs, ctx):
        calls.append(1)
        if len(calls) == at:
            raise exc
        return original(self, outputs, ctx)

    monkeypatch.setattr(Predictor, "postprocess", failing)


@pytest.mark.parametrize(
    "at, exc, code, message",
    [
        (4, RuntimeError("boom"), 3, "boom"),  # a bug after 3 masks are on disk: the run's outputs go
        (1, KeyboardInterrupt(), 130, "interrupted: nothing was written"),  # before the first frame
    ],
)
def test_a_run_that_stops_without_results_leaves_nothing(
    deeplab, tiny_video, tmp_path: Path, monkeypatch, at: int, exc: BaseException, code: int, message: str
) -> None:
    _fail_at(monkeypatch, at, exc)
    res = _run(
        tiny_video[0],
        "--model",
        deeplab[0],
        "--out",
        tmp_path / "o",
        "--save-masks",
        "--save-video",
        "--queue-size",
        "1",
    )
    assert res.exit_code == code and message in res.output
    assert not (tmp_path / "o").exists()


def test_interrupt_after_frames_keeps_them_complete(deeplab, tiny_video, tmp_path: Path, monkeypatch) -> None:
    _fail_at(monkeypatch, 4, KeyboardInterrupt())
    out = tmp_path / "o"
    res = _run(tiny_video[0], "--model", deeplab[0], "--out", out, "--save-masks", "--queue-size", "1")
    assert res.exit_code == 130
    assert (
        f"interrupted after 3 frames: {out}/predictions.jsonl holds 3 frames, {out}/masks 3 PNGs"
        in res.output
    )
    assert sorted(p.name for p in out.rglob("*")) == [
        "000000.png",
        "000001.png",
        "000002.png",
        "masks",
        "predictions.jsonl",
    ]


def test_interrupt_keeps_frames_finished_while_the_sinks_were_busy(
    deeplab, tiny_video, tmp_path: Path, monkeypatch
) -> None:
    """The third frame is post-processed and queued while the sinks still write the second: the
    interrupt at the fourth must not drop it."""
    import time

    from prodseg.runtime.sinks import MaskSink

    _fail_at(monkeypatch, 4, KeyboardInterrupt())
    original, written = MaskSink.write, []

    def slow(self, frame, pred) -> None:
        written.append(1)
        if len(written) == 2:
            time.sleep(0.5)  # the pipeline finishes frame 3 and fails on frame 4 meanwhile
        original(self, frame, pred)

    monkeypatch.setattr(MaskSink, "write", slow)
    out = tmp_path / "o"
    res = _run(tiny_video[0], "--model", deeplab[0], "--out", out, "--save-masks", "--queue-size", "1")
    assert res.exit_code == 130 and "interrupted after 3 frames" in res.output
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["000000.png", "000001.png", "000002.png"]


def _long_video(path: Path, frames: int) -> Path:
    """A low-entropy H.264 video that encodes quickly but takes predict several seconds."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
    stream.options = {"threads": "1", "preset": "ultrafast"}
    for i in range(frames):
        img = np.full((96, 160, 3), i % 256, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _long_video(tmp_path_factory.mktemp("long") / "long.mp4", 3000)


def _start_and_signal(model: Path, video: Path, out: Path, sig: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENCV_FFMPEG_LOGLEVEL": "-8"}
    cmd = [
        sys.executable,
        "-m",
        "prodseg.runtime.cli",
        str(video),
        "--model",
        str(model),
        "--out",
        str(out),
        "--save-masks",
        "--save-video",
        "--threads",
        "1",
    ]
    # A job started in the background inherits SIGINT ignored (CI may run the tests that way): give the
    # child Ctrl-C back, as a terminal would.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        # finished PNGs only: pathlib's glob also matches the hidden temporary file of the one being written
        done = [p for p in (out / "masks").glob("*.png") if not p.name.startswith(".")]
        if len(done) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "predict ended before it could be interrupted"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_keeps_complete_frames_and_says_what_is_there(
    deeplab, long_video, tmp_path: Path, sig: int, code: int
) -> None:
    out = tmp_path / "o"
    res = _start_and_signal(deeplab[0], long_video, out, sig)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == code, res.stderr
    assert len(lines) == 1 and "interrupted after" in lines[0] and "Traceback" not in res.stderr
    assert not list(out.rglob(".*")), "hidden temporary files were left"
    assert not (out / "summary.json").exists()
    jsonl = len((out / "predictions.jsonl").read_text().splitlines())
    pngs = len(list((out / "masks").glob("*.png")))
    assert 5 <= pngs < 3000 and abs(jsonl - pngs) <= 1
    assert f"predictions.jsonl holds {jsonl} frames" in lines[0] and f"masks {pngs} PNGs" in lines[0]
    assert "--overwrite" in lines[0]
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert cap.isOpened() and cap.read()[0]  # finalized, playable
