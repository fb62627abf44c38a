"""The reference pages list every config key and metadata field with its real default; the README's links
into docs/ resolve (MkDocs checks the links between docs pages, but it does not read the README)."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown.extensions.toc import slugify

from prodseg.config import Config
from prodseg.metadata import ArtifactMetadata

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# A table row whose first cell is a code span: | `key` | type | `default` or text | ...
ROW = re.compile(r"^\|\s*`(?P<key>[^`]+)`\s*\|(?P<type>[^|]*)\|\s*(?P<default>[^|]*?)\s*\|", re.M)


def documented(page: Path) -> dict[str, str]:
    """First-column key -> the default cell, for every table row of `page` that starts with a code span."""
    return {m["key"]: m["default"] for m in ROW.finditer(page.read_text(encoding="utf-8"))}


def config_defaults(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> default for every leaf of the training config."""
    hints = typing.get_type_hints(cls)
    leaves: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            leaves |= config_defaults(hints[f.name], f"{prefix}{f.name}.")
        else:
            has_default = f.default is not dataclasses.MISSING
            leaves[prefix + f.name] = f.default if has_default else f.default_factory()  # type: ignore[misc]
    return leaves


def cell_value(cell: str) -> Any:
    """A default cell written as one YAML code span, e.g. `[0.75, 1.25]`, `null`, `{ce: 1.0}`."""
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"default {cell!r} is not one code span"
    return yaml.safe_load(match[1]) if match[1] != "" else ""


def test_config_page_lists_every_key_with_its_default() -> None:
    rows = documented(DOCS / "reference" / "config.md")
    defaults = config_defaults()
    missing = sorted(set(defaults) - set(rows))
    assert not missing, f"reference/config.md lacks {missing}"
    wrong = {k: (rows[k], v) for k, v in defaults.items() if cell_value(rows[k]) != v}
    assert not wrong, f"reference/config.md defaults differ from prodseg/config.py: {wrong}"
    sections = {"model", "training", "data", "logging"}
    unknown = sorted(k for k in rows if k.split(".")[0] in sections and k not in defaults)
    assert not unknown, f"reference/config.md documents keys the config does not have: {unknown}"


def test_artifact_page_lists_every_metadata_field() -> None:
    rows = documented(DOCS / "reference" / "artifacts.md")
    fields = {f.name: f for f in dataclasses.fields(ArtifactMetadata)}
    missing = sorted(set(fields) - set(rows))
    assert not missing, f"reference/artifacts.md lacks metadata fields {missing}"
    for name, f in fields.items():
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            assert rows[name] == "required", f"{name} is required, the page says {rows[name]!r}"
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            assert cell_value(rows[name]) == default, f"{name}: page {rows[name]!r}, code {default!r}"


def headings(page: Path) -> set[str]:
    """The anchors MkDocs gives a page's headings (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


README_LINKS = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", (ROOT / "README.md").read_text("utf-8"))


@pytest.mark.parametrize("target,anchor", sorted(set(README_LINKS)), ids=lambda v: v or "-")
def test_readme_links_into_docs_resolve(target: str, anchor: str) -> None:
    page = ROOT / target
    assert page.is_file(), f"README links to {target}, which does not exist"
    if anchor:
        found = headings(page)
        assert anchor in found, f"README links to {target}#{anchor}; its headings: {sorted(found)}"


def test_readme_is_a_short_front_page() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    first_screen = "\n".join(text.splitlines()[:25])
    assert len(text.splitlines()) <= 250
    assert "(docs/guides/your-data.md)" in first_screen
    assert len(README_LINKS) >= 10
