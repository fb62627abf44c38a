"""The Runner interface (Polygraphy-style): a context manager around one backend's session."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, ClassVar, TypeVar

import numpy as np

from prodseg.errors import BadInput

OptionsT = TypeVar("OptionsT", bound="RunnerOptions")


def choose(backend: str, option: str, value: Any, allowed: tuple[Any, ...]) -> None:
    """BadInput naming the backend's option and the values it takes, unless `value` is one of them."""
    if value not in allowed:
        raise BadInput(f"{backend}: {option} {value!r} is not one of {', '.join(map(str, allowed))}")


@dataclasses.dataclass(frozen=True)
class RunnerOptions:
    """A backend's options; subclasses declare theirs as fields and check values in __post_init__."""

    @classmethod
    def parse(cls: type[OptionsT], opts: dict[str, Any], backend: str) -> OptionsT:
        """The options from keyword arguments; an unknown name is a BadInput listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(opts) - set(valid))
        if unknown:
            raise BadInput(
                f"{backend}: unknown runner option {unknown[0]!r}; valid options: "
                f"{', '.join(valid) or 'none'}"
            )
        return cls(**opts)


def port_name(names: set[str] | list[str], index: int, prefix: str = "output") -> str:
    """A tensor's name, or `output<index>` for a nameless one (ultralytics' OpenVINO IR outputs)."""
    return sorted(names)[0] if names else f"{prefix}{index}"


class Runner:
    """activate() loads the session, infer(feed) -> outputs by name, deactivate() frees it.

    Options are typed (`Options`, a RunnerOptions dataclass per backend): an unknown one is refused.
    """

    name = "runner"
    Options: ClassVar[type[RunnerOptions]] = RunnerOptions

    def __init__(self, path: str, device: str = "cpu", threads: int | None = None, **opts: Any):
        self.path, self.device, self.threads = str(path), device, threads
        self.options = self.Options.parse(opts, self.name)
        self.is_active = False
        self._last_s = 0.0
        self._thread_state = threading.local()

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
        self.bind_thread()
        t0 = time.perf_counter()
        out = self.infer_impl(feed)
        self._last_s = time.perf_counter() - t0
        return out

    def bind_thread(self) -> None:
        """Make the calling thread ready to infer, once per thread: CUDA's current device is per thread, so a
        runner on cuda:1 selects it in every thread that infers (infer() calls this; a pipeline calls it
        as its inference thread starts, so the first frame's timing does not include it)."""
        if not getattr(self._thread_state, "bound", False):
            self.bind_thread_impl()
            self._thread_state.bound = True

    def bind_thread_impl(self) -> None:
        """The per-thread setup of bind_thread(); nothing for backends that select their device per call."""

    def last_inference_time(self) -> float:
        """Seconds the last infer() took."""
        return self._last_s

    @property
    def input_metadata(self) -> dict[str, tuple[tuple[int | str, ...], Any]]:
        """{name: (shape, numpy dtype)}; symbolic dims are strings."""
        raise NotImplementedError

    @property
    def output_names(self) -> list[str]:
        """Output names in the order infer() returns them (positional `output<i>` when nameless)."""
        raise NotImplementedError

    @property
    def output_shapes(self) -> list[tuple[int | str, ...]]:
        """Declared output shapes (symbolic dims as strings), or [] when the backend cannot tell."""
        return []

    def metadata_props(self) -> dict[str, str]:
        """Model-embedded key/values (ONNX metadata_props) when the backend exposes them."""
        return {}

    def fuse_preprocess(self, mean: list[float], std: list[float]) -> bool:
        """Make the one image input take (N, H, W, 3) uint8 BGR pixels and do BGR->RGB, NHWC->NCHW and
        (v/255 - mean)/std inside the model. True when done (the input name stays); False: the backend
        cannot, and the input stays (N, 3, H, W) normalised RGB."""
        return False

    def effective_settings(self) -> dict[str, Any]:
        """What the backend runs with (precision, threads, streams) where it can tell, for reports."""
        return {}

    def ready(self) -> None:
        """Finish loading (a backend that compiles lazily compiles now), so errors surface at load time."""

    def activate_impl(self) -> None:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError
