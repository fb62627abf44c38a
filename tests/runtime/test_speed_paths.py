"""The fast paths of the runtime: preprocessing fused into the model, the auto backend, PyAV frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import prodseg.runtime.runners as runners
from prodseg.runtime.preprocess import normalize_lut, to_nchw
from prodseg.runtime.runners.onnx_preprocess import uint8_bgr_input

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def conv_model(path: Path, dtype: str = "float32", inputs: int = 1) -> Path:
    """A 1x1 conv (3 -> 2 channels, fixed weights) over an (N, 3, 8, 12) input: tiny and exact."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    w = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1) / 10 - 0.2
    nodes = [helper.make_node("Conv", ["images", "w"], ["out"])]
    graph_inputs = [helper.make_tensor_value_info("images", elem, ["n", 3, 8, 12])]
    if inputs == 2:
        graph_inputs.append(helper.make_tensor_value_info("extra", elem, [1]))
    graph = helper.make_graph(
        nodes,
        "conv",
        graph_inputs,
        [helper.make_tensor_value_info("out", elem, ["n", 2, 8, 12])],
        [numpy_helper.from_array(w.astype(dtype), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)


def test_onnx_uint8_input_equals_python_preprocessing(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = conv_model(tmp_path / "m.onnx")
    fused = ort.InferenceSession(uint8_bgr_input(str(path), MEAN, STD))
    plain = ort.InferenceSession(str(path))
    assert [(i.name, i.type, i.shape) for i in fused.get_inputs()] == [
        ("images", "tensor(uint8)", ["n", 8, 12, 3])
    ]
    bgr = pixels()
    want = plain.run(None, {"images": to_nchw(bgr, normalize_lut(MEAN, STD), bgr=True)})[0]
    got = fused.run(None, {"images": bgr[None]})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_onnx_fusion_declines_what_it_cannot_rewrite(tmp_path: Path) -> None:
    assert uint8_bgr_input(str(conv_model(tmp_path / "two.onnx", inputs=2)), MEAN, STD) is None


def test_onnx_fp16_model_gets_a_cast(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = conv_model(tmp_path / "h.onnx", dtype="float16")
    fused = ort.InferenceSession(uint8_bgr_input(str(path), [0, 0, 0], [1, 1, 1]))
    bgr = pixels()
    want = ort.InferenceSession(str(path)).run(
        None, {"images": to_nchw(bgr, normalize_lut([0, 0, 0], [1, 1, 1]), bgr=True, dtype=np.float16)}
    )[0]
    np.testing.assert_allclose(fused.run(None, {"images": bgr[None]})[0], want, atol=2e-3)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_runner_fusion_equals_python_preprocessing(tmp_path: Path, backend: str) -> None:
    pytest.importorskip(backend)
    path = str(conv_model(tmp_path / "m.onnx"))
    cls = runners.runner_class(backend)
    extra = {"inference_precision": "f32"} if backend == "openvino" else {}
    plain, fused = cls(path, **extra), cls(path, **extra)
    plain.activate()
    fused.activate()
    assert fused.fuse_preprocess(MEAN, STD)
    bgr = pixels()
    want = plain.infer({"images": to_nchw(bgr, normalize_lut(MEAN, STD), bgr=True)})
    got = fused.infer({"images": bgr[None]})
    np.testing.assert_allclose(next(iter(got.values())), next(iter(want.values())), rtol=1e-4, atol=1e-4)
    assert fused.input_metadata["images"][1] == np.uint8


def test_auto_backend_prefers_openvino_for_onnx_on_x86_cpus(monkeypatch) -> None:
    monkeypatch.setattr(runners.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(runners, "installed", lambda backend: True)
    backend, why, opts = runners.auto_backend(".onnx", "cpu")
    assert backend == "openvino" and "faster" in why and opts == {}  # OpenVINO's own default precision
    assert runners.auto_backend(".onnx", "cuda")[:2] == ("onnxruntime", "the .onnx file's own backend")
    assert runners.auto_backend(".xml", "cpu")[0] == "openvino"
    monkeypatch.setattr(runners, "installed", lambda backend: backend != "openvino")
    own = "the .onnx file's own backend (openvino not installed)"
    assert runners.auto_backend(".onnx", "cpu")[:2] == ("onnxruntime", own)
    monkeypatch.setattr(runners.platform, "machine", lambda: "aarch64")
    assert runners.auto_backend(".onnx", "cpu")[0] == "onnxruntime"


@pytest.mark.parametrize(("flag", "want"), [(None, None), ("fp32", "f32"), ("bf16", "bf16")])
def test_precision_flag_sets_openvino_inference_precision(tmp_path: Path, flag, want) -> None:
    """--precision pins OpenVINO's inference precision; without it the compiled model runs at OpenVINO's
    default for this CPU (f32, or bf16 where the CPU computes bf16 natively)."""
    pytest.importorskip("openvino")
    from prodseg.runtime.model_options import backend_options

    opts = backend_options({"precision": flag} if flag else {}, "openvino")
    assert opts == ({"inference_precision": want} if want else {})
    runner = runners.runner_class("openvino")(str(conv_model(tmp_path / "m.onnx")), **opts)
    runner.activate()
    try:
        got = runner.effective_settings()["inference_precision"]
    finally:
        runner.deactivate()
    got = {"float32": "f32", "bfloat16": "bf16"}.get(got, got)
    if want == "f32":
        assert got == "f32"
    else:  # a CPU without native bf16 runs f32 whatever the hint
        assert got in ("f32", "bf16")
    assert backend_options({"precision": "fp16", "channels_last": True}, "onnxruntime") == {}


def test_av_frames_convert_at_the_size_asked(tiny_video) -> None:
    pytest.importorskip("av")
    from prodseg.runtime.sources import AvSource, open_source

    src = open_source(tiny_video[0])
    assert isinstance(src, AvSource)
    frame = next(iter(src))
    assert frame.size_hw == (96, 160)
    small = frame.resized((80, 48))
    assert small.shape == (48, 80, 3) and small.dtype == np.uint8
    ref = cv2.resize(frame.image, (80, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - ref).mean() < 4  # swscale's area filter vs OpenCV's, YUV vs BGR
    assert frame.resized((160, 96)) is frame.image
    src.close()


def test_video_falls_back_to_opencv_without_pyav(tiny_video, monkeypatch) -> None:
    from prodseg.runtime import sources

    def no_av(*args, **kwargs):
        raise ImportError("No module named 'av'")

    monkeypatch.setattr(sources, "AvSource", no_av)
    src = sources.open_source(tiny_video[0])
    assert isinstance(src, sources.CaptureSource) and len(list(src)) == 24
