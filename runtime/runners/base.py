"""The Runner interface (Polygraphy-style): a context manager around one backend's session."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Runner:
    """activate() loads the session, infer(feed) -> outputs by name, deactivate() frees it."""

    name = "runner"

    def __init__(self, path: str, device: str = "cpu", threads: int | None = None, **opts: Any):
        self.path, self.device, self.threads, self.opts = str(path), device, threads, opts
        self.is_active = False
        self._last_s = 0.0

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; records its wall time for last_inference_time()."""
        if not self.is_active:
            raise RuntimeError(f"{self.name}: activate() the runner (or use it as a context manager) first")
        t0 = time.perf_counter()
        out = self.infer_impl(feed)
        self._last_s = time.perf_counter() - t0
        return out

    def last_inference_time(self) -> float:
        """Seconds the last infer() took."""
        return self._last_s

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        """{name: (shape, numpy dtype)}; symbolic dims are strings."""
        raise NotImplementedError

    @property
    def output_names(self) -> list[str]:
        raise NotImplementedError

    def metadata_props(self) -> dict[str, str]:
        """Model-embedded key/values (ONNX metadata_props) when the backend exposes them."""
        return {}

    def activate_impl(self) -> None:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

