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


def weighted_loss():
    from prodseg.config import TrainingConfig
    from prodseg.train.losses import build_loss

    training = TrainingConfig(loss={"ce": 1.0, "focal": 1.0, "dice": 0.5}, class_weights=[1.0, 2.0, 3.0])
    return build_loss(training, 3)


def test_place_moves_the_loss_and_its_class_weights_with_the_model() -> None:
    """On the `meta` device (no GPU here): every tensor of model and loss must follow the device."""
    import torch

    from prodseg.train.fit import place

    model, criterion = torch.nn.Conv2d(3, 3, 1), weighted_loss()
    assert criterion.terms["ce"].weight is not None
    place(model, criterion, torch.device("meta"))
    tensors = [*model.parameters(), *model.buffers(), *criterion.parameters(), *criterion.buffers()]
    assert tensors and {t.device.type for t in tensors} == {"meta"}


def test_setup_places_the_loss_on_the_training_device(tiny_dataset, tmp_path, monkeypatch) -> None:
    from prodseg.train import fit as fit_module
    from tests.train.test_engine import fit_cfg

    placed = []
    real_place = fit_module.place
    monkeypatch.setattr(fit_module, "place", lambda m, c, d: (placed.append((c, d)), real_place(m, c, d)))
    cfg = fit_cfg(tiny_dataset, tmp_path, **{"training.class_weights": [1.0] + [2.0] * 9})
    run = fit_module.setup(cfg)
    assert placed == [(run.criterion, run.precision.device)]
    assert run.criterion is not None and run.criterion.terms["ce"].weight.device == run.precision.device


def test_fit_trains_with_class_weights_on_cpu(tiny_dataset, tmp_path) -> None:
    import math

    from prodseg.train.fit import fit
    from tests.train.test_engine import fit_cfg

    over = {"training.class_weights": [1.0] + [2.0] * 9, "training.hyperparameters.num_epochs": 1}
    result = fit(fit_cfg(tiny_dataset, tmp_path, **over), progress=False)
    (row,) = result.history
    assert math.isfinite(row["train/loss"]) and row["train/loss"] > 0
    assert (result.run_dir / "last.pt").is_file()
