"""Aspect-ratio buckets for datasets of mixed image sizes (`data.bucket_by_aspect`).

A handful of shapes of about the training size's area (sides multiples of 32), one per aspect ratio;
each image goes to the bucket nearest its own aspect and is letterboxed to that shape instead of being
squeezed into one square. A batch holds one bucket's images, and a bucket's batch size scales with its
area so every batch carries about the same number of pixels.

`BucketBatchSampler` is a DataLoader batch sampler: deterministic per (seed, epoch), and under DDP the
list of batches is sharded over the ranks (whole batches, the same count on every rank).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

# width / height of the buckets: portrait 1:2 and 2:3, square, landscape 3:2 and 2:1
ASPECTS = (1 / 2, 2 / 3, 1.0, 3 / 2, 2.0)
MULTIPLE = 32  # the encoders downsample by 32


def bucket_shapes(size: tuple[int, int], aspects: Sequence[float] = ASPECTS) -> list[tuple[int, int]]:
    """(height, width) per aspect with about `size`'s area and sides multiples of 32, widest last."""
    area = size[0] * size[1]
    shapes: list[tuple[int, int]] = []
    for aspect in aspects:
        h = max(MULTIPLE, round(math.sqrt(area / aspect) / MULTIPLE) * MULTIPLE)
        w = max(MULTIPLE, round(math.sqrt(area * aspect) / MULTIPLE) * MULTIPLE)
        if (h, w) not in shapes:
            shapes.append((h, w))
    return sorted(shapes, key=lambda s: s[1] / s[0])


def _log_aspect(height: int, width: int) -> float:
    return math.log(width / height)


def assign_buckets(sizes: Sequence[tuple[int, int]], shapes: Sequence[tuple[int, int]]) -> list[int]:
    """The bucket of each image: the shape nearest its (height, width) aspect, in log ratio (ties: first)."""
    logs = [_log_aspect(*s) for s in shapes]
    return [min(range(len(shapes)), key=lambda b: abs(logs[b] - _log_aspect(h, w))) for h, w in sizes]


def merge_small(buckets: list[int], shapes: Sequence[tuple[int, int]], least: int = 2) -> list[int]:
    """Move the images of buckets holding fewer than `least` into the nearest bucket holding more.

    A training batch of one image breaks BatchNorm (DeepLabV3+'s image pooling), and a bucket of one
    image can only make such a batch.
    """
    out = list(buckets)
    logs = [_log_aspect(*s) for s in shapes]
    while True:  # each pass empties one bucket, so this ends
        counts = np.bincount(out, minlength=len(shapes))
        small = [b for b in range(len(shapes)) if 0 < counts[b] < least]
        if not small:
            return out
        b = small[0]
        others = [o for o in range(len(shapes)) if counts[o] and o != b]
        if not others:
            return out
        big = [o for o in others if counts[o] >= least] or others
        into = min(big, key=lambda o: abs(logs[o] - logs[b]))
        out = [into if x == b else x for x in out]


def scaled_batch(batch: int, size: tuple[int, int], shape: tuple[int, int]) -> int:
    """The batch size for `shape` that carries about as many pixels as `batch` images of `size`."""
    return max(1, round(batch * size[0] * size[1] / (shape[0] * shape[1])))


class BucketBatchSampler:
    """Batches of one bucket each; shuffled per (seed, epoch) when `shuffle`, sharded over `world` ranks.

    With `shuffle` (training) every rank gets the same number of batches (the list is padded by repeating
    its first batches, as DistributedSampler pads) and a bucket's trailing single image joins the batch
    before it. Without (validation) batches keep dataset order and each image appears exactly once.
    """

    def __init__(
        self,
        buckets: Sequence[int],
        batch_sizes: Sequence[int],
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
    ) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.buckets, self.batch_sizes = list(buckets), list(batch_sizes)
        self.seed, self.rank, self.world, self.shuffle = seed, rank, world, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """Every rank's batches for `epoch` (the current one by default), in the order they are dealt."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        out: list[list[int]] = []
        for b, size in enumerate(self.batch_sizes):
            members = [i for i, x in enumerate(self.buckets) if x == b]
            if self.shuffle:
                members = [members[j] for j in rng.permutation(len(members))]
            chunks = [members[k : k + size] for k in range(0, len(members), size)]
            if self.shuffle and len(chunks) > 1 and len(chunks[-1]) == 1:
                last = chunks.pop()
                chunks[-1] = chunks[-1] + last
            out += chunks
        if self.shuffle:
            out = [out[j] for j in rng.permutation(len(out))]
            n = len(out)
            out += [out[k % n] for k in range(-n % self.world)] if n else []
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches()[self.rank :: self.world])

    def __len__(self) -> int:
        return len(self.batches()[self.rank :: self.world])
