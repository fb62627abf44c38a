"""A stand-in for the `tensorrt` module, for the control flow of prodseg.export.trt on machines without it.

TensorRT cannot be installed here (no wheel for this machine, no GPU), so its builder is replaced by
this small object. It offers only what export/trt.py calls, under TensorRT 10/11's real names
(`Builder`, `OnnxParser`, `IBuilderConfig.set_timing_cache(cache, ignore_mismatch)`, ...), and records
the calls. It builds nothing: the bytes it "serializes" are markers, never a usable engine.
"""

from __future__ import annotations

import enum
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

OTHER_GPU_CACHE = b"timing cache of another GPU"


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    Severity = Severity

    def __init__(self) -> None:
        pass


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]


@dataclass
class TimingCache:
    data: bytes

    def serialize(self) -> bytes:
        return b"timings after " + (self.data or b"nothing")


@dataclass
class Profile:
    shapes: dict[str, tuple] = field(default_factory=dict)

    def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
        self.shapes[name] = (lo, opt, hi)


@dataclass
class Config:
    profiles: list[Profile] = field(default_factory=list)
    timing_cache: TimingCache | None = None

    def set_memory_pool_limit(self, pool: object, size: int) -> None:
        self.workspace = size

    def add_optimization_profile(self, profile: Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> TimingCache:
        return TimingCache(bytes(data))

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        if cache.data == OTHER_GPU_CACHE and not ignore_mismatch:
            return False  # TensorRT's answer to a cache whose device header does not match
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> TimingCache | None:
        return self.timing_cache


@dataclass
class Network:
    flags: int
    inputs: list[Tensor]

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> Tensor:
        return self.inputs[i]


class StandIn(types.ModuleType):
    """The module object: knobs for the input shape and for a failed build, and what was built."""

    ILogger = ILogger
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
    MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})

    def __init__(self, input_shape: tuple[int, ...] = (1, 3, 64, 64), fail_with: str | None = None):
        super().__init__("tensorrt")
        self.input_shape, self.fail_with = input_shape, fail_with
        self.networks: list[Network] = []
        self.configs: list[Config] = []
        self.parsed: list[str] = []  # the ONNX files parsed, by name
        standin = self

        class Builder:
            def __init__(self, logger: ILogger) -> None:
                self.logger = logger

            def create_network(self, flags: int) -> Network:
                standin.networks.append(Network(flags, [Tensor("images", standin.input_shape)]))
                return standin.networks[-1]

            def create_builder_config(self) -> Config:
                standin.configs.append(Config())
                return standin.configs[-1]

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
                if standin.fail_with is not None:
                    self.logger.log(Severity.ERROR, standin.fail_with)
                    return None
                return b"engine"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network: Network, logger: ILogger) -> None:
                pass

            def parse(self, model: bytes, path: str) -> bool:
                standin.parsed.append(Path(path).name)
                return True

        self.Builder, self.OnnxParser = Builder, OnnxParser

    @staticmethod
    def Dims(dims: list[int]) -> tuple[int, ...]:  # noqa: N802 - TensorRT's name
        return tuple(dims)


def install(monkeypatch: pytest.MonkeyPatch, cuda_bindings: bool = True, **knobs: object) -> StandIn:
    """Put a stand-in `tensorrt` in sys.modules and report a CUDA GPU; returns the stand-in.

    `cuda_bindings=False` hides cuda-python's `cuda.bindings` as an old cuda-python would lack it.
    """
    from prodseg.export import trt as trt_export

    standin = StandIn(**knobs)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "tensorrt", standin)
    monkeypatch.setattr(trt_export, "cuda_available", lambda: True)
    if cuda_bindings:
        monkeypatch.setattr(trt_export, "require_cuda_bindings", lambda: None)
    else:
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    return standin
