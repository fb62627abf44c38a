"""ONNX Runtime runner: CPU, CUDA, TensorRT and OpenVINO execution providers when available.

ONNX Runtime quietly runs a session on the next provider in the list (in the end the CPU) when the one
asked for cannot start (a missing CUDA/cuDNN library, the CPU build shadowing the GPU one): every session
is checked to run on the provider asked for, so a CPU run is never reported as a GPU one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prodseg.errors import BadInput, require
from prodseg.runtime.runners.base import Runner, RunnerOptions, choose

log = logging.getLogger("prodseg.runtime")

GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
# device name -> execution providers in priority order (CPU always last, as the fallback).
DEVICE_PROVIDERS = {
    "cpu": [CPU],
    "cuda": [CUDA, CPU],
    "tensorrt": [TENSORRT, CUDA, CPU],
    "openvino": ["OpenVINOExecutionProvider", CPU],
}
# The providers that need ONNX Runtime's GPU build (the `onnxruntime-gpu` distribution).
GPU_PROVIDERS = (CUDA, TENSORRT)
GPU_BUILD = (
    "install the GPU build alone: pip uninstall -y onnxruntime onnxruntime-gpu, "
    "then pip install 'prodseg[onnxruntime-gpu]'"
)
# Provider -> what to do when ONNX Runtime cannot start it.
PROVIDER_REMEDIES = {
    CUDA: f"check that the CUDA 12 and cuDNN 9 libraries load (nvidia-smi sees the GPU) and {GPU_BUILD}; "
    "or use --device cpu",
    TENSORRT: "check that the TensorRT 10, CUDA 12 and cuDNN 9 libraries load (nvidia-smi sees the GPU) and "
    f"{GPU_BUILD}; or use --device cuda or cpu",
    "OpenVINOExecutionProvider": "install onnxruntime-openvino alone (pip uninstall -y onnxruntime), "
    "or use --device cpu",
}
# TensorRT EP caches, so a session reuses the engines an earlier one built (minutes to seconds).
TRT_CACHE_SUFFIX = ".ort-trt-cache"
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


def onnxruntime_builds() -> list[str]:
    """The installed distributions that provide the `onnxruntime` module (onnxruntime, onnxruntime-gpu, ...).

    Two of them overwrite each other's files: the module is whichever was installed last.
    """
    return sorted(set(importlib.metadata.packages_distributions().get("onnxruntime", [])))


def shadowed_build(wanted: str, available: list[str]) -> str:
    """'' unless `wanted` is a GPU provider and several ONNX Runtime builds are installed: then BadInput when
    the `onnxruntime` module in use lacks the provider, else the warning to give once a session runs on it."""
    builds = onnxruntime_builds() if wanted in GPU_PROVIDERS else []
    if len(builds) < 2:
        return ""
    both = " and ".join(builds)
    if wanted not in available:
        raise BadInput(
            f"onnxruntime: {wanted} is missing because {both} are installed together and the "
            f"`onnxruntime` module is the one without it (the last installed wins); {GPU_BUILD}"
        )
    return (
        f"{both} are installed together (the last installed wins; reinstalling either breaks the other); "
        f"{GPU_BUILD}"
    )


def trt_cache_options(folder: Path) -> dict[str, str]:
    """TensorRT EP options that keep its engine and timing caches in `folder` (ORT 1.15+ option names)."""
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(folder),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(folder),
    }


def trt_cache_folder(artifact: str | Path, ort_version: str, base: str | Path | None = None) -> Path:
    """Where a TensorRT EP session of `artifact` caches its engines: beside the artifact (or under `base`),
    one folder per ONNX Runtime version, as engines built by another version must not be reused."""
    artifact = Path(artifact)
    root = Path(base) if base is not None else artifact.parent / f"{artifact.name}{TRT_CACHE_SUFFIX}"
    return root / f"ort-{ort_version}"


def providers_for(device: str, available: list[str], trt_cache: Path | None = None) -> list[Any]:
    """Execution providers for `device` (cpu, cuda[:N], tensorrt[:N], openvino); BadInput if unavailable.
    The TensorRT provider caches its engines in `trt_cache` when given."""
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
    if index and not index.isdigit():
        raise BadInput(f"onnxruntime: device '{device}': the index after ':' must be a GPU number (cuda:1)")
    providers: list[Any] = []
    for name in (p for p in wanted if p in available):
        opts: dict[str, Any] = {"device_id": int(index)} if index and name in GPU_PROVIDERS else {}
        if name == TENSORRT and trt_cache is not None:
            opts.update(trt_cache_options(trt_cache))
        providers.append((name, opts) if opts else name)
    return providers


def provider_name(provider: Any) -> str:
    """The name of a providers-list entry: a name, or a (name, options) pair."""
    return str(provider[0] if isinstance(provider, tuple) else provider)


def make_cache_dirs(providers: list[Any]) -> list[Path]:
    """Create the TensorRT EP's cache folders (ONNX Runtime makes only the last level); the ones created,
    outermost first. BadInput naming the folder when it cannot be created."""
    made: list[Path] = []
    for provider in providers:
        if not isinstance(provider, tuple) or "trt_engine_cache_path" not in provider[1]:
            continue
        folder = Path(provider[1]["trt_engine_cache_path"])
        missing = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(
                f"{folder}: cannot create the TensorRT engine cache ({exc.strerror}); make the model's "
                "folder writable, or copy the model into a writable one"
            ) from exc
        made += missing
    return made


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders this run created that stayed empty (innermost first)."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def preload_gpu_libraries(ort: Any) -> str:
    """onnxruntime.preload_dlls() (ORT 1.21+): load CUDA/cuDNN from the nvidia-* wheels before a GPU session.
    Returns what it printed (it reports libraries it could not load on stdout, which is the CLIs' output)."""
    if not hasattr(ort, "preload_dlls"):
        return ""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        ort.preload_dlls()
    return printed.getvalue().strip()


def check_active(path: str, asked: str, active: list[str], preload_notes: str = "") -> None:
    """BadInput unless the session runs on the provider asked for (ONNX Runtime fell back otherwise)."""
    if active and active[0] == asked:
        return
    notes = f"; preload_dlls said: {preload_notes.splitlines()[0]}" if preload_notes else ""
    raise BadInput(
        f"{path}: ONNX Runtime was asked for {asked} but runs on {', '.join(active) or 'nothing'} "
        f"({asked} could not start{notes}; -v shows ONNX Runtime's log); "
        f"{PROVIDER_REMEDIES.get(asked, 'use --device cpu')}"
    )


@dataclass(frozen=True)
class OnnxRuntimeOptions(RunnerOptions):
    """graph_optimization: disable|basic|extended|all; allow_spinning: False for pipelines on few cores;
    providers: execution providers to use instead of the device's; trt_cache_dir: where the TensorRT
    provider caches engines (default: `<model file>.ort-trt-cache/` beside the model)."""

    graph_optimization: str = "all"
    allow_spinning: bool = True
    providers: list[Any] | None = None
    trt_cache_dir: str | None = None

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
        providers, shadow_warning = self._providers()
        asked = provider_name(providers[0])
        gpu = asked in GPU_PROVIDERS
        notes = preload_gpu_libraries(self._ort) if gpu else ""
        made = make_cache_dirs(providers)
        try:
            self.session = self._session(model, providers, quiet=gpu and not log.isEnabledFor(logging.DEBUG))
            check_active(self.path, asked, self.session.get_providers(), notes)
        except BaseException:
            remove_empty(made)  # a refused run leaves no empty cache folder behind
            raise
        if shadow_warning and not getattr(self, "_warned", False):  # once, not again for the fused session
            log.warning("%s", shadow_warning)
            self._warned = True
        self._outputs = [o.name for o in self.session.get_outputs()]

    def _providers(self) -> tuple[list[Any], str]:
        """The providers asked for (the `providers` option, else the device's, TensorRT with its caches) and
        a warning when several ONNX Runtime builds are installed."""
        available = self._ort.get_available_providers()
        explicit = list(self.options.providers or [])
        wanted = (
            provider_name(explicit[0])
            if explicit
            else DEVICE_PROVIDERS.get(self.device.partition(":")[0], [CPU])[0]
        )
        shadow_warning = shadowed_build(wanted, available)
        if explicit:
            return explicit, shadow_warning
        cache = trt_cache_folder(self.path, self._ort.__version__, self.options.trt_cache_dir)
        return providers_for(self.device, available, cache), shadow_warning

    def _session_options(self, quiet: bool) -> Any:
        so = self._ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
            so.inter_op_num_threads = 1
        if not self.options.allow_spinning:
            # Idle intra-op threads otherwise spin, taking the CPU that decode/post-processing threads need.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        level = GRAPH_LEVELS[self.options.graph_optimization]
        so.graph_optimization_level = getattr(self._ort.GraphOptimizationLevel, level)
        if quiet:  # a provider that cannot start is reported in one line, not ORT's log lines (-v shows them)
            so.log_severity_level = 4
        return so

    def _session(self, model: str | bytes, providers: list[Any], quiet: bool) -> Any:
        """The InferenceSession, without ONNX Runtime's own fallback to the CPU (a provider error raises)."""
        ort = self._ort
        if quiet:
            ort.set_default_logger_severity(4)  # provider creation logs on the default logger
        try:
            with warnings.catch_warnings():
                # "Specified provider ... is not in available provider names": check_active says it better
                warnings.simplefilter("ignore", UserWarning)
                return ort.InferenceSession(
                    model, sess_options=self._session_options(quiet), providers=providers, enable_fallback=0
                )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            asked = provider_name(providers[0])
            where = "" if asked == CPU else f" on {asked}"
            remedy = "" if asked == CPU else f"; {PROVIDER_REMEDIES.get(asked, 'use --device cpu')}"
            message = f"{self.path}: ONNX Runtime cannot load this model{where} ({first}){remedy}"
            raise BadInput(message) from exc

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
