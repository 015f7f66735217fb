"""Build the notebooks (``notebooks/NN_name.ipynb``) from their reviewable sources ``notebooks/src/NN_name.py``.

A source is a plain Python file in the "percent" cell format: ``# %%`` starts a code cell and
``# %% [markdown]`` a markdown cell whose lines are comments (``# text``). The built notebooks carry no
outputs (CI executes them; see tests/test_notebooks.py), so diffs stay small and reviewable.

    python notebooks/_build.py            # rebuild every notebook
    python notebooks/_build.py --check    # exit 1 when a committed .ipynb differs from its source
    python notebooks/_build.py --execute  # also run each one in place (outputs kept; do not commit those)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def parse_cells(text: str) -> list[tuple[str, str]]:
    """Percent-format source -> [(kind, source)] with kind "code" or "markdown"."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
            continue
        if not cells:  # a file header before the first cell marker is not part of the notebook
            continue
        kind, body = cells[-1]
        if kind == "markdown":
            body.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        else:
            body.append(line)
    return [(k, "\n".join(b).strip("\n")) for k, b in cells if "\n".join(b).strip()]


def build_notebook(src: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    for i, (kind, body) in enumerate(parse_cells(src.read_text())):
        cell = nbformat.v4.new_markdown_cell(body) if kind == "markdown" else nbformat.v4.new_code_cell(body)
        cell.id = f"{src.stem[:2]}-{i:03d}"  # stable ids: rebuilding an unchanged source gives identical files
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def sources() -> list[Path]:
    return sorted(SRC.glob("[0-9][0-9]_*.py"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail when a notebook is out of date with its source")
    ap.add_argument("--execute", action="store_true", help="execute each built notebook in place (keeps outputs)")
    ap.add_argument("only", nargs="*", help="notebook name prefixes to build (default: all), e.g. 01 04")
    args = ap.parse_args(argv)
    stale = []
    for src in sources():
        if args.only and not any(src.stem.startswith(p) for p in args.only):
            continue
        out = HERE / f"{src.stem}.ipynb"
        text = dumps(build_notebook(src))
        if args.check:
            if not out.exists() or out.read_text() != text:
                stale.append(out.name)
            continue
        write_atomic(out, text)
        if args.execute:
            from nbclient import NotebookClient

            nb = nbformat.reads(text, as_version=4)
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
            write_atomic(out, nbformat.writes(nb))
            print(f"{out.name}: executed in {time.perf_counter() - t0:.1f} s")
        else:
            print(f"{out.name}: built")
    if stale:
        print("out of date (run `python notebooks/_build.py`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
