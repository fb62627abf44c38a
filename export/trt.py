"""TensorRT engines from the exported ONNX files (TensorRT 10 and 11, type-checked with tensorrt-stubs).

Every network is strongly typed: the ONNX decides the precision. FP32 from model.onnx, FP16 from the
FP16 ONNX, INT8 from the symmetric QDQ ONNX (explicit quantization: TensorRT 11 has no other INT8
route, and TensorRT 10's implicit calibrators are deprecated).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from prodseg.atomic import write_bytes
from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata, write_sidecar

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

INSTALL = (
    "install TensorRT on a machine with an NVIDIA GPU: `pip install 'prodseg[tensorrt]'` "
    "(TensorRT 10.13+ for CUDA 13, like torch)"
)
# cuda-python gained the `cuda.bindings` package (which the TensorRT runner imports) in this release.
CUDA_BINDINGS_SINCE = "12.6.1"


@dataclass
class EngineSpec:
    """What to build: source ONNX, target engine, precision, batch profile, workspace, timing cache."""

    onnx: Path
    engine: Path
    precision: str = "fp32"
    max_batch: int = 1
    workspace_mib: int = 1024
    timing_cache: Path | None = None


def require_tensorrt() -> ModuleType:
    """Import tensorrt, check cuda-python and a CUDA GPU, or raise BadInput (exit 2) naming the fix."""
    try:
        trt_mod = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BadInput(f"--trt: TensorRT is not importable ({exc}); {INSTALL}") from exc
    if not hasattr(trt_mod, "Builder"):
        # tensorrt-stubs alone leaves a `tensorrt/` folder of .pyi files that imports as an empty namespace.
        raise BadInput(f"--trt: TensorRT is not installed (only its type stubs are); {INSTALL}")
    require_cuda_bindings()
    if not cuda_available():
        raise BadInput(f"--trt: no CUDA GPU is visible; build on the target GPU machine and {INSTALL}")
    return trt_mod


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def require_cuda_bindings() -> None:
    """BadInput unless `cuda.bindings` imports: the engines are verified through the TensorRT runner,
    which drives CUDA with it, and cuda-python before 12.6.1 has only the old `cuda.cudart` modules."""
    try:
        importlib.import_module("cuda.bindings.runtime")
    except ImportError as exc:
        version = installed_version("cuda-python")
        what = f"cuda-python {version} has" if version else "cuda-python is not installed, so there is"
        raise BadInput(
            f"--trt: {what} no cuda.bindings module ({exc}); "
            f"run `pip install -U 'prodseg[tensorrt]'` (cuda-python >= {CUDA_BINDINGS_SINCE})"
        ) from exc


def cuda_available() -> bool:
    """True when torch sees a CUDA device (export installs torch; TensorRT needs the same driver)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def one_line(text: object) -> str:
    """TensorRT messages may span lines; the CLI's error is one line."""
    return " ".join(str(text).split())


def make_logger(trt_mod: ModuleType, errors: list[str]) -> trt.ILogger:
    """A TensorRT logger that forwards to Python logging and appends errors to `errors` (for the
    failure message)."""

    class Logger(trt_mod.ILogger):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            trt_mod.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt_mod.ILogger.Severity.INTERNAL_ERROR, trt_mod.ILogger.Severity.ERROR):
                errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif severity == trt_mod.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == trt_mod.ILogger.Severity.INFO:  # VERBOSE is thousands of lines: dropped
                log.debug("TensorRT: %s", msg)

    return Logger()


def parse_onnx(
    trt_mod: ModuleType, builder: trt.Builder, onnx_path: Path, logger: trt.ILogger
) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    """Parse an ONNX file into a strongly-typed network (the parser must outlive it); BadInput lists
    the parser's errors."""
    network = builder.create_network(1 << int(trt_mod.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt_mod.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errors = "; ".join(one_line(parser.get_error(i)) for i in range(parser.num_errors))
        raise BadInput(
            f"{onnx_path.name}: TensorRT cannot parse it ({errors}); re-export it with prodseg-export"
        )
    return network, parser


def input_shapes(network: trt.INetworkDefinition) -> dict[str, list[int]]:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    return {t.name: [int(t.shape[d]) for d in range(len(t.shape))] for t in inputs}


def add_profile(
    trt_mod: ModuleType,
    builder: trt.Builder,
    network: trt.INetworkDefinition,
    config: trt.IBuilderConfig,
    spec: EngineSpec,
) -> bool:
    """With a dynamic batch, one optimization profile: batch 1 (min, opt) to `max_batch`; a static
    network gets none (TensorRT needs a profile only for dynamic inputs). True when one was added."""
    dynamic = {name: shape for name, shape in input_shapes(network).items() if -1 in shape}
    for name, shape in dynamic.items():
        if -1 in shape[1:]:
            raise BadInput(
                f"{spec.onnx.name}: input '{name}' has a dynamic height/width {shape}; engines are built for "
                "one input size: export the ONNX without --dynamic"
            )
    if not dynamic:
        return False
    profile = builder.create_optimization_profile()
    for name, shape in dynamic.items():
        one, most = trt_mod.Dims([1, *shape[1:]]), trt_mod.Dims([spec.max_batch, *shape[1:]])
        profile.set_shape(name, one, one, most)
    config.add_optimization_profile(profile)
    return True


def attach_timing_cache(config: trt.IBuilderConfig, path: Path | None) -> trt.ITimingCache:
    """Attach the timing cache at `path`, or a fresh one when there is none or it does not fit this
    GPU / TensorRT (a cache from another machine would make the build fail, losing the engine)."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data) if data else None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return cache
    if data:
        log.warning(
            "%s: timing cache from another GPU or TensorRT version; timing tactics afresh (it is replaced)",
            path,
        )
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def build_engine(spec: EngineSpec, meta: ArtifactMetadata) -> Path:
    """Build and atomically write a serialized engine, its JSON sidecar and the updated timing cache."""
    trt_mod = require_tensorrt()
    errors: list[str] = []
    logger = make_logger(trt_mod, errors)
    builder = trt_mod.Builder(logger)
    network, _parser = parse_onnx(trt_mod, builder, spec.onnx, logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt_mod.MemoryPoolType.WORKSPACE, spec.workspace_mib << 20)
    add_profile(trt_mod, builder, network, config, spec)
    attach_timing_cache(config, spec.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        said = one_line(errors[-1]) if errors else "no error logged"
        raise BadInput(
            f"{spec.onnx.name}: TensorRT could not build the {spec.precision.upper()} engine "
            f"(TensorRT: {said}); rerun with -v for TensorRT's full log"
        )
    write_bytes(spec.engine, bytes(serialized))
    write_sidecar(spec.engine, meta.with_precision(spec.precision))
    if spec.timing_cache is not None:
        write_bytes(spec.timing_cache, bytes(config.get_timing_cache().serialize()))
    log.info("wrote %s (%s)", spec.engine, spec.precision)
    return spec.engine
