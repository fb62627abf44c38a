"""TensorRT export: fail-fast checks, the build's control flow (on a stand-in TensorRT) and, on a GPU,
FP16/INT8 engines whose labels agree with PyTorch."""

from __future__ import annotations

import importlib.util
import logging
import sys

import numpy as np
import pytest

from prodseg.errors import BadInput
from prodseg.export import trt as trt_export
from prodseg.metadata import ArtifactMetadata
from tests.export import trt_standin

META = ArtifactMetadata("deeplabv3plus", ["a", "b"], [[0, 0, 0], [1, 1, 1]], [64, 64])


def has_trt_gpu() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt
    except ImportError:
        return False
    has_bindings = importlib.util.find_spec("cuda.bindings") is not None
    return hasattr(tensorrt, "Builder") and has_bindings and trt_export.cuda_available()


def test_require_tensorrt_names_the_remedy():
    if has_trt_gpu():
        pytest.skip("TensorRT and a GPU are present here")
    with pytest.raises(BadInput, match=r"pip install 'prodseg\[tensorrt\]'") as err:
        trt_export.require_tensorrt()
    assert "TensorRT is not" in str(err.value) or "no CUDA GPU" in str(err.value)


@pytest.mark.parametrize("version", ["12.4.0", None])
def test_cuda_python_without_cuda_bindings_is_refused(monkeypatch, version):
    """cuda-python before 12.6.1 has no `cuda.bindings` (hidden here through sys.modules)."""
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setattr(trt_export, "installed_version", lambda dist: version)
    with pytest.raises(BadInput) as err:
        trt_export.require_cuda_bindings()
    msg = str(err.value)
    assert "no cuda.bindings module" in msg and "cuda-python >= 12.6.1" in msg
    assert ("cuda-python 12.4.0 has" in msg) if version else ("cuda-python is not installed" in msg)


def spec(tmp_path, **kw) -> trt_export.EngineSpec:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    return trt_export.EngineSpec(
        onnx, tmp_path / "model.engine", timing_cache=tmp_path / "timing.cache", **kw
    )


def test_static_input_gets_no_profile_and_a_strongly_typed_network(tmp_path, monkeypatch):
    standin = trt_standin.install(monkeypatch)
    engine = trt_export.build_engine(spec(tmp_path), META)
    assert engine.read_bytes() == b"engine" and (tmp_path / "model.json").is_file()
    assert standin.configs[0].profiles == []
    assert standin.networks[0].flags == 1 << int(standin.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def test_dynamic_batch_gets_one_profile_up_to_max_batch(tmp_path, monkeypatch):
    standin = trt_standin.install(monkeypatch, input_shape=(-1, 3, 64, 64))
    trt_export.build_engine(spec(tmp_path, max_batch=4), META)
    (profile,) = standin.configs[0].profiles
    assert profile.shapes == {"images": ((1, 3, 64, 64), (1, 3, 64, 64), (4, 3, 64, 64))}


def test_dynamic_height_is_refused_before_the_build(tmp_path, monkeypatch):
    trt_standin.install(monkeypatch, input_shape=(1, 3, -1, 64))
    with pytest.raises(BadInput, match=r"model.onnx: input 'images' has a dynamic height/width"):
        trt_export.build_engine(spec(tmp_path), META)
    assert not (tmp_path / "model.engine").exists()


def test_a_timing_cache_from_another_gpu_is_replaced_not_fatal(tmp_path, monkeypatch, caplog):
    standin = trt_standin.install(monkeypatch)
    s = spec(tmp_path)
    s.timing_cache.write_bytes(trt_standin.OTHER_GPU_CACHE)
    with caplog.at_level(logging.WARNING):
        trt_export.build_engine(s, META)
    assert any("timing.cache" in r.getMessage() and "another GPU" in r.getMessage() for r in caplog.records)
    assert standin.configs[0].timing_cache.data == b""  # a fresh cache was attached
    assert s.timing_cache.read_bytes() == b"timings after nothing"  # and written back in its place
    assert s.engine.read_bytes() == b"engine"


def test_a_matching_timing_cache_is_used(tmp_path, monkeypatch):
    standin = trt_standin.install(monkeypatch)
    s = spec(tmp_path)
    s.timing_cache.write_bytes(b"ours")
    trt_export.build_engine(s, META)
    assert standin.configs[0].timing_cache.data == b"ours"
    assert s.timing_cache.read_bytes() == b"timings after ours"


def test_a_failed_build_names_the_onnx_and_tensorrts_error_and_writes_nothing(tmp_path, monkeypatch):
    trt_standin.install(monkeypatch, fail_with="[optimizer.cpp::x] Error Code 4:\n  out of memory")
    s = spec(tmp_path)
    with pytest.raises(BadInput) as err:
        trt_export.build_engine(s, META)
    msg = str(err.value)
    assert msg.startswith("model.onnx: TensorRT could not build the FP32 engine")
    assert "Error Code 4: out of memory" in msg and "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no engine, sidecar or cache


def test_engine_plan_per_precision(tmp_path, monkeypatch):
    """What --trt builds from which ONNX (build_engine itself needs a GPU: it is replaced by a recorder)."""
    from prodseg.export.artifacts import Artifact, ExportContext
    from prodseg.export.config import ExportConfig
    from prodseg.export.registry import export_trt, trt_inputs

    specs = []

    def record(spec, meta):
        specs.append(spec)
        return spec.engine

    monkeypatch.setattr(trt_export, "build_engine", record)
    source = type("S", (), {"meta": META})()

    def plan(*formats):
        specs.clear()
        cfg = ExportConfig(tmp_path / "best.pt", formats=formats)
        ctx = ExportContext(cfg, source, tmp_path)
        files = {
            "onnx": "model.onnx",
            "onnx_fp16": "model_fp16.onnx",
            "onnx_int8": "model_int8.onnx",
            "onnx_int8_trt": "model_int8_trt.onnx",
        }
        for name, file in files.items():
            ctx.add(Artifact(name, tmp_path / file, "fp32"))
        arts = export_trt(ctx)
        return [(a.precision, s.onnx.name, s.engine.name) for a, s in zip(arts, specs, strict=True)]

    assert plan("trt") == [("fp32", "model.onnx", "model.engine")]
    assert plan("trt", "fp16", "int8") == [
        ("fp16", "model_fp16.onnx", "model_fp16.engine"),
        ("int8", "model_int8_trt.onnx", "model_int8.engine"),
    ]
    assert all(s.timing_cache == tmp_path / "trt_timing.cache" for s in specs)
    assert trt_inputs(ExportConfig(tmp_path / "best.pt", formats=("trt", "int8"))) == ("onnx", "int8_trt")


@pytest.mark.slow
def test_trt_int8_export_builds_from_the_symmetric_onnx(tmp_path, monkeypatch, deeplab_ckpt):
    """`--trt --int8` end to end on the stand-in TensorRT: the CPU INT8 ONNX, the symmetric one from the
    same calibration, and the INT8 engine parsed from the latter, all in the manifest."""
    import json

    from click.testing import CliRunner

    from prodseg.export.cli import main

    standin = trt_standin.install(monkeypatch)
    out = tmp_path / "out"
    args = [deeplab_ckpt, "--out", out, "--trt", "--int8", "--calib-images", "4", "--no-verify"]
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert standin.parsed == ["model_int8_trt.onnx"]
    manifest = json.loads((out / "export_manifest.json").read_text())
    arts = {a["name"]: a for a in manifest["artifacts"]}
    assert list(arts) == ["onnx", "onnx_int8", "onnx_int8_trt", "trt_int8"]
    cpu, trt = arts["onnx_int8"], arts["onnx_int8_trt"]
    assert (cpu["activations"], trt["activations"]) == ("uint8", "int8-symmetric")
    assert trt["calib_cache"] == cpu["calib_cache"] and trt["calib_cache_reused"] and trt["calib_images"] == 4
    assert (out / "model_int8.engine").read_bytes() == b"engine" and (out / "trt_timing.cache").is_file()
    assert json.loads((out / "model_int8.json").read_text())["precision"] == "int8"


# --- on a GPU with TensorRT ------------------------------------------------------------------------

needs_trt_gpu = pytest.mark.skipif(not has_trt_gpu(), reason="needs TensorRT, cuda-python and an NVIDIA GPU")


def label_agreement(pred, reference, images) -> float:
    """Share of pixels on which two predictors give the same label, over `images`."""
    same = [np.mean(pred.predict(img).label_map == reference.predict(img).label_map) for img in images]
    return float(np.mean(same))


@pytest.mark.gpu
@pytest.mark.slow
@needs_trt_gpu
def test_engine_build_end_to_end(tmp_path, exported_onnx):
    from prodseg.metadata import read_sidecar
    from prodseg.runtime import load

    fp32, source = exported_onnx
    spec = trt_export.EngineSpec(fp32, tmp_path / "model.engine", timing_cache=tmp_path / "timing.cache")
    engine = trt_export.build_engine(spec, source.meta)
    assert engine.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
    assert read_sidecar(engine).arch == source.meta.arch
    pred = load(engine, device="cuda").predict(np.zeros((64, 64, 3), np.uint8))
    assert pred.label_map.shape == (64, 64)


@pytest.mark.gpu
@pytest.mark.slow
@needs_trt_gpu
def test_fp16_and_int8_engines_agree_with_pytorch(tmp_path, varied_onnx, tiny_dataset):
    """FP16 from the FP16 ONNX, INT8 from the symmetric QDQ ONNX; labels vs PyTorch on held-out images."""
    from prodseg.data.imageio import read_image
    from prodseg.data.layout import ShelfDataset
    from prodseg.export.calibration import CalibrationSet
    from prodseg.export.config import Thresholds
    from prodseg.export.onnx_fp16 import convert_fp16
    from prodseg.export.onnx_int8 import quantize_int8
    from prodseg.runtime import load

    fp32, source = varied_onnx
    ds = ShelfDataset(tiny_dataset)
    paths = [ds.sample(s).image for s in ds.stems]
    held_out = [read_image(p) for p in paths[8:]]
    ort = load(fp32, backend="onnxruntime", device="cpu", fuse_preprocess=False)
    calib = CalibrationSet(paths[:8], lambda rgb: ort.preprocess(rgb)[0])
    sources = {
        "fp16": convert_fp16(fp32, tmp_path / "model_fp16.onnx", source.meta),
        "int8": quantize_int8(
            fp32, tmp_path / "model_int8_trt.onnx", calib, source.meta, "minmax", "int8-symmetric"
        ).path,
    }
    torch_pred = load(source.checkpoint, backend="torch", device="cpu")
    agree = {}
    for precision, onnx_path in sources.items():
        spec = trt_export.EngineSpec(
            onnx_path,
            tmp_path / f"model_{precision}.engine",
            precision,
            timing_cache=tmp_path / "timing.cache",
        )
        with load(trt_export.build_engine(spec, source.meta), device="cuda") as engine:
            agree[precision] = label_agreement(engine, torch_pred, held_out)
    assert agree["fp16"] >= Thresholds().fp16_agreement, agree
    # The INT8 engine computes what its QDQ ONNX says: as close to PyTorch as ONNX Runtime's run of it.
    with load(sources["int8"], backend="onnxruntime", device="cpu") as qdq:
        assert agree["int8"] >= label_agreement(qdq, torch_pred, held_out) - 0.02, agree
