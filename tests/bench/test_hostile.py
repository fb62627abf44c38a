"""prodseg-bench against hostile input: exit 2, one `error:` line, no traceback, no output file written."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prodseg.bench.cli import main
from prodseg.runtime.runners import auto_backend
from tests.hostile import one_error_line

Setup = Callable[[Path, dict[str, Path]], list[Any]]


def bench(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def _junk(tmp: Path, name: str, data: bytes = b"\x00garbage\xff" * 50) -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


def _ir_copy(tmp: Path, fx: dict[str, Path], bin_bytes: Callable[[bytes], bytes | None]) -> Path:
    """The tiny OpenVINO IR copied to tmp with its .bin replaced by bin_bytes(original) (None: removed)."""
    xml = fx["openvino"]
    for f in xml.parent.glob("model.*"):
        if f.suffix not in (".bin", ".onnx"):
            shutil.copy(f, tmp / f.name)
    data = bin_bytes(xml.with_suffix(".bin").read_bytes())
    if data is not None:
        (tmp / "model.bin").write_bytes(data)
    return tmp / "model.xml"


def _corrupt_middle(tmp: Path, fx: dict[str, Path]) -> Path:
    """The tiny video with 40-60 % of its bytes zeroed: its index survives, decoding stops midway."""
    data = bytearray(fx["video"].read_bytes())
    n = len(data)
    data[int(n * 0.4) : int(n * 0.6)] = bytes(int(n * 0.6) - int(n * 0.4))
    return _junk(tmp, "broken.mp4", bytes(data))


def _video(spec: Callable[[Path, dict[str, Path]], Any], *extra: Any) -> Setup:
    return lambda tmp, fx: [spec(tmp, fx), "--model", fx["onnx"], *extra]


def _model(spec: Callable[[Path, dict[str, Path]], Any], *extra: Any) -> Setup:
    return lambda tmp, fx: [fx["video"], "--model", spec(tmp, fx), *extra]


def _opt(*extra: Any) -> Setup:
    return lambda tmp, fx: [fx["video"], "--model", fx["onnx"], *extra]


def _baseline(doc: Any, raw: str | None = None) -> Setup:
    def setup(tmp: Path, fx: dict[str, Path]) -> list[Any]:
        (tmp / "base.json").write_text(raw if raw is not None else json.dumps(doc))
        return [fx["video"], "--model", fx["onnx"], "--baseline", tmp / "base.json"]

    return setup


def _doc(**changes: Any) -> dict[str, Any]:
    result = {"key": "k", "fps_e2e": 10.0, "fps_model": 20.0, **changes.pop("result", {})}
    return {"schema": "prodseg-bench/1", "machine": {"cpu_model": "x"}, "results": [result], **changes}


def _in_tmp(name: str, make: Callable[[Path], Any] = lambda p: None) -> Callable[[Path, dict], Path]:
    def spec(tmp: Path, fx: dict[str, Path]) -> Path:
        make(tmp / name)
        return tmp / name

    return spec


_mkdir = _in_tmp  # readability below: _mkdir("d", Path.mkdir)

# id -> (command line built in tmp_path, phrase the one error line must contain)
# The backend that loads an .onnx by default here, as its error message names it.
ONNX_LOADER = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}[auto_backend(".onnx", "cpu")[0]]
ONNX_CANNOT = f"m.onnx: {ONNX_LOADER} cannot load this model"
CASES: dict[str, tuple[Setup, str]] = {
    "missing video": (_video(_in_tmp("nope.mp4")), "nope.mp4: no such video"),
    "empty video": (_video(lambda t, fx: _junk(t, "empty.mp4", b"")), "empty.mp4: cannot open"),
    "garbage video": (_video(lambda t, fx: _junk(t, "junk.mp4")), "junk.mp4: cannot open"),
    # --frames beyond the damage: the first pass reaches it (the video would loop)
    "video corrupt midway": (_video(_corrupt_middle, "--frames", 24), "decoding stopped at frame"),
    "video corrupt midway, throughput": (
        _video(_corrupt_middle, "--frames", 24, "--mode", "throughput"),
        "decoding stopped at frame",
    ),
    "missing model": (_model(_in_tmp("m.onnx")), "m.onnx: not found"),
    "garbage onnx": (_model(lambda t, fx: _junk(t, "m.onnx")), ONNX_CANNOT),
    "garbage xml": (_model(lambda t, fx: _junk(t, "m.xml")), "m.xml: not a valid OpenVINO IR"),
    "xml without bin": (_model(lambda t, fx: _ir_copy(t, fx, lambda b: None)), "model.bin: missing"),
    "truncated bin": (_model(lambda t, fx: _ir_copy(t, fx, lambda b: b[:100])), "model.bin: truncated"),
    "unknown suffix": (_model(lambda t, fx: _junk(t, "m.tflite")), "unknown artifact type '.tflite'"),
    "unknown backend": (_opt("--backend", "nosuch"), "'nosuch' is unknown"),
    "cuda without gpu": (_opt("--device", "cuda"), "use --device cpu"),
    "json is a folder": (lambda t, fx: _opt("--json", _mkdir("d", Path.mkdir)(t, fx))(t, fx), "is a folder"),
    "json under a file": (lambda t, fx: _opt("--json", _junk(t, "f") / "r.json")(t, fx), "is a file"),
    "save-baseline is a folder": (lambda t, fx: _opt("--save-baseline", t)(t, fx), "--save-baseline"),
    "report is a file": (lambda t, fx: _opt("--report", _junk(t, "rep"))(t, fx), "--report"),
    "baseline missing": (lambda t, fx: _opt("--baseline", t / "none.json")(t, fx), "no such file"),
    "baseline is a folder": (lambda t, fx: _opt("--baseline", t)(t, fx), "a folder, not a file"),
    "baseline not json": (_baseline(None, "{'schema': 1,"), "not valid JSON"),
    "baseline not utf-8": (lambda t, fx: _opt("--baseline", _junk(t, "b.json"))(t, fx), "not valid JSON"),
    "baseline a list": (_baseline([1, 2]), "schema 'list'"),
    "baseline other schema": (_baseline(_doc(schema="prodseg-bench/0")), "schema 'prodseg-bench/0'"),
    "baseline without results": (
        _baseline({"schema": "prodseg-bench/1", "machine": {}}),
        "'results' is missing",
    ),
    "baseline results not a list": (_baseline(_doc(results={"a": 1})), "'results' is {'a': 1}, not a list"),
    "baseline machine not an object": (_baseline(_doc(machine="mine")), "'machine' is 'mine'"),
    "baseline result not an object": (_baseline(_doc(results=[3])), "results[0] is int"),
    "baseline result without key": (
        _baseline({**_doc(), "results": [{"fps_e2e": 1, "fps_model": 1}]}),
        "'results[0].key' is missing",
    ),
    "baseline fps a string": (_baseline(_doc(result={"fps_e2e": "fast"})), "'results[0].fps_e2e' is 'fast'"),
    "baseline fps NaN": (
        _baseline(None, json.dumps(_doc(result={"fps_model": float("nan")}))),
        "'results[0].fps_model' is nan",
    ),
    "baseline fps negative": (_baseline(_doc(result={"fps_e2e": -1})), "not a finite number >= 0"),
    "sweep of two models": (_opt("--sweep", "--model", "other.onnx"), "--sweep: give one --model"),
    "sweep of two videos": (
        lambda t, fx: [fx["video"], fx["video"], "--model", fx["onnx"], "--sweep"],
        "--sweep: give one --model and one video",
    ),
    "sweep of a missing model": (_model(_in_tmp("m.onnx"), "--sweep"), "m.onnx: not found"),
    "min-agreement above 1": (_opt("--sweep", "--min-agreement", "1.5"), "'--min-agreement'"),
    "min-agreement nan": (_opt("--sweep", "--min-agreement", "nan"), "'--min-agreement'"),
    "min-fps nan": (_opt("--min-fps", "nan"), "'--min-fps': 'nan' is not a finite number; see"),
    "min-fps zero": (_opt("--min-fps", "0"), "'--min-fps'"),
    "max-p99-ms inf": (_opt("--max-p99-ms", "inf"), "'--max-p99-ms'"),
    "max-memory-mb negative": (_opt("--max-memory-mb", "-5"), "'--max-memory-mb'"),
    "max-regression nan": (_opt("--max-regression", "nan"), "'--max-regression'"),
    "max-regression 1.5": (_opt("--max-regression", "1.5"), "'--max-regression'"),
    # model flags
    "input size not a size": (_opt("--input-size", "abc"), "--input-size abc: give HxW"),
    "input size zero": (_opt("--input-size", "0x64"), "from 1 to 16384"),
    "input size off a static model": (_opt("--input-size", "65x64"), "takes a fixed 64x64 input"),
    "names count off the model": (_opt("--names", "a,b,c"), "--names gives 3 names but the model outputs 10"),
    "mean with 2 values": (_opt("--mean", "0.5,0.5"), "--mean 0.5,0.5: give 3"),
    "task unknown": (_opt("--task", "detect"), "--task detect: choose one of semantic, yolo-seg"),
    "iou for a semantic model": (_opt("--iou", "0.5"), "--iou: apply to YOLO-seg models"),
    "precision for onnxruntime": (
        _opt("--backend", "onnxruntime", "--precision", "fp16"),
        "--precision: applies to torch and openvino runs only",
    ),
    "save-card for two models": (
        lambda t, fx: _opt("--model", fx["openvino"], "--save-card", t / "c.json")(t, fx),
        "describes one model",
    ),
}


@pytest.fixture(scope="module")
def fx(tiny_artifacts: dict[str, Path], tiny_video: tuple[Path, Path]) -> dict[str, Path]:
    return {**tiny_artifacts, "video": tiny_video[0]}


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_exits_2_with_one_line(case: str, fx: dict[str, Path], tmp_path: Path) -> None:
    setup, phrase = CASES[case]
    args = setup(tmp_path, fx)
    outputs = ("--json", "--save-baseline", "--report")
    finals = (
        []
        if any(o in args for o in outputs)
        else [
            "--json",
            tmp_path / "r.json",
            "--save-baseline",
            tmp_path / "b.json",
            "--report",
            tmp_path / "rep",
        ]
    )
    if not importlib.util.find_spec("matplotlib"):  # an edge install: --report would be refused first
        finals = finals[:-2]
    before = _snapshot(tmp_path)
    frames = [] if "--frames" in args else ["--frames", 3]
    res = bench(*args, *finals, *frames, "--warmup", 0)
    assert res.exit_code == 2, (case, res.output)
    assert phrase in one_error_line(res.output), res.output
    assert _snapshot(tmp_path) == before  # no result, report or baseline file; nothing hidden either
