"""Pretrained weights: --weights PATH, or the libraries' caches filled by their own downloaders."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
import segmentation_models_pytorch as smp
import torch
from safetensors.torch import save_file

from prodseg.config import ModelConfig
from prodseg.errors import BadInput, ConfigError
from prodseg.train.models import build_model

UNET = ModelConfig(
    architecture="unet", encoder_name="resnet18", num_classes=3, decoder_channels=[32, 16, 8, 8, 8]
)


@pytest.fixture()
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_pretrained_without_weights_fails_fast_naming_both_remedies(hf_cache: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(backbone="resnet18", pretrained=True, num_classes=10))
    msg = str(err.value)
    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    expected = hf_cache / "models--smp-hub--resnet18.imagenet" / "snapshots" / settings["revision"]
    assert "--weights PATH" in msg and str(expected / "model.safetensors") in msg


def test_encoder_weights_tag_that_does_not_exist(hf_cache: Path) -> None:
    with pytest.raises(ConfigError, match="imagenet, ssl, swsl"):
        build_model(dataclasses.replace(UNET, encoder_weights="instagram"))


def test_encoder_weights_from_the_local_cache(hf_cache: Path) -> None:
    reference = build_model(UNET).net.encoder.state_dict()
    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    snapshot = hf_cache / "models--smp-hub--resnet18.imagenet" / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.items()}, str(snapshot / "model.safetensors"))
    loaded = build_model(dataclasses.replace(UNET, encoder_weights="imagenet")).net.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())


def test_weights_file_checkpoint_loads_whole_model(tmp_path: Path) -> None:
    source = build_model(UNET)
    path = tmp_path / "best.pt"
    torch.save({"format": "prodseg", "model": source.state_dict(), "epoch": 3}, path)
    loaded = build_model(dataclasses.replace(UNET, weights=str(path))).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())


def test_weights_file_of_another_num_classes_loads_the_rest(tmp_path: Path) -> None:
    source = build_model(dataclasses.replace(UNET, num_classes=7))
    path = tmp_path / "other.pt"
    torch.save(source.net.state_dict(), path)
    loaded = build_model(dataclasses.replace(UNET, weights=str(path)))
    assert torch.equal(loaded.net.encoder.conv1.weight, source.net.encoder.conv1.weight)
    assert loaded.net.segmentation_head[0].out_channels == 3


def test_weights_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(dataclasses.replace(UNET, weights=str(tmp_path / "missing.pt")))
    alien = tmp_path / "alien.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, alien)
    with pytest.raises(ConfigError, match="no tensor in"):
        build_model(dataclasses.replace(UNET, weights=str(alien)))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(BadInput, match="junk.pt"):
        build_model(dataclasses.replace(UNET, weights=str(junk)))


def test_yolo_pretrained_without_file_names_both_remedies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ultralytics.utils import SETTINGS

    monkeypatch.setitem(SETTINGS, "weights_dir", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(architecture="yolov8_seg", num_classes=3, pretrained=True))
    msg = str(err.value)
    assert "--weights PATH" in msg and str(tmp_path / "weights" / "yolov8n-seg.pt") in msg


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves `files` (URL path -> bytes) with the headers the Hugging Face hub sends for a resolved file."""

    files: dict[str, bytes] = {}
    commit = "0" * 40
    requests: list[str] = []

    def _headers(self) -> bytes | None:
        body = self.files.get(self.path.split("?")[0])
        self.requests.append(f"{self.command} {self.path}")
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Repo-Commit", self.commit)
        self.end_headers()
        return body

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._headers()

    def do_GET(self) -> None:  # noqa: N802
        body = self._headers()
        if body is not None:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def local_server() -> Iterator[tuple[str, type[_Files]]]:
    handler = type("Handler", (_Files,), {"files": {}, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_encoder_weights_are_downloaded_through_the_hub_client_into_its_cache(
    hf_cache: Path, local_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, handler = local_server
    reference = build_model(UNET).net.encoder.state_dict()
    blob = tmp_path / "blob.safetensors"
    save_file({k: v.contiguous() for k, v in reference.items()}, str(blob))
    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    handler.commit = settings["revision"]
    path = f"/{settings['repo_id']}/resolve/{settings['revision']}/model.safetensors"
    handler.files = {path: blob.read_bytes()}
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.delenv("PRODSEG_OFFLINE", raising=False)
    loaded = build_model(dataclasses.replace(UNET, encoder_weights="imagenet")).net.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())
    assert any(r.startswith("GET " + path) for r in handler.requests)
    snapshot = hf_cache / "models--smp-hub--resnet18.imagenet" / "snapshots" / settings["revision"]
    assert (snapshot / "model.safetensors").is_file()
    handler.requests.clear()  # the second time the cache answers
    build_model(dataclasses.replace(UNET, encoder_weights="imagenet"))
    assert not any(r.startswith("GET") for r in handler.requests)


def test_a_failed_download_names_the_file_and_weights_flag(
    hf_cache: Path, local_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = local_server  # serves nothing: every file is a 404
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.delenv("PRODSEG_OFFLINE", raising=False)
    with pytest.raises(ConfigError, match=r"failed; either pass --weights PATH .*model\.safetensors"):
        build_model(dataclasses.replace(UNET, encoder_weights="imagenet"))


def test_offline_nothing_is_requested(hf_cache: Path, local_server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, handler = local_server
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
    monkeypatch.setenv("PRODSEG_OFFLINE", "1")
    with pytest.raises(ConfigError, match="PRODSEG_OFFLINE is set"):
        build_model(dataclasses.replace(UNET, encoder_weights="imagenet"))
    assert handler.requests == []


def test_yolo_weights_are_downloaded_with_ultralytics_downloader(
    local_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    url, handler = local_server
    release = tmp_path / "release" / "yolov8n-seg.pt"
    release.parent.mkdir()
    published = YOLO("yolov8n-seg.yaml", task="segment")
    published.save(str(release))
    handler.files = {"/assets/yolov8n-seg.pt": release.read_bytes()}
    monkeypatch.setenv("PRODSEG_YOLO_WEIGHTS_URL", f"{url}/assets")
    monkeypatch.delenv("PRODSEG_OFFLINE", raising=False)
    monkeypatch.setitem(SETTINGS, "weights_dir", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)
    model = build_model(ModelConfig(architecture="yolov8_seg", num_classes=80, pretrained=True))
    assert (tmp_path / "weights" / "yolov8n-seg.pt").read_bytes() == release.read_bytes()
    expected = published.model.state_dict()
    own = model.net.state_dict()
    assert all(torch.equal(own[k], v.half().float()) for k, v in expected.items() if v.is_floating_point())


def test_the_training_cli_asks_for_pretrained_weights_and_offline_fails_before_the_run(
    hf_cache: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from prodseg.train.cli import main

    args = [
        "--config",
        "fast_cpu",
        "--data",
        str(tiny_dataset),
        "--pretrained",
        "--out",
        str(tmp_path / "runs"),
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "PRODSEG_OFFLINE is set" in res.stderr and "--weights PATH" in res.stderr
    assert not (tmp_path / "runs").exists()
