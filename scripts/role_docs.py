#!/usr/bin/env python3
"""Keep each role README's variable table in step with its meta/argument_specs.yml.

    python scripts/role_docs.py           # rewrite the tables
    python scripts/role_docs.py --check   # exit 1 and name the READMEs that are out of date
    python scripts/role_docs.py --add     # also give a table to READMEs that have none yet

The table sits between the markers ``<!-- BEGIN VARIABLES -->`` and ``<!-- END VARIABLES -->``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN VARIABLES -->", "<!-- END VARIABLES -->"


def table(role: Path) -> str:
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]
    options = spec.get("options") or {}
    if not options:
        return "This role has no variables of its own.\n"
    rows = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
    for name, opt in options.items():
        default = "(required)" if opt.get("required") else (
            f"`{yaml.safe_dump(opt['default'], default_flow_style=True).strip().removesuffix('...').strip()}`"
            if "default" in opt else "(computed)")
        desc = opt.get("description", "")
        desc = " ".join(desc) if isinstance(desc, list) else desc
        if opt.get("choices"):
            desc += " Choices: " + ", ".join(f"`{c}`" for c in opt["choices"]) + "."
        rows.append(f"| `{name}` | {opt.get('type', 'str')} | {default} | {desc.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def render(readme: str, tbl: str) -> str:
    if BEGIN not in readme:
        return readme.rstrip() + f"\n\n## Variables\n\n{BEGIN}\n{tbl}{END}\n"
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{tbl}{END}{tail}"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for role in sorted((ROOT / "roles").iterdir()):
        readme = role / "README.md"
        if not (role / "meta" / "argument_specs.yml").exists() or not readme.exists():
            continue
        if BEGIN not in readme.read_text() and "--add" not in argv:
            continue
        new = render(readme.read_text(), table(role))
        if new != readme.read_text():
            stale.append(str(readme.relative_to(ROOT)))
            if not check:
                readme.write_text(new)
    if check and stale:
        print("out of date (run: python scripts/role_docs.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
