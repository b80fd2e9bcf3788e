"""Imports flow one way: ``edgeshrink.study`` reads prune/quant/train/targets, never the reverse.

The graph is built from the source text (every ``import`` statement, including the ones
inside functions that a plain ``import`` of the package would never run), so a cycle hidden
behind a function-level import fails here. Run as a script to print the offending edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgeshrink

SRC = Path(edgeshrink.__file__).parent
LOWER = ("prune", "quant", "train", "targets")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere in its body (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "edgeshrink" or m.startswith("edgeshrink.")}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(SRC.rglob("*.py"))}


def upward_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module under prune/quant/train/targets, the edgeshrink.study module it imports)."""
    lower = tuple(f"edgeshrink.{p}" for p in LOWER)
    return sorted(
        (mod, dep) for mod, deps in graph.items()
        if mod.startswith(lower) and (mod in lower or mod.startswith(tuple(f"{x}." for x in lower)))
        for dep in deps if dep == "edgeshrink.study" or dep.startswith("edgeshrink.study.")
    )


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # study.plan imports the plan modules only inside functions: the walk must see them
    assert "edgeshrink.study.plans.pretrained" in graph["edgeshrink.study.plan"]
    # and the study plans reach down into prune and quant
    assert "edgeshrink.prune.structured" in graph["edgeshrink.study.plans.structured"]
    assert "edgeshrink.quant.ort" in graph["edgeshrink.study.plans.quantization"]
    assert len(graph) > 100


def test_the_check_catches_an_upward_import():
    fake = {"edgeshrink.quant.x": {"edgeshrink.study.plan"}, "edgeshrink.train": {"edgeshrink.study"},
            "edgeshrink.trainer_tools": {"edgeshrink.study"}, "edgeshrink.study.y": {"edgeshrink.quant"}}
    assert upward_edges(fake) == [("edgeshrink.quant.x", "edgeshrink.study.plan"),
                                  ("edgeshrink.train", "edgeshrink.study")]


def test_prune_quant_train_targets_never_import_study():
    assert upward_edges(import_graph()) == []


if __name__ == "__main__":
    for mod, dep in upward_edges(import_graph()):
        print(f"{mod} -> {dep}")
