"""fit's preflight: the class count comes from the dataset, and a config that disagrees names both."""

from __future__ import annotations

import pytest

from prodseg.config import load_config
from prodseg.data.layout import ShelfDataset
from prodseg.errors import ConfigError
from prodseg.train.fit import resolve_classes


@pytest.mark.parametrize("arch, expected", [("deeplabv3plus", 10), ("unet", 10), ("yolov8_seg", 9)])
def test_an_unset_class_count_comes_from_classes_yaml(tiny_dataset, arch, expected) -> None:
    cfg = load_config(None, {"model.architecture": arch, "data.root": str(tiny_dataset)})
    assert cfg.model.num_classes is None
    assert resolve_classes(cfg, ShelfDataset(tiny_dataset)).model.num_classes == expected


def test_a_config_that_disagrees_with_the_dataset_names_both(tiny_dataset) -> None:
    cfg = load_config(None, {"model.num_classes": 4, "data.root": str(tiny_dataset)})
    with pytest.raises(
        ConfigError,
        match=r"model.num_classes: the config says 4 but .*classes.yaml lists 10 "
        r"classes \(background, shelf, price_tag",
    ):
        resolve_classes(cfg, ShelfDataset(tiny_dataset))
    agreeing = load_config(None, {"model.num_classes": 10, "data.root": str(tiny_dataset)})
    assert resolve_classes(agreeing, ShelfDataset(tiny_dataset)) is agreeing


def test_a_train_split_of_one_image_is_refused_before_any_work(tiny_dataset, tmp_path) -> None:
    import shutil

    from prodseg.errors import BadInput
    from prodseg.train.fit import preflight

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    first = (data / "splits" / "train.txt").read_text().split()[0]
    (data / "splits" / "train.txt").write_text(first + "\n")
    cfg = load_config(None, {"data.root": str(data), "logging.out_dir": str(tmp_path / "runs")})
    with pytest.raises(BadInput, match=r"the 'train' split has 1 image\(s\); training needs at least 2"):
        preflight(cfg)
    assert not (tmp_path / "runs").exists()
