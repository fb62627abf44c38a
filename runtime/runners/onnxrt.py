"""ONNX Runtime runner: CPU, CUDA, TensorRT and OpenVINO execution providers when available."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prodseg.errors import BadInput, require
from prodseg.runtime.runners.base import Runner, RunnerOptions, choose

GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
# device name -> execution providers in priority order (CPU always last, as the fallback).
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
}
ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def providers_for(device: str, available: list[str]) -> list[Any]:
    """Execution providers for `device` (cpu, cuda[:N], tensorrt, openvino); BadInput if unavailable."""
    kind, _, index = device.partition(":")
    if kind not in DEVICE_PROVIDERS:
        raise BadInput(f"onnxruntime: unknown device '{device}'; choose one of {', '.join(DEVICE_PROVIDERS)}")
    wanted = DEVICE_PROVIDERS[kind]
    if wanted[0] not in available:
        raise BadInput(
            f"onnxruntime: device '{device}' needs {wanted[0]}, which this onnxruntime build "
            f"lacks (available: {', '.join(available)}); install onnxruntime-gpu/-openvino "
            "or use --device cpu"
        )
    opts = {"device_id": int(index)} if index and kind in ("cuda", "tensorrt") else {}
    return [(p, opts) if opts and p != "CPUExecutionProvider" else p for p in wanted if p in available]


@dataclass(frozen=True)
class OnnxRuntimeOptions(RunnerOptions):
    """graph_optimization: disable|basic|extended|all; allow_spinning: False for pipelines on few cores;
    providers: execution providers to use instead of the device's."""

    graph_optimization: str = "all"
    allow_spinning: bool = True
    providers: list[Any] | None = None

    def __post_init__(self) -> None:
        choose("onnxruntime", "graph_optimization", self.graph_optimization, tuple(GRAPH_LEVELS))


class OnnxRuntimeRunner(Runner):
    """An InferenceSession on the device's execution providers."""

    name = "onnxruntime"
    Options = OnnxRuntimeOptions
    options: OnnxRuntimeOptions

    def activate_impl(self) -> None:
        self._ort = require("onnxruntime", "onnxruntime", "ONNX models")
        self._start(self.path)

    def _start(self, model: str | bytes) -> None:
        """A session over the model file, or over a model rewritten in memory (serialised bytes)."""
        ort = self._ort
        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
            so.inter_op_num_threads = 1
        if not self.options.allow_spinning:
            # Idle intra-op threads otherwise spin, taking the CPU that decode/post-processing threads need.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        level = GRAPH_LEVELS[self.options.graph_optimization]
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        providers = self.options.providers or providers_for(self.device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(model, sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"{self.path}: ONNX Runtime cannot load this model ({first})") from exc
        self._outputs = [o.name for o in self.session.get_outputs()]

    def effective_settings(self) -> dict[str, Any]:
        return {
            "providers": self.session.get_providers(),
            "threads": self.threads or "default",
            "allow_spinning": self.options.allow_spinning,
        }

    def fuse_preprocess(self, mean: list[float], std: list[float]) -> bool:
        """Input nodes added in memory (needs the onnx package): the session is created again over them."""
        from prodseg.runtime.runners.onnx_preprocess import uint8_bgr_input

        fused = uint8_bgr_input(self.path, mean, std)
        if fused is None:
            return False
        self._start(fused)
        return True

    def deactivate_impl(self) -> None:
        del self.session

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self.session.run(self._outputs, feed), strict=False))

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        return {
            i.name: (tuple(d if isinstance(d, int) else str(d) for d in i.shape), ORT_TYPES.get(i.type))
            for i in self.session.get_inputs()
        }

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def output_shapes(self) -> list[tuple[int | str, ...]]:
        outputs = self.session.get_outputs()
        return [tuple(d if isinstance(d, int) else str(d) for d in o.shape) for o in outputs]

    def metadata_props(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)
