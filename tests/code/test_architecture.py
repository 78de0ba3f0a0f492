"""Design rules that keep the code base honest (DESIGN.md §1): layers, no cycles, one seam each.

Every module of ``src/customer_value`` belongs to one layer; a module may import its own layer or
the layers below, never above, and the import graph (lazy imports inside functions included) has no
cycle. A module that no layer claims fails the test, so a new module cannot slip past the contract.
"""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "customer_value"

#: Lowest first. A module may import only its own layer and the ones before it.
LAYERS = (
    ("base", ("errors", "redaction", "expressions", "schema", "processes", "config")),
    ("domain", ("io", "validate", "synthetic", "explain", "plots", "report", "features", "modeling")),
    ("tasks", ("tasks", "chain")),
    ("edges", ("engines", "tracking")),
    ("pipelines", ("pipelines",)),
    ("front", ("cli",)),
)


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in SRC.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _resolve(name: str, known: set[str]) -> str | None:
    """The project module an import name refers to (its longest known prefix)."""
    parts = name.split(".")
    for i in range(len(parts), 1, -1):
        if ".".join(parts[:i]) in known:
            return ".".join(parts[:i])
    return None


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {}
    for mod, path in mods.items():
        targets = {_resolve(n, known) for n in _imports(path) if n.startswith("customer_value")}
        graph[mod] = {t for t in targets if t and t != mod and t != "customer_value"}
    return graph


def _layer(mod: str) -> int | None:
    top = mod.split(".")[1] if "." in mod else None
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a module to a module of a higher layer, and modules in no layer."""
    out = []
    for mod, targets in sorted(graph.items()):
        if mod == "customer_value":
            continue
        mine = _layer(mod)
        if mine is None:
            out.append(f"{mod} is in no layer")
            continue
        for t in sorted(targets):
            theirs = _layer(t)
            if theirs is not None and theirs > mine:
                out.append(f"{mod} ({LAYERS[mine][0]}) imports {t} ({LAYERS[theirs][0]})")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle (as a path that returns to its start), found by depth-first search."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package imports its own submodules lazily (a registry, an engine switch); the edge
            # submodule -> package __init__ is what would close a real cycle, and it is counted.
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_upward_import_and_every_module_in_a_layer():
    assert layer_violations(_graph()) == []


def test_no_import_cycle():
    assert cycles(_graph()) == []


def test_the_contract_catches_a_bad_import():
    """A deliberately added upward import and a cycle are both reported (the test can fail)."""
    graph = _graph()
    graph["customer_value.features.rfm"] = {*graph["customer_value.features.rfm"], "customer_value.cli"}
    assert any(
        "features.rfm" in v and "imports customer_value.cli" in v for v in layer_violations(graph)
    )
    graph["customer_value.chain"] = {*graph["customer_value.chain"], "customer_value.tasks.churn"}
    graph["customer_value.tasks.churn"] = {*graph["customer_value.tasks.churn"], "customer_value.chain"}
    assert any({"customer_value.chain", "customer_value.tasks.churn"} <= set(c) for c in cycles(graph))
    graph["customer_value.newthing"] = set()
    assert "customer_value.newthing is in no layer" in layer_violations(graph)


def test_mlflow_is_imported_in_tracking_only():
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "tracking.py" and any(n == "mlflow" or n.startswith("mlflow.") for n in _imports(p))
    ]
    assert offenders == []


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """String literals of a module, docstrings excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                docstrings.add(id(body[0].value))
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_no_task_name_is_hard_coded_outside_tasks():
    """Train, backtest, predict, the registry, the report and Spark loop over the registry."""
    from customer_value import tasks

    names = {t.name for t in tasks.registered()}
    offenders = [
        f"{p.relative_to(SRC)}:{line}: {value!r}"
        for p in sorted(SRC.rglob("*.py"))
        if "tasks" not in p.relative_to(SRC).parts
        for line, value in _string_constants(p)
        if value in names
    ]
    assert offenders == []


def test_pipeline_functions_are_short():
    """No function in pipelines/ over 120 lines (a reader holds it in their head)."""
    long = []
    for p in sorted((SRC / "pipelines").glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 120:
                    long.append(f"{p.name}:{node.name} ({n} lines)")
    assert long == []


def test_importing_the_package_has_no_side_effects(tmp_path):
    code = (
        "import os, customer_value, customer_value.config, customer_value.features.build, "
        "customer_value.pipelines.train, customer_value.pipelines.predict, customer_value.engines, "
        "customer_value.tasks; print(sorted(os.listdir('.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
