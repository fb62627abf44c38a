"""Tiny exported segmentation artifacts for the bench tests: a 64x64 smp UNet as ONNX and OpenVINO IR.

Built with the training stack (torch, smp) in the test session only; the code under test never
imports torch. Shared with tests/benchmarks through its conftest.
"""

from __future__ import annotations

from pathlib import Path

from prodseg.data.taxonomy import SHELF10
from prodseg.metadata import ArtifactMetadata, write_sidecar

SIZE = 64


def tiny_metadata(precision: str = "fp32") -> ArtifactMetadata:
    return ArtifactMetadata(
        arch="unet-resnet18-tiny",
        class_names=list(SHELF10.names),
        class_colors=[list(c) for c in SHELF10.colors],
        input_size=[SIZE, SIZE],
        precision=precision,
        prodseg_version="test",
    )


def export_tiny_onnx(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 3-level UNet with 10 classes, exported at opset 17 with prodseg metadata."""
    import onnx
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(seed)
    meta = tiny_metadata()
    model = smp.Unet(
        "resnet18",
        encoder_weights=None,
        encoder_depth=3,
        decoder_channels=(32, 16, 8),
        classes=meta.num_classes,
    ).eval()
    with torch.no_grad():
        torch.onnx.export(
            model,
            torch.zeros(1, 3, SIZE, SIZE),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    for key, value in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def convert_to_ir(onnx_path: Path, xml_path: Path) -> Path:
    """OpenVINO IR (FP32 weights) of an ONNX file, with its metadata sidecar."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    write_sidecar(xml_path, tiny_metadata())
    return xml_path


def build_tiny_artifacts(folder: Path) -> dict[str, Path]:
    """{'onnx': model.onnx, 'openvino': model.xml} in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = export_tiny_onnx(folder / "model.onnx")
    return {"onnx": onnx_path, "openvino": convert_to_ir(onnx_path, folder / "model.xml")}


def quantize_qdq(onnx_path: Path, out_path: Path, samples: int = 8, seed: int = 0) -> Path:
    """Static INT8 QDQ ONNX (u8 activations, s8 weights, per channel) calibrated on random images."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(seed)
    shape = (1, 3, SIZE, SIZE)
    batches = iter([{"images": rng.normal(0, 1, shape).astype(np.float32)} for _ in range(samples)])

    class Reader(CalibrationDataReader):
        def get_next(self):  # noqa: ANN202 - the ORT interface
            return next(batches, None)

    quantize_static(
        str(onnx_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    proto = onnx.load(str(out_path))
    del proto.metadata_props[:]
    for key, value in tiny_metadata("int8").to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(out_path))
    return out_path
