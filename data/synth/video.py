"""`generate_video`: a camera moving along a long synthetic shelf, with exact per-frame masks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prodseg.atomic import atomic_path, write_json
from prodseg.data.imageio import write_mask
from prodseg.data.synth import camera
from prodseg.data.synth.encode import open_writer
from prodseg.data.synth.scene import render_shelf
from prodseg.data.synth.staging import MARKER, staged_folder
from prodseg.errors import BadInput

EXPOSURE = 0.5  # fraction of the frame interval the shutter is open (motion-blur length)


@dataclass
class CameraPath:
    """Per-frame view of the panorama: centre (cx, cy), scale (panorama px per frame px), roll, speed."""

    cx: np.ndarray
    cy: np.ndarray
    scale: np.ndarray
    roll: np.ndarray
    speed: np.ndarray  # horizontal panorama px per frame
    exposure: np.ndarray  # auto-exposure drift, ~1.0

    def affine(self, i: int, size: tuple[int, int]) -> np.ndarray:
        """2x3 map from frame pixel to panorama pixel (for warpAffine with WARP_INVERSE_MAP)."""
        w, h = size
        c, s = np.cos(self.roll[i]), np.sin(self.roll[i])
        a = self.scale[i] * np.array([[c, -s], [s, c]])
        b = np.array([self.cx[i], self.cy[i]]) - a @ np.array([w / 2, h / 2])
        return np.hstack([a, b[:, None]]).astype(np.float64)


def _smooth_walk(rng: np.random.Generator, n: int, amplitude: float, smooth: int = 5) -> np.ndarray:
    """Hand-shake: white noise low-passed with a box filter, scaled to the given amplitude."""
    raw = rng.standard_normal(n + 2 * smooth)
    walk = np.convolve(raw, np.ones(smooth) / smooth, mode="same")[smooth : smooth + n]
    return walk * amplitude / max(1e-9, np.abs(walk).max())


def plan_path(
    frames: int, size: tuple[int, int], fps: int, rng: np.random.Generator
) -> tuple[CameraPath, int, int]:
    """Camera path and the panorama (height, width) it needs: every frame's view stays inside it."""
    w, h = size
    t = np.arange(frames) / fps
    zoom = 1 + 0.04 * np.sin(2 * np.pi * t / rng.uniform(3, 6) + rng.uniform(0, 2 * np.pi))
    v0 = w * rng.uniform(0.006, 0.014) * 30 / fps
    speed = v0 * (1 + 0.35 * np.sin(2 * np.pi * t / rng.uniform(2, 5) + rng.uniform(0, 2 * np.pi)))
    shake_x, shake_y = _smooth_walk(rng, frames, 0.012 * h), _smooth_walk(rng, frames, 0.012 * h)
    roll = np.deg2rad(_smooth_walk(rng, frames, 0.6, smooth=9))
    exposure = 1 + _smooth_walk(rng, frames, 0.05, smooth=15)
    scale = 1 / zoom
    # Half extents of each rotated, scaled, shaken view: the panorama is sized so none leaves it, so the
    # image never shows reflected border pixels that the mask would call background.
    sin = np.abs(np.sin(roll))
    half_h = scale * (h / 2 + w / 2 * sin) + np.abs(shake_y)
    half_w = scale * (w / 2 + h / 2 * sin) + np.abs(shake_x)
    ph = int(np.ceil(2 * half_h.max())) + 2
    cx = half_w.max() + 1 + np.concatenate([[0.0], np.cumsum(speed[:-1])]) + shake_x
    cy = ph / 2 + shake_y
    pw = int(np.ceil(cx.max() + half_w.max())) + 2
    return CameraPath(cx, cy, scale, roll, speed, exposure), ph, pw


@dataclass
class Panorama:
    """The long shelf, rendered once: RGBA image (4-channel warps are SIMD-vectorised, ~2x faster), ids."""

    rgba: np.ndarray
    ids: np.ndarray
    lut: np.ndarray

    @classmethod
    def render(cls, h: int, w: int, rng: np.random.Generator) -> Panorama:
        cv = render_shelf(h, w, rng, bay=(0.2, 0.34))
        return cls(cv2.cvtColor(cv.image, cv2.COLOR_RGB2RGBA), cv.ids, cv.lut())

    def view(self, m: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """RGB (bilinear) and label mask (nearest) seen through the frame-to-panorama affine m."""
        inv = cv2.WARP_INVERSE_MAP
        rgba = cv2.warpAffine(self.rgba, m, size, flags=inv | cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        ids = cv2.warpAffine(self.ids, m, size, flags=inv | cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), self.lut[ids]


def _frame(
    pano: Panorama,
    path: CameraPath,
    i: int,
    size: tuple[int, int],
    gain: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Render frame i: RGB with motion blur and noise, and its exact label mask."""
    img, mask = pano.view(path.affine(i, size), size)
    blur = int(round(EXPOSURE * path.speed[i] / path.scale[i]))
    if blur >= 2:
        img = cv2.blur(img, (blur, 1))
    return camera.expose(img, gain, rng, noise=(1.5, 3.5), exposure=float(path.exposure[i])), mask


def _check(frames: int, size: tuple[int, int], fps: int) -> tuple[int, int]:
    if not isinstance(frames, (int, np.integer)) or frames < 1:
        raise BadInput(f"frames={frames}: need at least 1 frame")
    if not 1 <= fps <= 240:
        raise BadInput(f"fps={fps}: must be between 1 and 240")
    w, h = (int(v) for v in size)
    if not (32 <= w <= 7680 and 32 <= h <= 4320) or w % 2 or h % 2:
        raise BadInput(f"size {w}x{h} (WxH): sides must be even (H.264 4:2:0), from 32x32 to 7680x4320")
    return w, h


def generate_video(
    out_path: str | Path,
    frames: int,
    size: tuple[int, int],
    fps: int,
    seed: int,
    masks_dir: str | Path | None = None,
    codec: str | None = None,
) -> Path:
    """Render a shelf video of `frames` frames at size (W, H); per-frame masks to masks_dir/000000.png, ..."""
    w, h = _check(frames, size, fps)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise BadInput(f"{out_path}: synthetic videos are MP4; name the output *.mp4")
    rng = np.random.default_rng([int(seed), 1])
    path, ph, pw = plan_path(frames, (w, h), fps, rng)
    pano = Panorama.render(ph, pw, rng)
    gain = camera.lighting_gain(h, w, rng)
    with contextlib.ExitStack() as stack:
        # Masks are staged too: a re-run with fewer frames must not leave stale masks beside the new ones.
        masks = stack.enter_context(staged_folder(Path(masks_dir), MARKER)) if masks_dir is not None else None
        tmp = stack.enter_context(atomic_path(out_path, suffix=".mp4"))
        writer = open_writer(tmp, w, h, fps, codec)
        try:
            for i in range(frames):
                img, mask = _frame(pano, path, i, (w, h), gain, np.random.default_rng([int(seed), 2, i]))
                writer.write(img)
                if masks is not None:
                    write_mask(masks / f"{i:06d}.png", mask)
        finally:
            writer.close()
        if masks is not None:
            write_json(
                masks / MARKER,
                {
                    "generator": "prodseg.data.synth.video",
                    "video": out_path.name,
                    "frames": frames,
                    "size": [w, h],
                    "fps": fps,
                    "seed": seed,
                },
            )
    return out_path
