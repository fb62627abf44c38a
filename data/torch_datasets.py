"""PyTorch datasets: shelf images with masks (and instance ids) and sequential video clips.

This is the one `data` module that imports torch; only `prodseg.train` imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from prodseg.config import AugmentationConfig
from prodseg.data.augment import build_augmentation
from prodseg.data.buckets import BucketBatchSampler, assign_buckets, bucket_shapes, merge_small, scaled_batch
from prodseg.data.check import split_samples
from prodseg.data.imageio import read_image, read_mask
from prodseg.data.imagesize import declared_size
from prodseg.data.instances import id_map_from_instances
from prodseg.data.layout import ShelfDataset
from prodseg.data.taxonomy import IGNORE_INDEX, ClassList
from prodseg.errors import BadInput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(rgb: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) or (T, H, W, 3) -> float32 (3, H, W) or (T, 3, H, W) with (x/255 - mean) / std."""
    if rgb.ndim == 4:
        return torch.stack([normalize(f, mean, std) for f in rgb])
    # Planar copy, then in-place affine: ~9x faster than float HWC arithmetic plus a transpose.
    out = np.empty((3, *rgb.shape[:2]), np.float32)
    for c, plane in enumerate(cv2.split(rgb)):
        out[c] = plane
    out *= (1 / (255 * std))[:, None, None]
    out -= (mean / std)[:, None, None]
    return torch.from_numpy(out)


def _stats(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if m.shape != (3,) or s.shape != (3,) or (s <= 0).any():
        raise BadInput(f"mean {tuple(mean)} / std {tuple(std)}: need three values each, std > 0")
    return m, s


class DataError(BadInput):
    """BadInput raised while reading an item, kept one line when it crosses a DataLoader worker.

    torch re-raises a worker's exception in the main process as `type(exc)(text)` where the text is
    "Caught X in DataLoader worker N. Original Traceback ... X: <message>": this class keeps only
    the original message, so the CLI still prints one line and exits 2.
    """

    def __init__(self, message: str) -> None:
        lines = [line for line in str(message).splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].startswith("Caught "):
            message = lines[-1].split(": ", 1)[-1]  # drop the "prodseg...DataError: " prefix
        super().__init__(message)


def _encode_ids(ids: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", ids.astype(np.uint16))
    assert ok, "OpenCV encodes 16-bit PNG"
    return buf.tobytes()


class GroceryShelfDataset(Dataset):
    """Items {"image" (3,H,W) float32, "mask" (H,W) int64 with 255 = ignore, "stem"[, "instances"]}."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] = (256, 256),
        augmentation: AugmentationConfig | None = None,
        train: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        cache: bool = False,
        with_instances: bool = False,
    ):
        self.data = ShelfDataset(root)
        self.samples = split_samples(self.data, split)  # check_samples is the caller's, once per run
        self.size = (int(size[0]), int(size[1]))
        self.mean, self.std = _stats(mean, std)
        extra = ("instances",) if with_instances else ()
        self.transform = build_augmentation(augmentation or AugmentationConfig(), self.size, train, extra)
        # Per-image shapes (aspect buckets): each image is letterboxed to its shape, then transformed.
        self._recipe = (augmentation or AugmentationConfig(), train, extra)
        self._shapes: list[tuple[int, int]] | None = None
        self._transforms: dict[tuple[int, int], Any] = {}
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self._ids = self._load_instances() if with_instances else None
        self._seeded_for: int | None = None

    @property
    def classes(self) -> ClassList:
        return self.data.classes

    def use_shapes(self, shapes: list[tuple[int, int]]) -> None:
        """Produce item i at shapes[i] (height, width), letterboxed, instead of the one training size."""
        if len(shapes) != len(self.samples):
            raise ValueError(f"{len(shapes)} shapes for {len(self.samples)} images")
        self._shapes = [(int(h), int(w)) for h, w in shapes]
        self._transforms = {
            shape: build_augmentation(self._recipe[0], shape, *self._recipe[1:])
            for shape in dict.fromkeys(self._shapes)
        }
        self._seeded_for = None

    def __len__(self) -> int:
        return len(self.samples)

    def _load_instances(self) -> dict[str, bytes]:
        """Instance-id maps per stem from instances.json, kept PNG-compressed (16 bit) in memory."""
        from prodseg.data.formats.coco import read_coco

        path = self.data.instances_json
        if not path.is_file():
            raise BadInput(f"{path}: missing; instances need COCO annotations (prodseg-data convert)")
        records, _ = read_coco(path)
        by_stem = {
            r.stem: _encode_ids(id_map_from_instances(r.instances, (r.height, r.width))) for r in records
        }
        missing = [s.stem for s in self.samples if s.stem not in by_stem]
        if missing:
            raise BadInput(f"{path}: no annotations for image '{missing[0]}' ({len(missing)} images missing)")
        return by_stem

    def _decoded(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        s = self.samples[i]
        image, mask = read_image(s.image), read_mask(s.mask)  # type: ignore[arg-type]
        if image.shape[:2] != mask.shape:
            raise BadInput(f"{s.mask}: mask size {mask.shape} differs from {s.image.name} {image.shape[:2]}")
        if self._cache is not None:
            self._cache[i] = (image, mask)
        return image, mask

    def _reseed(self) -> None:
        # Forked DataLoader workers inherit one RNG state; give each worker (and epoch) its own stream.
        info = get_worker_info()
        seed = info.seed if info is not None else torch.initial_seed()
        if seed != self._seeded_for:
            for transform in (self.transform, *self._transforms.values()):
                transform.set_random_seed(int(seed) % 2**32)
            self._seeded_for = seed

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            return self._item(i)
        except BadInput as exc:
            raise DataError(str(exc)) from None
        except OSError as exc:  # e.g. a file made unreadable after the start
            raise DataError(
                f"{exc.filename or self.samples[i].image}: cannot read it ({exc.strerror}); "
                "check the dataset folder's files and permissions"
            ) from None

    def _item(self, i: int) -> dict[str, Any]:
        self._reseed()
        image, mask = self._decoded(i)
        stem = self.samples[i].stem
        inputs = {"image": image, "mask": mask}
        if self._ids is not None:
            ids = cv2.imdecode(np.frombuffer(self._ids[stem], np.uint8), cv2.IMREAD_UNCHANGED)
            assert ids is not None, "decoding a PNG this process encoded"
            inputs["instances"] = ids
        transform = self.transform
        if self._shapes is not None:
            inputs = letterbox(inputs, self._shapes[i])
            transform = self._transforms[self._shapes[i]]
        out = transform(**inputs)
        item = {
            "image": normalize(out["image"], self.mean, self.std),
            "mask": torch.from_numpy(out["mask"].astype(np.int64)),
            "stem": stem,
        }
        if self._ids is not None:
            ids = out["instances"].astype(np.int64)
            ids[out["mask"] == IGNORE_INDEX] = 0  # the border fill (255) applies to every mask target
            item["instances"] = torch.from_numpy(ids)
        return item


# Border fill per target: black image, ignored mask, no instance.
LETTERBOX_FILL = {"image": 0, "mask": IGNORE_INDEX, "instances": 0}


def letterbox(inputs: dict[str, np.ndarray], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Scale every target to fit (height, width) keeping its aspect, then pad right and bottom."""
    h, w = inputs["image"].shape[:2]
    scale = min(shape[0] / h, shape[1] / w)
    nh, nw = min(shape[0], max(1, round(h * scale))), min(shape[1], max(1, round(w * scale)))
    out = {}
    for key, value in inputs.items():
        smooth = key == "image"
        resized = cv2.resize(value, (nw, nh), interpolation=cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST)
        out[key] = cv2.copyMakeBorder(
            resized, 0, shape[0] - nh, 0, shape[1] - nw, cv2.BORDER_CONSTANT, value=LETTERBOX_FILL.get(key, 0)
        )
    return out


def bucket_sampler(
    dataset: GroceryShelfDataset, batch: int, seed: int, rank: int, world: int, train: bool
) -> BucketBatchSampler:
    """Put each image of `dataset` in its aspect bucket (letterboxed to the bucket's shape) and batch by
    bucket, `batch` images at the training size and proportionally fewer or more at other areas."""
    shapes = bucket_shapes(dataset.size)
    sizes = [declared_size(s.image)[::-1] for s in dataset.samples]  # (height, width)
    buckets = assign_buckets(sizes, shapes)
    if train:
        buckets = merge_small(buckets, shapes)
    dataset.use_shapes([shapes[b] for b in buckets])
    batches = [scaled_batch(batch, dataset.size, shape) for shape in shapes]
    return BucketBatchSampler(buckets, batches, seed, rank, world, shuffle=train)


def bucketed_loaders(
    train: GroceryShelfDataset,
    val: GroceryShelfDataset,
    batch: int,
    seed: int,
    rank: int,
    world: int,
    **loader: Any,
) -> tuple[DataLoader, DataLoader]:
    """Train and val loaders over aspect buckets: `batch` is the per-process batch at the training size."""
    train_batches = bucket_sampler(train, batch, seed, rank, world, train=True)
    val_batches = bucket_sampler(val, batch, seed, rank, world, train=False)
    return (
        DataLoader(train, batch_sampler=train_batches, generator=torch.Generator(), **loader),
        DataLoader(val, batch_sampler=val_batches, **loader),
    )


class VideoFrameDataset(Dataset):
    """Sequential clips of a video: {"frames" (T,3,H,W) float32, "start"[, "masks" (T,H,W) int64]}.

    Clip k covers frames [k*stride, k*stride + clip_length); size (H, W) None keeps the native size.
    """

    def __init__(
        self,
        video_path: str | Path,
        clip_length: int = 8,
        stride: int | None = None,
        size: tuple[int, int] | None = None,
        masks_dir: str | Path | None = None,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ):
        self.path = Path(video_path)
        if clip_length < 1 or (stride is not None and stride < 1):
            raise BadInput(f"clip_length={clip_length}, stride={stride}: both must be >= 1")
        self.clip_length, self.stride = int(clip_length), int(stride or clip_length)
        self.size = (int(size[0]), int(size[1])) if size is not None else None
        self.mean, self.std = _stats(mean, std)
        self.num_frames = count_frames(self.path)
        self.starts = list(range(0, self.num_frames - self.clip_length + 1, self.stride))
        if not self.starts:
            raise BadInput(f"{self.path}: {self.num_frames} frames, fewer than clip_length={clip_length}")
        self.masks_dir = Path(masks_dir) if masks_dir is not None else None
        if self.masks_dir is not None:
            _check_masks(self.masks_dir, self.num_frames)
        self._cap: cv2.VideoCapture | None = None
        self._next = -1  # frame index the open capture reads next

    def __len__(self) -> int:
        return len(self.starts)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cap"], state["_next"] = None, -1  # captures do not pickle; each worker opens its own
        return state

    def _read(self, start: int) -> list[np.ndarray]:
        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.path))
        if self._next != start:  # sequential clips avoid the (keyframe + decode-forward) seek
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = []
        for i in range(start, start + self.clip_length):
            ok, bgr = self._cap.read()
            if not ok:
                raise BadInput(f"{self.path}: cannot decode frame {i} (truncated or corrupt video)")
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        self._next = start + self.clip_length
        return frames

    def _resize(self, img: np.ndarray, interpolation: int) -> np.ndarray:
        if self.size is None or img.shape[:2] == self.size:
            return img
        return cv2.resize(img, self.size[::-1], interpolation=interpolation)

    def __getitem__(self, k: int) -> dict[str, Any]:
        start = self.starts[k]
        frames = np.stack([self._resize(f, cv2.INTER_LINEAR) for f in self._read(start)])
        item: dict[str, Any] = {"frames": normalize(frames, self.mean, self.std), "start": start}
        if self.masks_dir is not None:
            idx = range(start, start + self.clip_length)
            masks = [self._resize(read_mask(self.masks_dir / f"{i:06d}.png"), cv2.INTER_NEAREST) for i in idx]
            item["masks"] = torch.from_numpy(np.stack(masks).astype(np.int64))
        return item


def count_frames(path: Path) -> int:
    """Decodable frames in a video (counted by grabbing each; container headers can be wrong)."""
    if not path.is_file():
        raise BadInput(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise BadInput(f"{path}: OpenCV cannot open this video (corrupt or unsupported codec)")
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise BadInput(f"{path}: no decodable frames (truncated or corrupt video)")
    return n


def _check_masks(masks_dir: Path, frames: int) -> None:
    missing = [i for i in range(frames) if not (masks_dir / f"{i:06d}.png").is_file()]
    if missing:
        first = masks_dir / f"{missing[0]:06d}.png"
        raise BadInput(
            f"{first}: mask missing ({len(missing)} of {frames} frames have none); "
            "masks are named by frame index: 000000.png, 000001.png, ..."
        )
