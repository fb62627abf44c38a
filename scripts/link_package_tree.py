"""Lay out the installed package tree (`prodseg/`, `prodseg/train/`, ...) as symlinks, for mypy.

The stage folders sit at the top of the repository (`train/` is `prodseg.train`, mapped by
`[tool.setuptools.package-dir]` in pyproject.toml). The editable install resolves that mapping with an
import hook, which type checkers cannot follow, so mypy would see `prodseg` without its stages. This
writes `<dest>/prodseg/...`: a link per module of `prodseg/` and a link per stage folder, exactly as
package-dir maps them; `[tool.mypy] mypy_path` points at `<dest>` (default `.venv/typecheck`).
New modules appear through the folder links without re-running it; a new stage needs a re-run.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path


def link_tree(repo: Path, dest: Path) -> list[Path]:
    """Create dest/<package path> links for every package-dir entry; return the links made."""
    mapping = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    if dest.exists():
        shutil.rmtree(dest)
    made = []
    for package, folder in sorted(mapping.items()):
        target = dest.joinpath(*package.split("."))
        source = (repo / folder).resolve()
        if "." not in package:  # the root package: link its files, its subfolders are other entries
            target.mkdir(parents=True)
            for item in source.iterdir():
                if item.suffix in (".py", ".pyi", ".typed") or item.name == "py.typed":
                    (target / item.name).symlink_to(item)
                    made.append(target / item.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source, target_is_directory=True)
            made.append(target)
    return made


if __name__ == "__main__":
    here = Path(__file__).resolve().parent.parent
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else here / ".venv" / "typecheck"
    links = link_tree(here, out.resolve())
    print(f"linked {len(links)} entries of the prodseg package into {out}")
