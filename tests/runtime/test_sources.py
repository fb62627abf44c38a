"""Frame sources: video files, image folders, bad specs, truncated videos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from prodseg.errors import BadInput
from prodseg.runtime.sources import AvSource, CaptureSource, ImageFolderSource, open_source


def test_video_file_yields_every_frame_in_order(tiny_video) -> None:
    src = open_source(tiny_video[0])
    assert isinstance(src, AvSource | CaptureSource) and not src.is_live
    assert src.size == (160, 96) and src.frame_count == 24 and src.fps == pytest.approx(30)
    frames = list(src)
    assert [f.index for f in frames] == list(range(24))
    assert all(f.image.shape == (96, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[3].timestamp_s == pytest.approx(3 / 30, abs=1e-3)
    assert src.decode_error is None
    src.close()


def test_image_folder_in_name_order(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((8, 12, 3), i * 50, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(tmp_path)
    assert isinstance(src, ImageFolderSource) and src.frame_count == 3 and src.size == (12, 8)
    assert [int(f.image[0, 0, 0]) for f in src] == [0, 50, 100]


def test_unreadable_image_stops_and_is_reported(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"broken")
    src = open_source(tmp_path)
    assert len(list(src)) == 1 and src.decode_error == 1


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/nonexistent/clip.mp4", "no such video, image folder, camera index or URL"),
        ("97", "camera 97: cannot open this camera"),
    ],
)
def test_bad_specs_are_bad_input(spec: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        open_source(spec)


def test_empty_folder_and_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no images"):
        open_source(tmp_path)
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(BadInput, match="clip.mp4: cannot open this video"):
        open_source(junk)


def test_truncated_video_reports_where_decoding_stopped(truncated_video: Path) -> None:
    src = open_source(truncated_video)
    frames = list(src)
    assert src.frame_count == 30 and 0 < len(frames) < 30
    assert src.decode_error == len(frames)


def test_variable_frame_rate_mkv_decodes_to_the_end(vfr_video: tuple[Path, list[int]]) -> None:
    path, gaps = vfr_video
    src = open_source(path)
    frames = list(src)
    # OpenCV estimates Matroska's count as duration x nominal FPS: far more than the file holds
    assert src.frame_count is not None and src.frame_count > len(frames) == len(gaps) + 1
    assert src.decode_error is None
    expected = np.cumsum([0, *gaps]) / 1000
    assert [f.timestamp_s for f in frames] == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize(
    "decoded, count, fps, last, gap, early",
    [
        (13, 30, 30.0, 0.4, 1 / 30, True),  # truncated CFR file
        (30, 30, 30.0, 29 / 30, 1 / 30, False),  # complete
        (29, 30, 30.0, 28 / 30, 1 / 30, True),  # one frame missing
        (21, 68, 30.0, 2.248, 0.4, False),  # VFR Matroska: count is an estimate, time reached the end
        (5, 68, 30.0, 0.4, 0.4, True),  # VFR file cut short
        (5, None, 30.0, 0.1, 0.03, False),  # no count known
    ],
)
def test_stopped_early(decoded, count, fps, last, gap, early) -> None:
    from prodseg.runtime.sources import stopped_early

    assert stopped_early(decoded, count, fps, last, gap) is early
