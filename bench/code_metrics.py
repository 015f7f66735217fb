"""Code metrics: avat3r's import graph (cycles, upward imports across pipeline stages) and its largest functions.

    python bench/code_metrics.py [ROOT]        # ROOT: a checkout (default: this one); reads ROOT/avat3r and ROOT/app.py

Static (ast) reading, nothing is imported. Every import statement counts, also those inside functions ("lazy"
imports, which hide a dependency from import time but not from the design); they are marked as such.

Stage order (low to high); a module may import its own stage or lower ones, an import of a higher stage is "upward":

    0 core       avat3r/{errors, limits, cameras, capture, gaussians, head_template, ...}.py (top-level modules)
    1 io         avat3r/io/
    2 render     avat3r/render/, avat3r/model/
    3 priors     avat3r/priors/
    4 data       avat3r/data/, avat3r/generate/
    5 sources    avat3r/frontend/, avat3r/sources/
    6 train      avat3r/train/, avat3r/eval/ (eval importing train counts as "sideways": same stage, other package)
    7 pipeline   avat3r/pipeline.py, avat3r/drive/, avat3r/export/
    8 cli        avat3r/cli.py, app.py, avat3r/__init__.py (the public facade), every ``__main__.py`` (entry points)

A package not listed gets the stage "?" and is reported. Cycles: strongly connected components of the graph of
packages (the units above) and of modules (all imports, and top-level imports only: those fail at import time).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

STAGES = ["core", "io", "render", "priors", "data", "sources", "train", "pipeline", "cli"]
PACKAGE_STAGE = {
    "io": "io", "render": "render", "model": "render", "priors": "priors", "data": "data", "generate": "data",
    "frontend": "sources", "sources": "sources", "train": "train", "eval": "train",
    "pipeline": "pipeline", "drive": "pipeline", "export": "pipeline", "cli": "cli", "__main__": "cli", "app": "cli",
    "avat3r": "cli",  # the package root: the public facade (``avat3r.load_pipeline``)
}


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for avat3r/**.py and app.py."""
    out = {}
    for p in sorted((root / "avat3r").rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    if (root / "app.py").exists():
        out["app"] = root / "app.py"
    return out


def package_of(mod: str) -> str:
    """The unit a module belongs to: its sub-package or top-level module under avat3r ("core" for the core
    modules), "avat3r" for the package root, "app" for app.py."""
    if mod in ("app", "avat3r"):
        return mod
    pkg = mod.split(".")[1]
    if pkg in PACKAGE_STAGE or not _is_module(f"avat3r.{pkg}"):
        return pkg
    return "core"


def stage_of(mod: str) -> str:
    if mod.endswith(".__main__"):
        return "cli"  # an entry point (``python -m avat3r.x``) is a command line, whatever package holds it
    pkg = package_of(mod)
    return "core" if pkg == "core" else PACKAGE_STAGE.get(pkg, "?")


_FILES: dict[str, Path] = {}


def _is_module(mod: str) -> bool:
    """A module file (avat3r/x.py) rather than a package (avat3r/x/)."""
    p = _FILES.get(mod)
    return p is not None and p.name != "__init__.py"


def imports_of(mod: str, path: Path, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported avat3r module, lazy?, line) for every import in the file; targets resolve to the longest known
    module prefix ("from .x import y" -> avat3r.pkg.x.y if that is a module, else avat3r.pkg.x)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    out = []

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            cand = ".".join(parts[:k])
            if cand in known:
                return cand
        return None

    def visit(node, lazy: bool):
        for child in ast.iter_child_nodes(node):
            child_lazy = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for a in child.names:
                    t = resolve(a.name)
                    if t:
                        out.append((t, lazy, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    anchor = base[: len(base) - (child.level - 1)] if child.level > 1 else base
                    prefix = ".".join(anchor + ([child.module] if child.module else []))
                else:
                    prefix = child.module or ""
                for a in child.names:
                    t = resolve(f"{prefix}.{a.name}") or resolve(prefix)
                    if t:
                        out.append((t, lazy, child.lineno))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # typing-only imports are not dependencies at run time
            visit(child, child_lazy)

    visit(tree, False)
    return sorted({(t, lz, ln) for t, lz, ln in out if t != mod}, key=lambda e: (e[2], e[0]))


def _is_type_checking(test) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    nodes = set(graph) | {w for vs in graph.values() for w in vs}
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def largest_functions(files: dict[str, Path], n: int = 10) -> list[tuple[int, str]]:
    """(lines, module:qualified name) of the n longest functions/methods (def line to last line)."""
    found = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))

        def walk(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    q = f"{prefix}{child.name}"
                    found.append((child.end_lineno - child.lineno + 1, f"{mod}:{q}"))
                    walk(child, q + ".")
                elif isinstance(child, ast.ClassDef):
                    walk(child, f"{prefix}{child.name}.")
                else:
                    walk(child, prefix)

        walk(tree, "")
    return sorted(found, key=lambda x: (-x[0], x[1]))[:n]


def measure(root: Path) -> dict:
    files = module_files(root)
    _FILES.clear()
    _FILES.update(files)
    known = set(files)
    edges = []  # (src, dst, lazy, line)
    for mod, path in files.items():
        for t, lazy, line in imports_of(mod, path, known):
            edges.append((mod, t, lazy, line))
    rank = {s: i for i, s in enumerate(STAGES)}
    upward, sideways, unknown = [], [], set()
    for src, dst, lazy, line in edges:
        s, d = stage_of(src), stage_of(dst)
        for m, st in ((src, s), (dst, d)):
            if st == "?":
                unknown.add(package_of(m))
        if s == "?" or d == "?":
            continue
        if rank[d] > rank[s]:
            upward.append((src, dst, lazy, line))
        elif rank[d] == rank[s] and package_of(src) != package_of(dst) and s not in ("core", "cli"):
            sideways.append((src, dst, lazy, line))
    pkg_graph, mod_all, mod_top = defaultdict(set), defaultdict(set), defaultdict(set)
    for src, dst, lazy, _ in edges:
        if package_of(src) != package_of(dst):
            pkg_graph[package_of(src)].add(package_of(dst))
        mod_all[src].add(dst)
        if not lazy:
            mod_top[src].add(dst)
    return {"modules": len(files), "imports": len(edges), "upward": upward, "sideways": sideways,
            "unknown_packages": sorted(unknown), "package_cycles": sccs(pkg_graph),
            "module_cycles": sccs(mod_all), "module_cycles_top_level": sccs(mod_top),
            "largest": largest_functions(files)}


def report(r: dict) -> str:
    lines = [f"modules {r['modules']}, internal import statements {r['imports']}"]
    lines.append(f"package cycles: {len(r['package_cycles'])}")
    lines += [f"  {' <-> '.join(c)}" for c in r["package_cycles"]]
    lines.append(f"module cycles (all imports): {len(r['module_cycles'])}")
    lines += [f"  {' <-> '.join(c)}" for c in r["module_cycles"]]
    lines.append(f"module cycles (top-level imports only): {len(r['module_cycles_top_level'])}")
    lines += [f"  {' <-> '.join(c)}" for c in r["module_cycles_top_level"]]
    lazy_up = sum(1 for e in r["upward"] if e[2])
    lines.append(f"upward imports: {len(r['upward'])} ({lazy_up} of them inside functions)")
    for src, dst, lazy, line in r["upward"]:
        lines.append(f"  {src}:{line} [{stage_of(src)}] -> {dst} [{stage_of(dst)}]{' (lazy)' if lazy else ''}")
    lines.append(f"sideways imports (same stage, other package): {len(r['sideways'])}")
    by_pair = defaultdict(list)
    for src, dst, lazy, line in r["sideways"]:
        by_pair[(package_of(src), package_of(dst))].append(dst)
    for (a, b), dsts in sorted(by_pair.items()):
        lines.append(f"  {a} -> {b}: {len(dsts)} ({', '.join(sorted(set(dsts)))})")
    if r["unknown_packages"]:
        lines.append(f"packages without a stage: {', '.join(r['unknown_packages'])}")
    lines.append("largest functions (lines):")
    lines += [f"  {n:4d}  {name}" for n, name in r["largest"]]
    return "\n".join(lines)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    print(report(measure(root)))
