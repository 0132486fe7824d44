"""The package's layout is the pipeline: every import, at module level or inside a function, goes to the same layer
or one below it, and no modules import each other in a circle.

Layers, from the bottom: the shared kernel (the top-level modules of ``eliquare``: errors, config, atomic files,
fingerprints, models and the architecture registry, sentence embeddings, model directories and the hub; the
teachers; the labelled task data), then the stages in the paper's order (corpus, vocab, distill, evaluate, export),
the experiment that runs them, and the command line on top."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
STAGES = ["corpus", "vocab", "distill", "evaluate", "export", "experiment", "cli", "__main__"]
KERNEL_PACKAGES = {"architectures", "config", "models", "teachers", "tasks"}


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "eliquare").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict) -> set[str]:
    """The eliquare modules ``path`` imports (``from eliquare.x import y`` counts as eliquare.x.y where that is a
    module, else as eliquare.x)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("eliquare"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                out.add(name if name in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("eliquare"))
    return {m for m in out if m in known}


def layer(module: str) -> int:
    """0 for the kernel, then 1, 2, ... for each stage in ``STAGES``."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    top = parts[1]
    if top in STAGES:
        return 1 + STAGES.index(top)
    if top in KERNEL_PACKAGES or len(parts) == 2:
        return 0
    raise AssertionError(f"{module}: place its package in STAGES or KERNEL_PACKAGES")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(p, known) - {m} for m, p in known.items()}


def test_no_module_imports_a_stage_above_it():
    upward = [
        f"{m} ({STAGES[layer(m) - 1] if layer(m) else 'kernel'}) imports {t} ({STAGES[layer(t) - 1]})"
        for m, targets in graph().items()
        for t in sorted(targets)
        if layer(t) > layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    edges = graph()
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package and the modules it re-exports are one thing to Python's import; a circle is between peers
            if len(component) > 1 and not all(
                c.startswith(min(component, key=len) + ".") or c == min(component, key=len) for c in component
            ):
                circles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule can fail: a kernel module that imports a stage is caught."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from eliquare.distill.run import distill\n")
    targets = imports(path, modules())
    assert targets == {"eliquare.distill.run"}
    assert layer("eliquare.models") < layer(next(iter(targets)))
