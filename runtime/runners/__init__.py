"""Runner registry: backend name -> its class, imported only when asked for (optional dependencies)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

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


__all__ = ["RUNNERS", "SUFFIX_BACKENDS", "Runner", "runner_class"]
