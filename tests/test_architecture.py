"""The package's shape, checked from its own imports (docs/architecture.md).

Data flows one way, files -> dataset -> model -> scores -> metrics -> run -> report, with the
commands on top: every module imports only from its own layer or a lower one (imports inside
functions count too: a lazy import is still a dependency), and no modules import each other in a
circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nlpkit"

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS = [
    ["nlpkit", "nlpkit.errors", "nlpkit.seeds", "nlpkit._io", "nlpkit.state_file", "nlpkit.text"],
    ["nlpkit.data", "nlpkit.metrics"],
    ["nlpkit.split", "nlpkit.runs", "nlpkit.training", "nlpkit.hf"],
    ["nlpkit.models"],
    ["nlpkit.experiment"],
    ["nlpkit.baseline", "nlpkit.finetune", "nlpkit.curve", "nlpkit.pretrain", "nlpkit.report"],
    ["nlpkit.cli", "nlpkit.__main__"],
]
LAYER_OF = {prefix: level for level, prefixes in enumerate(LAYERS) for prefix in prefixes}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The nlpkit modules ``name`` imports (anywhere in the file)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # "from nlpkit.models import base" imports the module nlpkit.models.base
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t == "nlpkit" or t.startswith("nlpkit."))
    found.discard(name)
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYER_OF:
            return LAYER_OF[prefix]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_layer():
    for name in _modules():
        _layer(name)


def test_imports_only_point_down():
    upward = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
              for m, targets in sorted(_graph().items()) for t in sorted(targets)
              if t != "nlpkit" and _layer(t) > _layer(m)]
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = _graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
            # a package's __init__ re-exporting its own modules is not a circle of dependencies
            if len(component) > 1 and not all(c.startswith(min(component, key=len) + ".") or c == min(component, key=len)
                                               for c in component):
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"modules that import each other in a circle: {circles}"


@pytest.mark.parametrize("limit", [6])
def test_no_function_takes_many_positional_parameters(limit):
    """Many positional parameters are named after a moment; a small dataclass names the concept."""
    crowded = []
    for name, path in sorted(_modules().items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                positional = [a for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
                if len(positional) > limit:
                    crowded.append(f"{name}.{node.name}: {len(positional)}")
    assert not crowded, "functions with more than %d positional parameters:\n%s" % (limit, "\n".join(crowded))


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The layer check can fail: a dataset module importing a model is caught."""
    fake = tmp_path / "nlpkit"
    (fake / "data").mkdir(parents=True)
    (fake / "models").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("from nlpkit.models.base import Classifier\n")
    (fake / "models" / "__init__.py").write_text("")
    (fake / "models" / "base.py").write_text("from nlpkit.data import x\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    with pytest.raises(AssertionError, match="nlpkit.data \\(layer 1\\) imports nlpkit.models.base \\(layer 3\\)"):
        test_imports_only_point_down()
    with pytest.raises(AssertionError, match="in a circle"):
        test_no_import_circle()
