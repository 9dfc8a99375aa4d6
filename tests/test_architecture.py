"""The layout holds: no import cycles between nfgan modules (also imports inside functions), inference never
reaches training or evaluation code, and the public API loads only what it needs."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def import_graph() -> dict[str, set[str]]:
    """module -> the nfgan modules it imports anywhere in its file."""
    mods: dict[str, set[str]] = {}
    for p in (SRC / "nfgan").rglob("*.py"):
        name = ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nfgan"):
                deps |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("nfgan")}
        mods[name] = deps
    return {m: {d for d in ds if d in mods and d != m} for m, ds in mods.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for d in graph[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40
    cycles = sorted(m for m in graph if m in reachable(graph, m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_inference_imports_no_training_or_evaluation_code():
    graph = import_graph()
    for m in (m for m in graph if m.startswith("nfgan.inference")):
        bad = sorted(d for d in reachable(graph, m) if d.startswith(("nfgan.training", "nfgan.evaluation")))
        assert not bad, (m, bad)


def test_public_api_loads_only_inference_modules():
    code = ("import nfgan, sys; nfgan.Normalizer; nfgan.load_model; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('nfgan'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "nfgan.inference.normalizer" in loaded and "nfgan.inference.generator" in loaded
    assert not [m for m in loaded if m.startswith(("nfgan.training", "nfgan.evaluation", "nfgan.fer"))], loaded
    assert "nfgan.models.losses" not in loaded and "nfgan.models.feature_losses" not in loaded
