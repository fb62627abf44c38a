"""ONNX Runtime runner: CPU, CUDA, TensorRT and OpenVINO execution providers when available."""

from __future__ import annotations

from typing import Any

import numpy as np

from prodseg.errors import BadInput, require
from prodseg.runtime.runners.base import Runner

GRAPH_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
# device name -> execution providers in priority order (CPU always last, as the fallback).
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
}
ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def providers_for(device: str, available: list[str]) -> list[Any]:
    """Execution providers for `device` (cpu, cuda[:N], tensorrt, openvino); BadInput if unavailable."""
    kind, _, index = device.partition(":")
    if kind not in DEVICE_PROVIDERS:
        raise BadInput(f"onnxruntime: unknown device '{device}'; choose one of {', '.join(DEVICE_PROVIDERS)}")
    wanted = DEVICE_PROVIDERS[kind]
    if wanted[0] not in available:
        raise BadInput(f"onnxruntime: device '{device}' needs {wanted[0]}, which this onnxruntime build "
                       f"lacks (available: {', '.join(available)}); install onnxruntime-gpu/-openvino "
                       "or use --device cpu")
    opts = {"device_id": int(index)} if index and kind in ("cuda", "tensorrt") else {}
    return [(p, opts) if opts and p != "CPUExecutionProvider" else p for p in wanted if p in available]


class OnnxRuntimeRunner(Runner):
    """An InferenceSession; opts: graph_optimization (disable|basic|extended|all), providers (a list),
    allow_spinning (False for pipelines on few cores)."""

    name = "onnxruntime"

    def activate_impl(self) -> None:
        ort = require("onnxruntime", "onnxruntime", "ONNX models")
        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
            so.inter_op_num_threads = 1
        if not self.opts.get("allow_spinning", True):
            # Idle intra-op threads otherwise spin, taking the CPU that decode/post-processing threads need.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        level = self.opts.get("graph_optimization", "all")
        if level not in GRAPH_LEVELS:
            raise BadInput(f"onnxruntime: graph_optimization '{level}' is not one of "
                           f"{', '.join(GRAPH_LEVELS)}")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[level])
        providers = self.opts.get("providers") or providers_for(self.device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(self.path, sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"{self.path}: ONNX Runtime cannot load this model ({first})") from exc
        self._outputs = [o.name for o in self.session.get_outputs()]

    def deactivate_impl(self) -> None:
        del self.session

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self.session.run(self._outputs, feed), strict=False))

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        return {i.name: (tuple(d if isinstance(d, int) else str(d) for d in i.shape), ORT_TYPES.get(i.type))
                for i in self.session.get_inputs()}

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def metadata_props(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)
