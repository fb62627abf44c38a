"""The README's and the docs' shell examples run as written, and name only options that exist.

Every fenced ```bash / ```sh / ```console block of README.md and docs/**/*.md is an example. Each page's
examples run in order, in one fresh temporary folder (later blocks use earlier outputs), and each must
exit 0. A comment on the line before a block changes that, visibly in the page:

    <!-- test: skip (why it cannot run here) -->   not run; the reason is required
    <!-- test: exit 2 -->                          must exit with this code (a documented failure)

```console blocks run their `$ ` lines only (the rest is output). ```text blocks are transcripts and
never run. Commands run with PRODSEG_OFFLINE=1 and OMP_NUM_THREADS=1, and the venv's bin/ first on PATH.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_LANGS = ("bash", "sh", "console")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*test:\s*(?P<body>.*?)\s*-->$")
SKIP = re.compile(r"^skip\s*\((?P<reason>.*\S.*)\)$")
EXIT = re.compile(r"^exit\s+(?P<code>\d+)$")
BLOCK_TIMEOUT_S = 600


@dataclass
class Block:
    """One fenced code block of a page, with the test marker written right before it (if any)."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        match = SKIP.match(self.marker or "")
        return match["reason"] if match else None

    @property
    def expected_exit(self) -> int:
        match = EXIT.match(self.marker or "")
        return int(match["code"]) if match else 0

    def script(self) -> str:
        """The commands to run: the whole block, or a console block's `$ ` lines with their continuations."""
        if self.lang != "console":
            return self.text
        commands, continued = [], False
        for line in self.text.splitlines():
            if continued or line.startswith("$ "):
                commands.append(line if continued else line[2:])
                continued = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of `page` in order; a marker is the last non-blank line before the fence."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i, last_text = 0, ""
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                last_text = lines[i].strip()
            i += 1
            continue
        fence, start = match[1], i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        marker = MARKER.match(last_text)
        text = "\n".join(body) + "\n"
        blocks.append(Block(page, start + 1, match[2], text, marker["body"] if marker else None))
        last_text = ""
        i += 1
    return blocks


def shell_blocks(page: Path) -> list[Block]:
    return [b for b in read_blocks(page) if b.lang in SHELL_LANGS]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


RUNNABLE = [p for p in PAGES if any(b.skip_reason is None for b in shell_blocks(p))]


def test_the_docs_have_examples() -> None:
    assert len(PAGES) > 10 and len(RUNNABLE) >= 8, [page_id(p) for p in RUNNABLE]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_markers_are_well_formed(page: Path) -> None:
    """Each marker is `skip (reason)` or `exit N`, and stands right before a shell block."""
    text = page.read_text(encoding="utf-8")
    markers = [m.strip() for m in re.findall(r"^<!--\s*test:.*?-->\s*$", text, flags=re.M)]
    attached = [b for b in read_blocks(page) if b.marker is not None]
    assert len(attached) == len(markers), f"{page_id(page)}: a test marker is not right before a block"
    for block in attached:
        assert block.lang in SHELL_LANGS, f"{block.where}: a test marker on a ```{block.lang} block"
        assert SKIP.match(block.marker) or EXIT.match(block.marker), (
            f"{block.where}: marker {block.marker!r}; use `skip (reason)` or `exit N`"
        )


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PRODSEG_OFFLINE="1",
        OMP_NUM_THREADS="1",
        MPLBACKEND="Agg",
        YOLO_OFFLINE="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    env.pop("MLFLOW_TRACKING_URI", None)  # the examples' runs stay in their temporary folder
    return env


@pytest.fixture(scope="session")
def first_blocks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders left by pages' first blocks, by script: pages that open with the same commands (a toy
    dataset and a one-epoch model) run them once, and the others start from a copy of what they left."""
    return {"": tmp_path_factory.mktemp("first-blocks")}


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=page_id)
def test_examples_run(page: Path, tmp_path: Path, first_blocks: dict[str, Path]) -> None:
    """The page's blocks, in order, in one temporary folder: each exits with its documented code."""
    first, *rest = [b for b in shell_blocks(page) if b.skip_reason is None]
    done = first_blocks.get(first.script())
    if done is not None:
        shutil.copytree(done, tmp_path, symlinks=True, dirs_exist_ok=True)
    else:
        run_block(first, tmp_path)
        keep = first_blocks[""] / str(len(first_blocks))
        first_blocks[first.script()] = Path(shutil.copytree(tmp_path, keep, symlinks=True))
    for block in rest:
        run_block(block, tmp_path)


def run_block(block: Block, cwd: Path) -> None:
    """Run one block in `cwd`: it exits with its documented code, and bad input ends with one error line."""
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.script()],
        cwd=cwd,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert proc.returncode == block.expected_exit, (
        f"{block.where}: exit {proc.returncode}, documented {block.expected_exit}\n"
        f"--- block\n{block.script()}--- stdout (end)\n{proc.stdout[-3000:]}\n"
        f"--- stderr (end)\n{proc.stderr[-3000:]}"
    )
    if block.expected_exit == 2:
        assert "Traceback" not in proc.stderr, f"{block.where}: a traceback for bad input"
        assert proc.stderr.strip().splitlines()[-1].startswith("error: "), (
            f"{block.where}: bad input did not end with a one-line error:\n{proc.stderr[-2000:]}"
        )


# --- every option the docs give a prodseg command exists in its click definition -----------------------


def _options(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts + param.secondary_opts)
    return names


def console_scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: name -> "module:attribute"."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.]+:\w+)"', section, re.M))


@cache
def cli_options() -> dict[str, set[str]]:
    """`prodseg-train` -> its options; a group's subcommands as `prodseg-data synth` (with the group's)."""
    found: dict[str, set[str]] = {}
    for name, target in console_scripts().items():
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        found[name] = _options(command)
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                found[f"{name} {sub_name}"] = found[name] | _options(sub)
    return found


# A prodseg command as the docs start it: the console script, `python -m prodseg.train` (torchrun too),
# or `$(which prodseg-train)`.
COMMAND = re.compile(r"(?:\$\(which\s+)?(?P<script>prodseg-[a-z]+)\)?|-m\s+prodseg\.train\b")
OPTION = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)")
SEPARATOR = re.compile(r"\s(?:#|&&|\|\||;)\s|;$|\s#\s?|\$\(|`")


def command_lines(page: Path) -> list[tuple[str, str]]:
    """(where, text) of every place a page shows a prodseg command line: code blocks (joined at `\\`
    continuations), indented synopses, `$ ` transcript lines and inline code spans."""
    text = page.read_text(encoding="utf-8")
    found = []
    for block in read_blocks(page):
        if block.lang in (*SHELL_LANGS, "text", ""):
            body = block.script() if block.lang in SHELL_LANGS else block.text
            for n, line in enumerate(body.replace("\\\n", " ").splitlines()):
                line = line[2:] if line.startswith("$ ") else line
                found.append((f"{block.where}+{n}", line))
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("    ") and line.strip().startswith("prodseg-"):
            found.append((f"{page_id(page)}:{n}", line))
    for n, span in enumerate(re.findall(r"`([^`\n]*prodseg[^`\n]*)`", text)):
        found.append((f"{page_id(page)} inline #{n}", span))
    return found


def named_options(line: str) -> list[tuple[str, str]]:
    """(command, --option) for each option written after a prodseg command on one line."""
    pairs = []
    starts = list(COMMAND.finditer(line))
    for i, start in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(line)
        rest = line[start.end() : end]
        cut = SEPARATOR.search(rest)
        rest = rest[: cut.start()] if cut else rest
        name = start["script"] or "prodseg-train"
        words = rest.split()
        if name in ("prodseg-data",) and words and not words[0].startswith("-"):
            name = f"{name} {words[0]}"
        pairs += [(name, option) for option in OPTION.findall(rest)]
    return pairs


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_documented_options_exist(page: Path) -> None:
    known = cli_options()
    wrong = []
    for where, line in command_lines(page):
        for command, option in named_options(line):
            if command not in known:
                wrong.append(f"{where}: unknown command {command!r}")
            elif option not in known[command]:
                wrong.append(f"{where}: {command} has no option {option}")
    assert not wrong, "\n".join(wrong)


# Options of other tools that the docs name on their own, in prose (`--benchmark-compare-fail=...`).
FOREIGN_OPTIONS = {
    "--benchmark-json",
    "--benchmark-save",
    "--benchmark-compare",
    "--benchmark-compare-fail",
    "--nproc_per_node",
    "--nnodes",
    "--node_rank",
    "--master_addr",
    "--master_port",
    "--backend-store-uri",
    "--logdir",
    "--tolerance",
    "--rounds",
    "--seconds",
    "--video",
    "--file",
    "--set",
    "--query",
}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_options_in_prose_exist(page: Path) -> None:
    """An inline `--option` on its own belongs to a prodseg command the page shows (or a named other tool)."""
    text = page.read_text(encoding="utf-8")
    known = cli_options()
    shown = {name for _, line in command_lines(page) for name, _ in named_options(line)}
    shown |= {m["script"] or "prodseg-train" for m in COMMAND.finditer(text)}
    allowed = set(FOREIGN_OPTIONS).union(*(known.get(name, set()) for name in shown))
    spans = [s for s in re.findall(r"`([^`\n]+)`", text) if s.startswith("-") and "prodseg" not in s]
    wrong = sorted({o for s in spans for o in OPTION.findall(s)} - allowed)
    assert not wrong, f"{page_id(page)}: no command shown on this page has {', '.join(wrong)}"


def test_the_option_check_can_fail() -> None:
    assert named_options("prodseg-bench v.mp4 --model m.onnx --min-fps 5 # --not-this") == [
        ("prodseg-bench", "--model"),
        ("prodseg-bench", "--min-fps"),
    ]
    assert named_options("torchrun --nproc_per_node 2 -m prodseg.train --sync-bn") == [
        ("prodseg-train", "--sync-bn")
    ]
    assert named_options("prodseg-data synth s --images 8; prodseg-eval --data s") == [
        ("prodseg-data synth", "--images"),
        ("prodseg-eval", "--data"),
    ]
    assert "--no-such-flag" not in cli_options()["prodseg-export"]
