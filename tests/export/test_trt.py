from __future__ import annotations

import importlib.util

import pytest

from prodseg.errors import BadInput
from prodseg.export import trt as trt_export


def has_trt_gpu() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder") and trt_export.cuda_available()


def test_require_tensorrt_names_the_remedy():
    if has_trt_gpu():
        pytest.skip("TensorRT and a GPU are present here")
    with pytest.raises(BadInput, match=r"pip install 'prodseg\[tensorrt\]'") as err:
        trt_export.require_tensorrt()
    assert "TensorRT is not" in str(err.value) or "no CUDA GPU" in str(err.value)


@pytest.mark.gpu
@pytest.mark.slow
def test_engine_build_end_to_end(tmp_path, exported_onnx):
    if not has_trt_gpu():
        pytest.skip("needs TensorRT and an NVIDIA GPU")
    from prodseg.metadata import read_sidecar
    from prodseg.runtime import load

    fp32, source = exported_onnx
    spec = trt_export.EngineSpec(fp32, tmp_path / "model.engine", timing_cache=tmp_path / "timing.cache")
    engine = trt_export.build_engine(spec, source.meta)
    assert engine.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
    assert read_sidecar(engine).arch == source.meta.arch
    import numpy as np

    pred = load(engine, device="cuda").predict(np.zeros((64, 64, 3), np.uint8))
    assert pred.label_map.shape == (64, 64)


def test_engine_plan_per_precision(tmp_path, monkeypatch):
    """What --trt builds from which ONNX (build_engine itself needs a GPU: it is replaced by a recorder)."""
    from prodseg.export.artifacts import Artifact, ExportContext
    from prodseg.export.config import ExportConfig
    from prodseg.export.registry import export_trt
    from prodseg.metadata import ArtifactMetadata

    specs = []

    def record(spec, meta):
        specs.append(spec)
        return spec.engine

    monkeypatch.setattr(trt_export, "build_engine", record)
    meta = ArtifactMetadata("deeplabv3plus", ["a", "b"], [[0, 0, 0], [1, 1, 1]], [64, 64])
    source = type("S", (), {"meta": meta})()

    def plan(*formats, calibrator=False):
        specs.clear()
        cfg = ExportConfig(tmp_path / "best.pt", formats=formats, trt_calibrator=calibrator)
        ctx = ExportContext(cfg, source, tmp_path)
        files = {"onnx": "model.onnx", "onnx_fp16": "model_fp16.onnx", "onnx_int8": "model_int8.onnx"}
        for name, file in files.items():
            ctx.add(Artifact(name, tmp_path / file, "fp32"))
        arts = export_trt(ctx)
        return [(a.precision, s.onnx.name, s.engine.name) for a, s in zip(arts, specs, strict=True)]

    assert plan("trt") == [("fp32", "model.onnx", "model.engine")]
    assert plan("trt", "fp16", "int8") == [
        ("fp16", "model_fp16.onnx", "model_fp16.engine"),
        ("int8", "model_int8.onnx", "model_int8.engine"),
    ]
    assert all(s.timing_cache == tmp_path / "trt_timing.cache" and s.calibrator_feeds is None for s in specs)
    assert plan("trt", "int8", calibrator=True) == [("int8", "model.onnx", "model_int8.engine")]
    assert specs[0].calibrator_feeds is not None and specs[0].calibration_cache.name == "model_int8.trt.calib"
