"""Make tensorrt-stubs usable by mypy: copy them to a stub folder and repair what does not parse.

The tensorrt-stubs wheel installs `tensorrt/__init__.pyi` without `py.typed` (so mypy ignores it) and
its generated `tensorrt_bindings/tensorrt.pyi` has signatures Python cannot parse (parameters named
`in`, required parameters after defaulted ones). This writes a repaired copy to the folder given
(default `.venv/stubs`), which `[tool.mypy] mypy_path` points at.
"""

from __future__ import annotations

import keyword
import re
import shutil
import sys
from pathlib import Path

DEF = re.compile(r"^(\s*def \w+\()(.*)(\)\s*(->.*)?:\s*)$")


def split_params(params: str) -> list[str]:
    """Split a parameter list on top-level commas (type hints such as dict[str, int] hold commas)."""
    out, depth, cur = [], 0, ""
    for ch in params:
        depth += ch in "[(" and 1 or (-1 if ch in "])" else 0)
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def fix_param(param: str, after_default: bool) -> tuple[str, bool]:
    name, sep, rest = param.partition(":")
    stripped = name.strip()
    if keyword.iskeyword(stripped):
        param = name.replace(stripped, stripped + "_") + sep + rest
    star = stripped.startswith("*")
    has_default = "=" in param
    if after_default and not has_default and not star and stripped not in ("self", "/"):
        param += " = ..."
    return param, (after_default or has_default) and not star


def fix_line(line: str) -> str:
    m = DEF.match(line)
    if not m:
        return line
    params, after_default = [], False
    for p in split_params(m.group(2)):
        p, after_default = fix_param(p, after_default)
        params.append(p)
    return m.group(1) + ",".join(params) + m.group(3)


def main(dest: str = ".venv/stubs") -> None:
    import tensorrt_bindings  # the stubs' own package; importable as a namespace of .pyi files

    site = Path(next(iter(tensorrt_bindings.__path__))).parent
    out = Path(dest)
    shutil.rmtree(out, ignore_errors=True)
    for pkg in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / pkg, out / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for pyi in (out / "tensorrt_bindings").glob("*.pyi"):
        pyi.write_text("\n".join(fix_line(line) for line in pyi.read_text().splitlines()) + "\n")
    print(f"repaired tensorrt stubs in {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
