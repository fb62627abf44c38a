"""Hostile inputs for prodseg-export: each exits 2 with one `error:` line, before any export work (or,
for what only TensorRT can tell, at the engine build, still leaving nothing behind).

Every case is built here from tiny files in tmp_path. Afterwards the --out folder must be absent, or,
where the case made one beforehand (an earlier export, a file, someone else's folder), byte-for-byte
unchanged, with no temporary folder left beside it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from prodseg.data.imageio import write_image
from prodseg.export.cli import main
from tests.export import trt_standin
from tests.export.conftest import make_checkpoint


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` with its bytes (None when it does not exist; a file maps to itself)."""
    if not folder.exists():
        return None
    if folder.is_file():
        return {".": folder.read_bytes()}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def earlier_export(out: Path) -> Path:
    """Stand-in for an earlier export's folder: only 'unchanged afterwards' is checked."""
    (out / "openvino").mkdir(parents=True)
    (out / "model.onnx").write_bytes(b"old onnx")
    (out / "openvino" / "model.xml").write_bytes(b"<old/>")
    (out / "export_manifest.json").write_text('{"artifacts": ["old"]}\n')
    return out


def image_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    write_image(folder / "a.png", np.zeros((16, 16, 3), np.uint8))
    return folder


class Env:
    """What a case builder may use: tmp_path, the session checkpoint and dataset, monkeypatch."""

    def __init__(self, tmp: Path, ckpt: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch):
        self.tmp, self.ckpt, self.dataset, self.monkeypatch = tmp, ckpt, dataset, monkeypatch
        self.out = tmp / "out"

    def file(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def checkpoint_without_dataset(self) -> Path:
        """A valid checkpoint whose config names a dataset folder that is not here."""
        return make_checkpoint(self.tmp / "moved.pt", data_root=self.tmp / "gone")


def _state_dict(env: Env) -> Path:
    path = env.tmp / "state.pt"
    torch.save(torch.nn.Conv2d(3, 4, 1).state_dict(), path)
    return path


def _foreign_class(env: Env) -> Path:
    """A prodseg-looking dict that also pickles a callable (os.system): loading must refuse to import it."""
    path = env.tmp / "foreign.pt"
    torch.save({"format": "prodseg-checkpoint", "model": {}, "run": os.system}, path)
    return path


def _out_unwritable(env: Env) -> Path:
    real_access = os.access
    env.monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, *a, **k: (
            False if Path(p) == env.tmp and mode & os.W_OK else real_access(p, mode, *a, **k)
        ),
    )
    return env.out


def _empty_dataset(env: Env) -> Path:
    folder = env.tmp / "ds"
    (folder / "images").mkdir(parents=True)
    shutil.copy(env.dataset / "classes.yaml", folder / "classes.yaml")
    return folder


def _text_folder(env: Env) -> Path:
    (env.tmp / "texts").mkdir()
    (env.tmp / "texts" / "readme.txt").write_text("not an image")
    return env.tmp / "texts"


def _truncated(env: Env) -> Path:
    data = env.ckpt.read_bytes()
    return env.file("truncated.pt", data[: len(data) // 2])


def _trt_without_cuda_bindings(env: Env) -> list[object]:
    """TensorRT (a stand-in: it cannot be installed here) with a cuda-python that lacks cuda.bindings."""
    trt_standin.install(env.monkeypatch, cuda_bindings=False)
    return [env.ckpt, "--trt", "--no-verify"]


def _trt_build_fails(env: Env) -> list[object]:
    """TensorRT (a stand-in) whose builder returns no engine, as on a GPU out of memory."""
    trt_standin.install(env.monkeypatch, fail_with="Error Code 2: Internal Error (out of device memory)")
    return [env.ckpt, "--trt", "--no-verify"]


# name -> builder(env) -> (arguments, phrase the error line must contain). "OUT" becomes env.out.
Builder = Callable[[Env], tuple[list[object], str]]
CASES: dict[str, Builder] = {
    # checkpoint
    "ckpt-missing": lambda e: ([e.tmp / "nope.pt", "--no-verify"], "nope.pt: checkpoint not found"),
    "ckpt-folder": lambda e: ([e.tmp, "--no-verify"], "is a folder, not a checkpoint"),
    "ckpt-empty": lambda e: ([e.file("empty.pt", b""), "--no-verify"], "empty.pt"),
    "ckpt-garbage": lambda e: ([e.file("garbage.pt", os.urandom(4096)), "--no-verify"], "garbage.pt"),
    "ckpt-text": lambda e: ([e.file("notes.pt", b"model: deeplab\n"), "--no-verify"], "notes.pt"),
    "ckpt-truncated": lambda e: ([_truncated(e), "--no-verify"], "truncated.pt"),
    "ckpt-state-dict": lambda e: ([_state_dict(e), "--no-verify"], "state.pt: not a prodseg checkpoint"),
    "ckpt-foreign-class": lambda e: ([_foreign_class(e), "--no-verify"], "foreign.pt"),
    # output folder
    "out-is-file": lambda e: ([e.ckpt, "--no-verify", "--out", e.file("out", b"x")], "is a file"),
    "out-under-file": lambda e: (
        [e.ckpt, "--no-verify", "--out", e.file("blocker", b"x") / "out"],
        "cannot create the output folder",
    ),
    "out-foreign-folder": lambda e: (
        [e.ckpt, "--no-verify", "--out", e.ckpt.parent],
        "no export_manifest.json",
    ),
    "out-unwritable": lambda e: ([e.ckpt, "--no-verify", "--out", _out_unwritable(e)], "not writable"),
    "out-holds-checkpoint": lambda e: (
        [shutil.copy(e.ckpt, earlier_export(e.out) / "best.pt"), "--no-verify"],
        "contains the input",
    ),
    # calibration / verification images
    "calib-missing": lambda e: (
        [e.ckpt, "--int8", "--calib-data", e.tmp / "nodata"],
        "nodata: calibration folder not found",
    ),
    "calib-empty": lambda e: ([e.ckpt, "--int8", "--calib-data", e.tmp], "no images"),
    "calib-no-images": lambda e: ([e.ckpt, "--int8", "--calib-data", _text_folder(e)], "texts: no images"),
    "calib-is-file": lambda e: (
        [e.ckpt, "--int8", "--calib-data", e.file("a.png", b"x")],
        "a.png: is a file",
    ),
    "calib-empty-dataset": lambda e: ([e.ckpt, "--int8", "--calib-data", _empty_dataset(e)], "ds: no images"),
    "calib-images-only-to-verify": lambda e: (
        [e.ckpt, "--calib-data", image_folder(e.tmp / "imgs")],
        "imgs: --calib-data has no masks",
    ),
    "int8-checkpoint-dataset-gone": lambda e: (
        [e.checkpoint_without_dataset(), "--int8", "--no-verify"],
        "gone: calibration folder not found",
    ),
    "verify-checkpoint-dataset-gone": lambda e: (
        [e.checkpoint_without_dataset()],
        "gone: the checkpoint's dataset folder is not here",
    ),
    # option values
    "input-size-not-a-size": lambda e: ([e.ckpt, "--input-size", "abc"], "--input-size abc: give HxW"),
    "input-size-zero": lambda e: ([e.ckpt, "--input-size", "0x64"], "--input-size 0x64"),
    "input-size-off-the-stride": lambda e: ([e.ckpt, "--input-size", "65x64"], "stride), e.g. 64x64"),
    "dynamic-with-trt": lambda e: ([e.ckpt, "--dynamic", "--trt"], "--dynamic: TensorRT engines"),
    "opset-too-old": lambda e: ([e.ckpt, "--opset", "16"], "--opset 16"),
    "opset-too-new": lambda e: ([e.ckpt, "--opset", "99"], "--opset 99"),
    "opset-not-int": lambda e: ([e.ckpt, "--opset", "seventeen"], "--opset"),
    "calib-images-zero": lambda e: ([e.ckpt, "--int8", "--calib-images", "0"], "--calib-images 0"),
    "verify-images-zero": lambda e: ([e.ckpt, "--verify-images", "0"], "--verify-images 0"),
    "calib-method-unknown": lambda e: ([e.ckpt, "--int8", "--calib-method", "magic"], "--calib-method"),
    "delta-miou-nan": lambda e: ([e.ckpt, "--int8", "--int8-delta-miou", "nan"], "--int8-delta-miou nan"),
    "unknown-flag": lambda e: ([e.ckpt, "--tflite"], "--tflite"),
    "no-checkpoint": lambda e: (["--onnx"], "CHECKPOINT"),
    # flags that contradict each other or would be ignored
    "strict-without-verify": lambda e: ([e.ckpt, "--strict", "--no-verify"], "--strict"),
    # TensorRT
    "trt-calibrator-removed": lambda e: ([e.ckpt, "--trt", "--int8", "--trt-calibrator"], "--trt-calibrator"),
    "trt-cuda-python-without-bindings": lambda e: (_trt_without_cuda_bindings(e), "no cuda.bindings module"),
    "trt-build-fails": lambda e: (
        _trt_build_fails(e),
        "model.onnx: TensorRT could not build the FP32 engine (TensorRT: Error Code 2",
    ),
    "calib-method-without-int8": lambda e: ([e.ckpt, "--calib-method", "entropy"], "--calib-method: has no"),
    "calib-images-without-int8": lambda e: ([e.ckpt, "--calib-images", "4"], "--calib-images: has no"),
    "delta-miou-without-int8": lambda e: ([e.ckpt, "--int8-delta-miou", "2"], "--int8-delta-miou: has no"),
    "verify-images-without-verify": lambda e: (
        [e.ckpt, "--no-verify", "--verify-images", "2"],
        "--verify-images: has no effect",
    ),
    "calib-data-unused": lambda e: (
        [e.ckpt, "--no-verify", "--calib-data", e.dataset],
        "--calib-data: has no effect",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_exits_2_with_one_line(case, tmp_path, deeplab_ckpt, tiny_dataset, monkeypatch):
    env = Env(tmp_path, deeplab_ckpt, tiny_dataset, monkeypatch)
    args, phrase = CASES[case](env)
    if "--out" not in args and args and args[0] != "--onnx":
        args = [*args, "--out", env.out]
    out = Path(args[args.index("--out") + 1]) if "--out" in args else env.out
    before = snapshot(out)
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert phrase in lines[0] and "Traceback" not in res.output
    assert snapshot(out) == before
    if out.parent.is_dir():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temporaries
