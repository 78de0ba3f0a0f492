"""Design rules that keep the code base honest (DESIGN.md §1)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "customer_value"


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


def test_mlflow_is_imported_in_tracking_only():
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "tracking.py" and any(n == "mlflow" or n.startswith("mlflow.") for n in _imports(p))
    ]
    assert offenders == []


def test_domain_modules_never_import_upward():
    domain = [
        *SRC.glob("features/*.py"),
        *SRC.glob("modeling/*.py"),
        *(
            SRC / n
            for n in (
                "io.py",
                "validate.py",
                "synthetic.py",
                "schema.py",
                "config.py",
                "explain.py",
                "plots.py",
                "processes.py",
            )
        ),
    ]
    upward = ("customer_value.pipelines", "customer_value.cli", "customer_value.tracking")
    offenders = {
        str(p.relative_to(SRC)): sorted(n for n in _imports(p) if n.startswith(upward)) for p in domain
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_package_has_no_side_effects(tmp_path):
    import subprocess
    import sys

    code = (
        "import os, customer_value, customer_value.config, customer_value.features.build, "
        "customer_value.pipelines.train; print(sorted(os.listdir('.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
