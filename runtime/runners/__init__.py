"""Runner registry: backend name -> its class, imported only when asked for (optional dependencies);
and `auto_backend`, which picks the fastest installed backend for an artifact on a device."""

from __future__ import annotations

import importlib
import importlib.util
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prodseg.errors import BadInput, MissingExtra
from prodseg.runtime.facts import SUFFIX_BACKENDS
from prodseg.runtime.runners.base import Runner


def _lazy(module: str, cls: str, extra: str) -> Callable[[], type[Runner]]:
    def load() -> type[Runner]:
        try:
            return getattr(importlib.import_module(f"prodseg.runtime.runners.{module}"), cls)
        except ImportError as exc:
            raise MissingExtra(f"this backend needs `pip install 'prodseg[{extra}]'` ({exc})") from exc

    return load


RUNNERS: dict[str, Callable[[], type[Runner]]] = {
    "onnxruntime": _lazy("onnxrt", "OnnxRuntimeRunner", "onnxruntime"),
    "openvino": _lazy("openvino_runner", "OpenVinoRunner", "openvino"),
    "tensorrt": _lazy("trt", "TensorRTRunner", "tensorrt"),
    "torch": _lazy("torch_runner", "TorchRunner", "train"),
}


def runner_class(backend: str) -> type[Runner]:
    """The Runner class registered as `backend`; BadInput listing the choices otherwise."""
    if backend not in RUNNERS:
        raise BadInput(f"backend '{backend}' is unknown; choose one of auto, {', '.join(RUNNERS)}")
    return RUNNERS[backend]()


# Runner options for a pipelined run, by backend: the pipeline's own threads need CPU too, so
# ONNX Runtime's idle workers must not spin.
PIPELINE_OPTS: dict[str, dict[str, Any]] = {"onnxruntime": {"allow_spinning": False}}
X86 = ("x86_64", "amd64", "i386", "i686", "x86")


@dataclass(frozen=True)
class Preference:
    """A backend tried before a suffix's own: where it applies, why, and the runner options it runs with."""

    backend: str
    applies: Callable[[str], bool]  # device -> whether it runs there
    why: str
    opts: dict[str, Any] = field(default_factory=dict)


# Artifact suffix -> backends tried in order before the suffix's own. An ONNX file on an x86 CPU runs on
# OpenVINO, which reads .onnx directly, at OpenVINO's own default precision for the CPU: f32, or bf16 where
# the CPU computes bf16 natively (AVX512_BF16/AMX), as OpenVINO's benchmark_app and ultralytics' OpenVINO
# predictor run it. YOLOv8n-seg 640 on a 2-core AVX-512 EPYC: 1.2x ONNX Runtime at f32, 1.7x in bf16; a
# trained YOLOv8n-seg scored mask mAP50-95 0.2189 in bf16 vs 0.2179 in f32 on 200 held-out shelves. The
# bench JSON records the precision the compiled model runs; `--precision fp32` pins f32.
PREFERENCES: dict[str, list[Preference]] = {
    ".onnx": [
        Preference(
            "openvino",
            lambda device: device == "cpu" and platform.machine().lower() in X86,
            "OpenVINO is installed and runs ONNX models faster than ONNX Runtime on x86 CPUs "
            "(at OpenVINO's default precision for the CPU: bf16 where it computes bf16 natively, else f32)",
        )
    ],
}


def installed(backend: str) -> bool:
    """Whether the backend's Python package can be imported (checked without importing it)."""
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt", "torch": "torch"}[
        backend
    ]
    return importlib.util.find_spec(module) is not None


def auto_backend(suffix: str, device: str) -> tuple[str, str, dict[str, Any]]:
    """(backend, why, runner options) for an artifact of this suffix on `device`: the fastest installed
    backend that runs it there, else the one its suffix implies. The suffix must be in SUFFIX_BACKENDS."""
    usable = [p for p in PREFERENCES.get(suffix, []) if p.applies(device.lower())]
    for pref in usable:
        if installed(pref.backend):
            return pref.backend, pref.why, dict(pref.opts)
    missing = f" ({', '.join(p.backend for p in usable)} not installed)" if usable else ""
    return SUFFIX_BACKENDS[suffix], f"the {suffix} file's own backend{missing}", {}


__all__ = [
    "PIPELINE_OPTS",
    "PREFERENCES",
    "RUNNERS",
    "SUFFIX_BACKENDS",
    "Preference",
    "Runner",
    "auto_backend",
    "runner_class",
]
