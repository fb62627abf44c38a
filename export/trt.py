"""TensorRT engines from the exported ONNX files (TensorRT 10 and 11, type-checked with tensorrt-stubs).

FP16 and INT8 go through the strongly-typed FP16 ONNX and the QDQ INT8 ONNX: TensorRT 11 removed the
FP16/INT8 builder flags and the implicit calibrators. On TensorRT 10 the implicit `IInt8EntropyCalibrator2`
path is offered too (`calibrator=True`), with its calibration cache beside the engine.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from prodseg.atomic import write_bytes
from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata, write_sidecar

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

INSTALL = (
    "install TensorRT on a machine with an NVIDIA GPU: `pip install 'prodseg[tensorrt]'` "
    "(TensorRT 10+ with CUDA 12)"
)


@dataclass
class EngineSpec:
    """What to build: source ONNX, target engine, precision, batch profile, workspace, caches."""

    onnx: Path
    engine: Path
    precision: str = "fp32"
    max_batch: int = 1
    workspace_mib: int = 1024
    timing_cache: Path | None = None
    calibrator_feeds: Iterable[np.ndarray] | None = None  # TensorRT 10 implicit INT8 only
    calibration_cache: Path | None = None


def require_tensorrt() -> ModuleType:
    """Import tensorrt and check for a CUDA GPU, or raise BadInput (exit 2) naming what to install."""
    try:
        trt_mod = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BadInput(f"--trt: TensorRT is not importable ({exc}); {INSTALL}") from exc
    if not hasattr(trt_mod, "Builder"):
        # tensorrt-stubs alone leaves a `tensorrt/` folder of .pyi files that imports as an empty namespace.
        raise BadInput(f"--trt: TensorRT is not installed (only its type stubs are); {INSTALL}")
    if not cuda_available():
        raise BadInput(f"--trt: no CUDA GPU is visible; build on the target GPU machine and {INSTALL}")
    return trt_mod


def cuda_available() -> bool:
    """True when torch sees a CUDA device (export installs torch; TensorRT needs the same driver)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def has_implicit_int8(trt_mod: ModuleType) -> bool:
    """TensorRT 10 still ships the implicit INT8 calibrators; 11 removed them."""
    return hasattr(trt_mod, "IInt8EntropyCalibrator2") and hasattr(trt_mod.BuilderFlag, "INT8")


def parse_onnx(
    builder: trt.Builder, onnx_path: Path, strongly_typed: bool, logger: trt.ILogger
) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    """Parse an ONNX file into a network (the parser must outlive it); BadInput lists parser errors."""
    import tensorrt as trt

    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BadInput(f"{onnx_path}: TensorRT cannot parse it ({errors})")
    return network, parser


def add_profile(
    builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig, max_batch: int
) -> None:
    """One optimization profile: batch 1 (min, opt) to `max_batch` for every dynamic-batch input."""
    import tensorrt as trt

    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = [int(tensor.shape[d]) for d in range(len(tensor.shape))]
        if shape[0] != -1:
            continue
        one, most = trt.Dims([1, *shape[1:]]), trt.Dims([max_batch, *shape[1:]])
        profile.set_shape(tensor.name, one, one, most)
    config.add_optimization_profile(profile)


def load_timing_cache(config: trt.IBuilderConfig, path: Path | None) -> None:
    """Attach the timing cache at `path` (or an empty one) so later builds skip tactic timing."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, False)


def make_calibrator(feeds: Iterable[np.ndarray], cache: Path) -> trt.IInt8Calibrator:
    """A TensorRT 10 IInt8EntropyCalibrator2 over preprocessed NCHW batches, with a calibration cache."""
    import tensorrt as trt
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(feeds)
            self.device: torch.Tensor | None = None  # kept alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int]:  # type: ignore[override]
            batch = next(self.batches, None)
            if batch is None:
                return None  # type: ignore[return-value]  # TensorRT's documented end-of-data signal
            self.device = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).cuda()
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self) -> bytes:
            return cache.read_bytes() if cache.is_file() else None  # type: ignore[return-value]

        def write_calibration_cache(self, data: Any) -> None:
            write_bytes(cache, bytes(data))

    return EntropyCalibrator()


def build_engine(spec: EngineSpec, meta: ArtifactMetadata) -> Path:
    """Build and atomically write a serialized engine plus its JSON sidecar."""
    trt_mod = require_tensorrt()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    implicit = spec.calibrator_feeds is not None
    network, _parser = parse_onnx(builder, spec.onnx, spec.precision != "fp32" and not implicit, logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mib << 20)
    add_profile(builder, network, config, spec.max_batch)
    load_timing_cache(config, spec.timing_cache)
    if implicit:
        if not has_implicit_int8(trt_mod):
            raise BadInput(
                "this TensorRT has no implicit INT8 calibrator (removed in TensorRT 11); "
                "build INT8 from the QDQ ONNX instead (--int8 without the calibrator)"
            )
        config.set_flag(trt.BuilderFlag.INT8)
        cache = spec.calibration_cache or spec.engine.with_suffix(".calib")
        config.int8_calibrator = make_calibrator(spec.calibrator_feeds or [], cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BadInput(f"{spec.onnx}: TensorRT could not build an engine (see the TensorRT log above)")
    if spec.timing_cache is not None:
        write_bytes(spec.timing_cache, bytes(config.get_timing_cache().serialize()))
    write_bytes(spec.engine, bytes(serialized))
    write_sidecar(spec.engine, meta.with_precision(spec.precision))
    log.info("wrote %s (%s)", spec.engine, spec.precision)
    return spec.engine
