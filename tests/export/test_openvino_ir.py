from __future__ import annotations

import openvino as ov
import pytest

from prodseg.atomic import atomic_dir
from prodseg.export.openvino_ir import convert_ir
from prodseg.metadata import read_sidecar

pytestmark = pytest.mark.slow


def test_fp32_and_fp16_ir_load_with_sidecars(tmp_path, exported_onnx):
    fp32, source = exported_onnx
    xml = convert_ir(fp32, tmp_path / "openvino", source.meta)
    xml16 = convert_ir(fp32, tmp_path / "openvino_fp16", source.meta, fp16=True)
    assert read_sidecar(xml) == source.meta
    assert read_sidecar(xml16).precision == "fp16"
    assert xml16.with_suffix(".bin").stat().st_size < 0.6 * xml.with_suffix(".bin").stat().st_size
    core = ov.Core()
    for p in (xml, xml16):  # compiling and running them is the CLI test's verification
        model = core.read_model(str(p))
        assert model.inputs[0].get_any_name() == "images" and list(model.inputs[0].shape) == [1, 3, 64, 64]
        assert list(model.outputs[0].shape) == [1, 10, 64, 64]
    assert oct((tmp_path / "openvino").stat().st_mode & 0o777) != oct(0o700)


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path):
    target = tmp_path / "openvino"
    with atomic_dir(target) as tmp:
        (tmp / "model.xml").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "model.xml").write_text("half")
        raise RuntimeError("injected")
    assert (target / "model.xml").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openvino"]
    with atomic_dir(target) as tmp:
        (tmp / "model.xml").write_text("new")
    assert (target / "model.xml").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openvino"]
