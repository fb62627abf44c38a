"""Synthetic shelf videos: decodable by OpenCV and PyAV, one exact mask per frame, deterministic."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from prodseg.data.imageio import read_mask
from prodseg.data.synth import generate_video
from prodseg.data.synth.commands import video
from prodseg.data.synth.encode import best_codec
from prodseg.data.synth.video import Panorama, plan_path
from prodseg.data.taxonomy import SHELF10
from prodseg.errors import BadInput


def cv2_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def av_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_both_decoders_read_every_frame(tiny_video: tuple[Path, Path]) -> None:
    path, _ = tiny_video
    for frames in (cv2_frames(path), av_frames(path)):
        assert len(frames) == 24
        assert all(f.shape == (96, 160, 3) for f in frames)


def test_one_valid_mask_per_frame_and_the_camera_moves(tiny_video: tuple[Path, Path]) -> None:
    _, masks_dir = tiny_video
    names = sorted(p.name for p in masks_dir.glob("*.png"))
    assert names == [f"{i:06d}.png" for i in range(24)]
    masks = [read_mask(masks_dir / n) for n in names]
    assert all(m.shape == (96, 160) and m.max() < SHELF10.num_classes for m in masks)
    assert not np.array_equal(masks[0], masks[-1])
    assert len(set().union(*(np.unique(m).tolist() for m in masks))) >= 6


def test_h264_is_preferred_when_pyav_has_libx264(tiny_video: tuple[Path, Path]) -> None:
    with av.open(str(tiny_video[0])) as container:
        name = container.streams.video[0].codec_context.name
    assert name == ("h264" if best_codec() == "h264" else "mpeg4")


def test_same_seed_same_video_and_masks(tmp_path: Path) -> None:
    a = generate_video(tmp_path / "a.mp4", 6, (64, 48), 10, seed=5, masks_dir=tmp_path / "ma")
    b = generate_video(tmp_path / "b.mp4", 6, (64, 48), 10, seed=5, masks_dir=tmp_path / "mb")
    c = generate_video(tmp_path / "c.mp4", 6, (64, 48), 10, seed=6)
    fa, fb, fc = av_frames(a), av_frames(b), av_frames(c)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    assert not np.array_equal(fa[0], fc[0])
    for i in range(6):
        name = f"{i:06d}.png"
        assert (tmp_path / "ma" / name).read_bytes() == (tmp_path / "mb" / name).read_bytes()


def test_mp4v_fallback_decodes_in_both(tmp_path: Path) -> None:
    path = generate_video(tmp_path / "v.mp4", 8, (64, 48), 15, seed=0, codec="mp4v")
    assert len(cv2_frames(path)) == 8
    assert len(av_frames(path)) == 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 0}, "frames=0"),
        ({"size": (65, 48)}, "65x48"),
        ({"size": (16, 16)}, "16x16"),
        ({"fps": 0}, "fps=0"),
        ({"name": "v.avi"}, "MP4"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"frames": 4, "size": (64, 48), "fps": 10, "name": "v.mp4"} | kwargs
    with pytest.raises(BadInput, match=match):
        generate_video(tmp_path / args.pop("name"), seed=0, **args)
    assert list(tmp_path.iterdir()) == []


def test_cli_video(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    args = [str(out), "--frames", "5", "--size", "96x64", "--masks", str(tmp_path / "m")]
    res = CliRunner().invoke(video, args)
    assert res.exit_code == 0, res.output
    assert "5 frames 96x64" in res.output
    assert len(cv2_frames(out)) == 5 and len(list((tmp_path / "m").glob("*.png"))) == 5


@pytest.mark.parametrize("args", [["--frames", "0"], ["--size", "abc"], ["--size", "97x64"]])
def test_cli_video_bad_values_exit_2(tmp_path: Path, args: list[str]) -> None:
    res = CliRunner().invoke(video, [str(tmp_path / "v.mp4"), *args])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "v.mp4").exists()


def test_rerun_with_fewer_frames_leaves_no_stale_masks(tmp_path: Path) -> None:
    generate_video(tmp_path / "v.mp4", 6, (64, 48), 10, seed=0, masks_dir=tmp_path / "m")
    generate_video(tmp_path / "v.mp4", 3, (64, 48), 10, seed=0, masks_dir=tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").glob("*.png")) == [f"{i:06d}.png" for i in range(3)]
    assert len(av_frames(tmp_path / "v.mp4")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "v.mp4"]


def test_frame_view_moves_image_and_mask_together() -> None:
    pano = Panorama.render(60, 200, np.random.default_rng(0))
    shift = np.array([[1.0, 0, 7], [0, 1.0, 3]])  # frame pixel (x, y) shows panorama (x + 7, y + 3)
    img, mask = pano.view(shift, (80, 50))
    assert np.array_equal(img, pano.rgba[3:53, 7:87, :3])
    assert np.array_equal(mask, pano.lut[pano.ids[3:53, 7:87]])


@pytest.mark.parametrize(
    ("frames", "size", "fps", "seed"),
    [(90, (1280, 720), 30, 0), (40, (64, 48), 5, 1), (200, (96, 160), 60, 2), (1, (32, 32), 1, 3)],
)
def test_every_view_stays_inside_the_panorama(
    frames: int, size: tuple[int, int], fps: int, seed: int
) -> None:
    path, ph, pw = plan_path(frames, size, fps, np.random.default_rng(seed))
    w, h = size
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    for i in range(frames):
        x, y = path.affine(i, size) @ corners
        assert x.min() >= 0 and y.min() >= 0 and x.max() <= pw - 1 and y.max() <= ph - 1, i
    assert frames == 1 or path.cx[-1] > path.cx[0]  # the camera travels along the shelf
