"""Inference handles for throughput mode: one callable per request in flight, each used by one thread.

A registry by backend; the default loads one more predictor per request (ONNX Runtime: N sessions,
each with its share of the cores), which works for any runner.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prodseg.errors import BadInput

Infer = Callable[[Any], Any]
Handles = tuple[list[Infer], list[Callable[[], None]]]


def _sessions(predictor: Any, artifact: str, opts: Any) -> Handles:
    """N independent predictors of the same artifact, the cores split between them."""
    from prodseg.runtime import load

    per = max(1, (opts.threads or os.cpu_count() or 1) // opts.requests)
    backend = str(predictor.backend)
    loaded = [
        load(
            artifact,
            backend=backend,
            device=opts.device,
            threads=per,
            spec=opts.spec,
            **opts.runner_opts(backend),
        )
        for _ in range(opts.requests)
    ]
    return [p.infer for p in loaded], [p.close for p in loaded]


def _openvino_requests(predictor: Any, artifact: str, opts: Any) -> Handles:
    """N InferRequests of one model compiled with the THROUGHPUT hint (CPU streams), one per thread.

    Each thread blocks in its own request's infer(), which releases the GIL: the same concurrency as an
    AsyncInferQueue of N jobs, with results handed back in frame order by the in-flight pipeline.
    """
    from prodseg.runtime import load

    # opts.backend ('auto' or 'openvino'): the same choice, and so the same precision, as the main predictor
    loaded = load(
        artifact,
        backend=opts.backend,
        device=opts.device,
        threads=opts.threads,
        spec=opts.spec,
        **{**opts.runner_opts("openvino"), "hint": "THROUGHPUT"},
    )
    from prodseg.runtime.runners.openvino_runner import OpenVinoRunner

    runner = loaded.runner
    if not isinstance(runner, OpenVinoRunner):
        loaded.close()
        raise BadInput(
            f"{artifact}: --mode throughput needs the OpenVINO backend (got {loaded.backend}); "
            "run it with --backend openvino or in latency mode"
        )
    return [runner.request_handle() for _ in range(opts.requests)], [loaded.close]


HANDLES: dict[str, Callable[[Any, str, Any], Handles]] = {"openvino": _openvino_requests}


def infer_handles(predictor: Any, artifact: str, opts: Any) -> Handles:
    """(opts.requests inference callables, what to close afterwards) on the predictor's backend."""
    return HANDLES.get(str(predictor.backend), _sessions)(predictor, artifact, opts)


@contextmanager
def warm_handles(predictor: Any, artifact: str, opts: Any, feed: Any) -> Iterator[list[Infer]]:
    """Throughput-mode handles, each run once on `feed` (first inferences compile), closed afterwards."""
    handles, closers = infer_handles(predictor, artifact, opts)
    try:
        for infer in handles:
            infer(feed)
        yield handles
    finally:
        for close in closers:
            close()
