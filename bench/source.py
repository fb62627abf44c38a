"""A video source bounded by `--frames` / `--duration` that loops a short file (like benchmark_app)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prodseg.bench.timers import Deadline
from prodseg.errors import BadInput


class BoundedSource:
    """Frames of `spec`, replayed from the start while the deadline allows (one pass when unbounded).

    Frame indices restart at 0 on every pass, so ground-truth masks still line up.
    """

    def __init__(self, spec: str, deadline: Deadline) -> None:
        from prodseg.runtime.sources import open_source

        self._open = open_source
        self.spec = spec
        self.deadline = deadline
        self.first = open_source(spec)
        self.decode_error: int | None = None

    def __getattr__(self, name: str) -> Any:
        # fps, frame_count, size, is_live, ...: whatever the runtime's source offers.
        return getattr(self.__dict__["first"], name)

    def __iter__(self) -> Iterator[Any]:
        yielded = 0
        source = self.first
        self.deadline.start()
        while True:
            produced = 0
            try:
                for frame in source:
                    produced += 1
                    if self.deadline.done(yielded):
                        return
                    yielded += 1
                    yield frame
            finally:
                source.close()
            if source.decode_error is not None:
                self.decode_error = source.decode_error
                return
            unbounded = self.deadline.frames is None and self.deadline.duration_s is None
            if unbounded or produced == 0 or getattr(source, "is_live", False):
                if yielded == 0:
                    raise BadInput(f"{self.spec}: no frame could be decoded; check the file with ffprobe")
                return
            source = self._open(self.spec)
