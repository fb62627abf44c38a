"""OpenVINO runner: CPU (GPU/NPU names passed through), LATENCY/THROUGHPUT hint, async infer queue."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from prodseg.errors import BadInput, require
from prodseg.runtime.runners.base import Runner

HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")


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
            raise BadInput(f"{weights}: missing; an OpenVINO IR is the .xml and its .bin weights side by "
                           f"side: copy {weights.name} next to {xml.name}")
        return
    size = weights.stat().st_size
    if size < needed:
        raise BadInput(f"{weights}: truncated ({size} bytes, {xml.name} needs {needed}); copy the whole "
                       "file again or export the model again")


class OpenVinoRunner(Runner):
    """A compiled model; opts: hint (LATENCY|THROUGHPUT), num_requests, inference_precision (f32|bf16|f16)."""

    name = "openvino"

    def activate_impl(self) -> None:
        ov = require("openvino", "openvino", "OpenVINO IR models")
        hint = str(self.opts.get("hint", "LATENCY")).upper()
        if hint not in HINTS:
            raise BadInput(f"openvino: hint '{hint}' is not one of {', '.join(HINTS)}")
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        if self.opts.get("inference_precision"):
            config["INFERENCE_PRECISION_HINT"] = self.opts["inference_precision"]
        device = self.device.upper()
        try:
            model = core.read_model(self.path)
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:
            raise BadInput(f"{self.path}: OpenVINO cannot load/compile it on '{device}' ({_reason(exc)}); "
                           f"devices here: {', '.join(core.available_devices)}") from exc
        self._model = model
        self.request = self.compiled.create_infer_request()
        self._outputs = [o.get_any_name() for o in self.compiled.outputs]

    def deactivate_impl(self) -> None:
        del self.request, self.compiled, self._model

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = self.request.infer(feed)
        # Copy: the request's output buffers are overwritten by the next inference.
        ports = self.compiled.outputs
        return {name: np.array(res[port]) for name, port in zip(self._outputs, ports, strict=True)}

    def infer_async(self, feeds: Iterable[dict[str, np.ndarray]], on_result: Callable[[int, dict], None],
                    jobs: int = 0) -> None:
        """Throughput path: feeds through an AsyncInferQueue; on_result(index, outputs) as each ends."""
        ov = require("openvino", "openvino")
        queue = ov.AsyncInferQueue(self.compiled, jobs)
        names = self._outputs

        def done(request: Any, index: int) -> None:
            on_result(index, {n: np.array(request.get_output_tensor(i).data) for i, n in enumerate(names)})

        queue.set_callback(done)
        for i, feed in enumerate(feeds):
            queue.start_async(feed, i)
        queue.wait_all()

    def optimal_requests(self) -> int:
        return int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        meta = {}
        for port in self.compiled.inputs:
            shape = tuple(d.get_length() if d.is_static else "?" for d in port.get_partial_shape())
            meta[port.get_any_name()] = (shape, port.get_element_type().to_dtype())
        return meta

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def metadata_props(self) -> dict[str, str]:
        """ONNX metadata_props survive in rt_info['framework'] when OpenVINO reads an .onnx directly."""
        try:
            info = self._model.get_rt_info()
            fw = info["framework"] if "framework" in info else None
            return {k: str(v) for k, v in fw.astype(dict).items()} if fw is not None else {}
        except Exception:  # noqa: BLE001 - rt_info layout differs across versions: metadata then comes from files
            return {}
