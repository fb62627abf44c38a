from __future__ import annotations

import shutil

import pytest

from prodseg.errors import BadInput
from prodseg.export.images import calibration_images, verification_samples


def test_verification_from_val_and_calibration_held_out(tiny_dataset):
    samples = verification_samples(tiny_dataset, 2)
    val = (tiny_dataset / "splits" / "val.txt").read_text().split()
    assert [s.stem for s in samples] == val[:2] and all(s.mask for s in samples)
    held = {s.stem for s in samples}
    images = calibration_images(tiny_dataset, 100, held)
    assert len(images) == 12 - len(held) and not held & {p.stem for p in images}
    assert [p.stem for p in images[: len(val) - 2]] == val[2:]  # the rest of val first
    assert len(calibration_images(tiny_dataset, 3, held)) == 3


def test_plain_image_folder_and_empty_folder(tmp_path, tiny_dataset):
    folder = tmp_path / "imgs"
    folder.mkdir()
    with pytest.raises(BadInput, match="no images"):
        calibration_images(folder, 10, set())
    for p in sorted((tiny_dataset / "images").iterdir())[:3]:
        shutil.copy(p, folder / p.name)
    assert len(calibration_images(folder, 10, set())) == 3
    with pytest.raises(BadInput, match="not found"):
        calibration_images(tmp_path / "missing", 10, set())
