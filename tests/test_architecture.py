"""The shape of the code: no import cycles in src/tunelm, and no strategy named by string
comparison outside the registry.

The import graph is read from the source (AST), not by importing: an edge A -> B for every
module-level import in A of a tunelm module B (imports under `if TYPE_CHECKING:` are for type
checkers and are left out; imports inside functions run late and are listed apart). Importing
`a.b.c` runs `a/__init__` and `a/b/__init__` first, so those are edges too, except for the
packages the importing module is itself in (they are being imported already); a module that
reads a name from its own package (`from . import NAME`) does depend on the package's
`__init__`, and that is an edge.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "tunelm"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = SRC) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported (not in functions or classes'
    methods, not under `if TYPE_CHECKING:`)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                todo[:0] = node.body + node.orelse
        elif isinstance(node, (ast.Try,)):
            todo[:0] = node.body + node.orelse + node.finalbody + [
                n for h in node.handlers for n in h.body]
        elif isinstance(node, ast.With):
            todo[:0] = node.body


def imports_of(name: str, path: Path, known: set[str], top_level: bool = True) -> set[str]:
    """The tunelm modules `name` imports (with the packages each import runs on the way)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _top_level_imports(tree) if top_level else (
        n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
    is_package = path.name == "__init__.py"
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            explicit = [a.name for a in node.names]
        else:
            base = _resolve(name, is_package, node.level, node.module)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            # `from pkg import mod` imports the module; `from pkg import name` reads pkg itself
            explicit = subs + ([base] if len(subs) < len(node.names) else [])
        for t in explicit:
            if t in known and t != name:
                found.add(t)
            parts = t.split(".")
            for i in range(1, len(parts)):  # a.b.c runs a and a.b first ...
                prefix = ".".join(parts[:i])
                # ... except the packages this module is in: they are importing it already
                if prefix in known and prefix not in ancestors and prefix != name:
                    found.add(prefix)
    return found


def graph(top_level: bool = True, root: Path = SRC) -> dict[str, set[str]]:
    mods = modules(root)
    known = set(mods)
    return {m: imports_of(m, p, known, top_level) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_a_cycle(tmp_path):
    """The check can fail: two modules that import each other are reported."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from .a import y\n\ndef f():\n    from . import a\n")
    g = graph(root=tmp_path)
    assert cycles(g) == [["tunelm.a", "tunelm.b"]]
    assert "tunelm.a" not in g["tunelm.c"]  # type-checking and function-level imports left out


def test_no_import_cycles_in_src():
    found = cycles(graph())
    assert not found, "import cycles (module-level imports):\n" + "\n".join(
        " <-> ".join(c) for c in found)


# modules outside the search core's owner, to move onto the registry when they are next edited
NOT_YET_MOVED: set[str] = set()


def test_no_strategy_named_by_comparison_outside_the_registry():
    """A strategy's behaviour lives in its module under search/strategies/; comparing its name
    elsewhere is a registry bypassed."""
    pattern = re.compile(r"strategy[\"']?\]?\s*(==|!=|\bin\b|\bnot in\b)\s*[\"'(\[]")
    offenders = []
    for name, path in modules().items():
        if name.startswith(f"{PACKAGE}.search.strategies") or name in NOT_YET_MOVED:
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_one_parser_for_a_study_directory_or_a_storage_url():
    """`"://" in` appears once: in search/location.py's `is_storage_url`."""
    offenders = [f"{p.relative_to(SRC)}:{i}" for name, p in modules().items()
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if '"://" in' in line and name != f"{PACKAGE}.search.location"]
    assert not offenders, "parse with tunelm.search.location.locate / is_storage_url: " + \
        ", ".join(offenders)


def test_storage_imports_nothing_else_of_tunelm():
    """The study's storage (and where it lives) stand alone: no config, no trial machinery."""
    g = graph()
    location, storage = f"{PACKAGE}.search.location", f"{PACKAGE}.search.storage"
    drivers = f"{PACKAGE}.search.drivers"  # the URL's driver checked: StorageError only
    assert g[location] == set()
    assert g[storage] == {location, drivers}
    assert g[drivers] == {f"{PACKAGE}.errors"}
