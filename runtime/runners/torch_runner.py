"""Torch runner: a prodseg training checkpoint (.pt) on CPU or CUDA, FP16/BF16 autocast, channels-last.

The only runtime module that imports torch (and prodseg.train), lazily in activate(): the edge install
never needs it. Its outputs are the export module's, so the shared numpy post-processing applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prodseg.errors import BadInput, MissingExtra, require
from prodseg.runtime.facts import OUTPUT_NAMES
from prodseg.runtime.runners.base import Runner, RunnerOptions, choose

AUTOCAST = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}


def torch_device(torch: Any, device: str) -> str:
    """The torch device for `--device` (cpu, cuda[:N], gpu); BadInput when it is not here."""
    kind, _, index = device.lower().partition(":")
    kind = "cuda" if kind == "gpu" else kind
    if kind == "cpu" and not index:
        return "cpu"
    if kind != "cuda" or not (index.isdigit() or not index):
        raise BadInput(f"--device {device}: the torch backend runs on cpu or cuda[:N]; choose one of those")
    if not torch.cuda.is_available():
        raise BadInput(
            f"--device {device}: no CUDA device is available here (torch.cuda.is_available() is "
            "False: no NVIDIA GPU or driver, or a CPU-only torch); use --device cpu"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise BadInput(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0; choose cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    return f"cuda:{index}" if index else "cuda"


@dataclass(frozen=True)
class TorchOptions(RunnerOptions):
    """precision: fp32|fp16|bf16 (autocast); channels_last: NHWC memory format for the model and input."""

    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        choose("torch", "precision", self.precision, tuple(AUTOCAST))


class TorchRunner(Runner):
    """A prodseg (or ultralytics) checkpoint run by PyTorch."""

    name = "torch"
    Options = TorchOptions
    options: TorchOptions

    def activate_impl(self) -> None:
        try:
            torch = require("torch", "train", "PyTorch checkpoints")
        except MissingExtra as exc:  # name the file first, as every bad-input message does
            raise MissingExtra(f"{self.path}: {exc}") from exc
        from prodseg.train.checkpoint import checkpoint_metadata, model_from_checkpoint

        precision = self.options.precision
        if not Path(self.path).is_file():
            raise BadInput(f"{self.path}: checkpoint not found")
        if self.threads:
            torch.set_num_threads(int(self.threads))
        device = torch_device(torch, self.device)
        model, cfg, ckpt = model_from_checkpoint(self.path, device=device)
        self.metadata = checkpoint_metadata(model, cfg, ckpt, self.path, precision)
        self.module = model.export_module().eval()
        self._memory_format = torch.channels_last if self.options.channels_last else torch.contiguous_format
        # Module.to takes memory_format too; its typed overloads leave it out
        self.module = self.module.to(device=device, memory_format=self._memory_format)  # type: ignore[call-overload]
        self._torch, self._device, self._precision = torch, torch.device(device), precision
        self._outputs = OUTPUT_NAMES[model.output_kind]

    def bind_thread_impl(self) -> None:
        """Make the model's GPU this thread's current device: torch keeps the current device per thread, and
        anything that uses it (a fresh thread's CUDA context, streams, synchronize()) would otherwise go to
        cuda:0 when the model is on cuda:1+."""
        if self._device.type == "cuda" and self._device.index is not None:
            self._torch.cuda.set_device(self._device)

    def deactivate_impl(self) -> None:
        del self.module

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(feed["images"], np.float32)).to(self._device)
        x = x.contiguous(memory_format=self._memory_format)
        dtype = AUTOCAST[self._precision]
        autocast = torch.autocast(
            self._device.type, dtype=getattr(torch, dtype or "float32"), enabled=dtype is not None
        )
        with torch.inference_mode(), autocast:
            out = self.module(x)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: t.float().cpu().numpy() for n, t in zip(self._outputs, outs, strict=False)}

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        h, w = self.metadata.input_size
        return {"images": ((1, 3, int(h), int(w)), np.float32)}

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)
