"""OpenVINO runner: CPU (GPU/NPU names passed through), LATENCY/THROUGHPUT hint, async infer queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from prodseg.errors import BadInput, require
from prodseg.runtime.runners.base import Runner, RunnerOptions, choose, port_name

HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
PRECISIONS = ("f32", "bf16", "f16")
Infer = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class OpenVinoOptions(RunnerOptions):
    """hint: LATENCY|THROUGHPUT|CUMULATIVE_THROUGHPUT; inference_precision: f32|bf16|f16 (None: the
    device's default, bf16 on CPUs with native bf16)."""

    hint: str = "LATENCY"
    inference_precision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hint", str(self.hint).upper())
        choose("openvino", "hint", self.hint, HINTS)
        if self.inference_precision is not None:
            choose("openvino", "inference_precision", self.inference_precision, PRECISIONS)


def _reason(exc: BaseException) -> str:
    """OpenVINO's own sentence from its multi-line message (which starts with source-file locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    told = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (told or lines or [type(exc).__name__])[-1]


def _needed_weight_bytes(xml: Path) -> int:
    """Bytes the IR's constants read from its .bin: the largest offset + size of a <data> element."""
    import xml.etree.ElementTree as ET

    needed = 0
    try:
        for _, elem in ET.iterparse(xml):
            if elem.tag == "data" and "offset" in elem.attrib and "size" in elem.attrib:
                needed = max(needed, int(elem.attrib["offset"]) + int(elem.attrib["size"]))
            elem.clear()
    except (ET.ParseError, ValueError) as exc:
        raise BadInput(f"{xml}: not a valid OpenVINO IR .xml ({exc}); export it again") from exc
    return needed


def check_weights(xml: Path) -> None:
    """BadInput naming the .bin when an IR's weights file is missing or shorter than the .xml needs."""
    weights = xml.with_suffix(".bin")
    needed = _needed_weight_bytes(xml)
    if not weights.is_file():
        if needed:
            raise BadInput(
                f"{weights}: missing; an OpenVINO IR is the .xml and its .bin weights side by "
                f"side: copy {weights.name} next to {xml.name}"
            )
        return
    size = weights.stat().st_size
    if size < needed:
        raise BadInput(
            f"{weights}: truncated ({size} bytes, {xml.name} needs {needed}); copy the whole "
            "file again or export the model again"
        )


@cache
def shared_core() -> Any:
    """The process's one OpenVINO Core, never released.

    Each Core loads its own CPU plugin, which swaps the calling thread's alternate signal stack for one
    it maps and, when destroyed, puts back the stack it found. Two Cores released in creation order (or
    one released on another thread) leave the thread on an unmapped signal stack, and the next signal
    with a Python handler (SIGCHLD once DataLoader workers ran, SIGINT, SIGTERM) kills the process with
    SIGSEGV and no traceback. One Core for the whole process keeps the stacks nested.
    """
    ov = require("openvino", "openvino", "OpenVINO IR models")
    return ov.Core()


class OpenVinoRunner(Runner):
    """A compiled model. Tensors are fed and read by port index: ultralytics' IR has nameless outputs,
    which get positional names (`output0`, ...)."""

    name = "openvino"
    Options = OpenVinoOptions
    options: OpenVinoOptions

    def activate_impl(self) -> None:
        self._core = shared_core()
        try:
            self._model = self._read_model()
        except Exception as exc:  # noqa: BLE001 - OpenVINO's frontends raise their own untyped errors
            raise BadInput(
                f"{self.path}: OpenVINO cannot load this model ({_reason(exc)}); export it again"
            ) from exc
        self._compiled: Any = None
        self._inputs = {port_name(p.get_names(), i, "input"): i for i, p in enumerate(self._model.inputs)}
        self._outputs = [port_name(o.get_names(), i) for i, o in enumerate(self._model.outputs)]

    def _read_model(self) -> Any:
        """An .onnx through the ONNX frontend alone (read_model would try every framework's frontend on a
        broken file, each printing its own complaint); IR and the rest through read_model."""
        if Path(self.path).suffix.lower() == ".onnx":
            from openvino.frontend import FrontEndManager

            frontend = FrontEndManager().load_by_framework("onnx")
            return frontend.convert(frontend.load(self.path))
        return self._core.read_model(self.path)

    @property
    def compiled(self) -> Any:
        """The compiled model, compiled on first use: preprocessing can still be fused before that."""
        if self._compiled is None:
            self._compiled = self._compile()
            self._infer = self.request_handle()
        return self._compiled

    def _compile(self) -> Any:
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.options.hint}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        if self.options.inference_precision:
            config["INFERENCE_PRECISION_HINT"] = self.options.inference_precision
        device = self.device.upper()
        try:
            return self._core.compile_model(self._model, device, config)
        except RuntimeError as exc:
            raise BadInput(
                f"{self.path}: OpenVINO cannot load/compile it on '{device}' ({_reason(exc)}); "
                f"devices here: {', '.join(self._core.available_devices)}"
            ) from exc

    def effective_settings(self) -> dict[str, Any]:
        """The compiled model's precision, hint, threads, streams and optimal requests."""
        keys = {
            "inference_precision": "INFERENCE_PRECISION_HINT",
            "hint": "PERFORMANCE_HINT",
            "threads": "INFERENCE_NUM_THREADS",
            "streams": "NUM_STREAMS",
            "optimal_requests": "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
        }
        found = {}
        for name, key in keys.items():
            try:
                value = str(self.compiled.get_property(key)).lower()
                found[name] = value.replace("<type: '", "").rstrip("'>")  # <Type: 'bfloat16'> -> bfloat16
            except RuntimeError:  # a device without the property
                continue
        return found

    def ready(self) -> None:
        self.compiled  # noqa: B018 - compiles now, so load() reports a device error before any work

    def fuse_preprocess(self, mean: list[float], std: list[float]) -> bool:
        """u8 NHWC BGR input; BGR->RGB, layout, scaling and mean/std compiled in (PrePostProcessor)."""
        if len(self._model.inputs) != 1 or self._model.inputs[0].get_partial_shape().rank.get_length() != 4:
            return False
        ov = require("openvino", "openvino")
        from openvino.preprocess import ColorFormat, PrePostProcessor

        ppp = PrePostProcessor(self._model)
        port = ppp.input(0)
        port.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
            ColorFormat.BGR
        )
        port.model().set_layout(ov.Layout("NCHW"))
        steps = port.preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB)
        if any(mean):
            steps.mean([255.0 * m for m in mean])
        steps.scale([255.0 * s for s in std])
        self._model, self._compiled = ppp.build(), None
        return True

    def deactivate_impl(self) -> None:
        if self._compiled is not None:
            del self._infer
        del self._compiled, self._model, self._core

    def _by_index(self, feed: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
        return {self._inputs[name]: value for name, value in feed.items()}

    def request_handle(self) -> Infer:
        """infer(feed) -> outputs on a new InferRequest of this compiled model (one per thread)."""
        request = self.compiled.create_infer_request()
        names = self._outputs

        def infer(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            request.infer(self._by_index(feed))
            # Copy: the request's output buffers are overwritten by the next inference.
            return {n: np.array(request.get_output_tensor(i).data) for i, n in enumerate(names)}

        return infer

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.ready()
        return self._infer(feed)

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        meta = {}
        for name, port in zip(self._inputs, self._model.inputs, strict=True):
            meta[name] = (_shape(port), port.get_element_type().to_dtype())
        return meta

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def output_shapes(self) -> list[tuple[int | str, ...]]:
        return [_shape(port) for port in self._model.outputs]

    def metadata_props(self) -> dict[str, str]:
        """An .onnx file's metadata_props, which OpenVINO keeps in rt_info['framework'] (an IR's metadata is
        its sidecar: the rt_info an IR inherited from its ONNX may no longer describe it)."""
        if Path(self.path).suffix.lower() != ".onnx":
            return {}
        try:
            info = self._model.get_rt_info()
            fw = info["framework"] if "framework" in info else None
            if fw is None:
                return {}
            items = fw.astype(dict) if hasattr(fw, "astype") else dict(fw)
            return {k: str(v.astype(str) if hasattr(v, "astype") else v) for k, v in items.items()}
        except Exception:  # noqa: BLE001 - rt_info layout differs across versions: metadata then comes from files
            return {}


def _shape(port: Any) -> tuple[int | str, ...]:
    """A port's partial shape; dynamic dimensions as '?'."""
    return tuple(d.get_length() if d.is_static else "?" for d in port.get_partial_shape())
