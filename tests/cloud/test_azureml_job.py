"""The Azure ML job spec: well-formed, torchrun per node, and its prodseg-train arguments parse.

Submitting it needs an Azure subscription, which CI does not have; this checks everything up to that."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from prodseg.train.cli import main as train_main
from prodseg.train.cli import resolve_config_path

JOB = Path(__file__).resolve().parents[2] / "cloud" / "azureml" / "train-job.yml"


def _job() -> dict:
    return yaml.safe_load(JOB.read_text())


def test_job_is_a_distributed_pytorch_command_job() -> None:
    job = _job()
    assert job["type"] == "command"
    assert job["distribution"] == {"type": "pytorch", "process_count_per_instance": 1}
    assert job["resources"]["instance_count"] >= 1
    assert (JOB.parent / job["code"] / "pyproject.toml").is_file()  # the code snapshot is the repo root


def test_command_runs_torchrun_on_every_node_with_azure_ml_rendezvous() -> None:
    command = _job()["command"]
    launcher = command[command.index("torchrun") : command.index("-m prodseg.train")]
    for flag in (
        '--nnodes "$WORLD_SIZE"',
        '--node_rank "$NODE_RANK"',
        '--master_addr "$MASTER_ADDR"',
        '--master_port "$MASTER_PORT"',
        "--nproc_per_node ${{inputs.gpus_per_node}}",
    ):
        assert flag in launcher


def test_train_arguments_parse_and_name_real_inputs() -> None:
    job = _job()
    args = shlex.split(job["command"].split("-m prodseg.train", 1)[1])
    used = set(re.findall(r"\$\{\{(inputs|outputs)\.(\w+)\}\}", " ".join(args)))
    assert used == {("inputs", "data"), ("inputs", "epochs"), ("outputs", "runs")}
    assert all(name in job[kind] for kind, name in used)
    values = {"inputs.data": "/mnt/data", "inputs.epochs": "30", "outputs.runs": "/mnt/runs"}
    concrete = [re.sub(r"\$\{\{([\w.]+)\}\}", lambda m: values[m.group(1)], a) for a in args]
    ctx = train_main.make_context("prodseg-train", concrete)
    assert ctx.params["distributed"] is True
    assert ctx.params["sync_bn"] is True
    assert resolve_config_path(ctx.params["config"]).is_file()
