"""Runner registry: backend name -> its class, imported only when asked for (optional dependencies);
and `auto_backend`, which picks the fastest installed backend for an artifact on a device."""

from __future__ import annotations

import importlib
import importlib.util
import platform
from collections.abc import Callable
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
# Artifact suffix -> (backend, when it applies, why) tried in order before the suffix's own backend. An ONNX
# file on an x86 CPU: OpenVINO's CPU plugin ran YOLOv8n-seg 640 1.7x faster than ONNX Runtime's CPU
# provider on a 2-core AVX-512 EPYC (model-only 54 vs 31 FPS), and reads .onnx directly.
PREFERENCES: dict[str, list[tuple[str, Callable[[str], bool], str]]] = {
    ".onnx": [("openvino", lambda device: device == "cpu" and platform.machine().lower() in X86,
               "OpenVINO is installed and runs ONNX models faster than ONNX Runtime on x86 CPUs")],
}


def installed(backend: str) -> bool:
    """Whether the backend's Python package can be imported (checked without importing it)."""
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt",
              "torch": "torch"}[backend]
    return importlib.util.find_spec(module) is not None


def auto_backend(suffix: str, device: str) -> tuple[str, str]:
    """(backend, why) for an artifact of this suffix on `device`: the fastest installed backend that
    runs it there, else the one its suffix implies. The suffix must be in SUFFIX_BACKENDS."""
    for backend, applies, why in PREFERENCES.get(suffix, []):
        if applies(device.lower()) and installed(backend):
            return backend, why
    own = SUFFIX_BACKENDS[suffix]
    others = [b for b, applies, _ in PREFERENCES.get(suffix, []) if applies(device.lower())]
    why = f"the {suffix} file's own backend" + (f" ({', '.join(others)} not installed)" if others else "")
    return own, why


__all__ = ["PIPELINE_OPTS", "RUNNERS", "SUFFIX_BACKENDS", "Runner", "auto_backend", "runner_class"]
