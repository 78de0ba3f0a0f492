"""Secrets never reach another process's command line or the user's screen.

``customer-value ui`` starts MLflow as a child process. Its command line is readable by every
local user (``ps``), so the store URI (which may carry a database password) must travel in the
child's environment. The child here is a stand-in ``mlflow`` package first on ``PYTHONPATH`` that
records what it was given and exits: deterministic, no server, no timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "Pa55-w0rd/x@y"
# {port}: a listening socket of the test, so the CLI's reachability check passes and the child starts.
URIS = [
    "http://alice:Pa55-w0rd%2Fx%40y@127.0.0.1:{port}",
    "http://alice:Pa55-w0rd@127.0.0.1:{port}/",
    "https://:Pa55-w0rd@127.0.0.1:{port}",
]

FAKE_MAIN = """
import json, os, sys
with open(os.environ["FAKE_MLFLOW_LOG"], "w") as f:
    json.dump({"argv": sys.argv, "store": os.environ.get("MLFLOW_BACKEND_STORE_URI")}, f)
"""


@pytest.fixture
def listener():
    """A TCP port that accepts connections (nothing answers beyond that)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("template", URIS)
def test_ui_passes_the_store_uri_through_the_environment(tmp_path: Path, template: str, listener):
    uri = template.format(port=listener)
    fake = tmp_path / "fake" / "mlflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAKE_MAIN)
    log = tmp_path / "child.json"
    (tmp_path / "c.yaml").write_text(
        f"data:\n  transactions: {{path: tx.csv}}\ntracking:\n  uri: '{uri}'\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")]),
        "FAKE_MLFLOW_LOG": str(log),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "customer_value.cli", "ui", "--config", "c.yaml", "--port", "5999"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    child = json.loads(log.read_text())
    assert child["store"] == uri  # the child still gets the real URI ...
    argv = " ".join(child["argv"])
    assert "Pa55" not in argv and "alice" not in argv  # ... but not on its command line
    assert "--backend-store-uri" not in child["argv"]
    assert "Pa55" not in proc.stdout + proc.stderr
    assert f"127.0.0.1:{listener}" in proc.stdout  # the user still sees which store


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://alice:" + SECRET + "@127.0.0.1:9/mlflow",  # no driver installed
        "http://alice:" + SECRET + "@127.0.0.1:9",  # "/" unencoded: the port reads as "Pa55-w0rd"
    ],
)
def test_ui_refuses_a_store_it_cannot_open_in_one_line(tmp_path: Path, uri: str):
    """A store the UI cannot open is said by the CLI (redacted), not by the MLflow server."""
    (tmp_path / "c.yaml").write_text(
        f"data:\n  transactions: {{path: tx.csv}}\ntracking:\n  uri: '{uri}'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "customer_value.cli", "ui", "--config", "c.yaml", "--port", "5999"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "Pa55" not in proc.stdout + proc.stderr
    assert "alice:***@" in proc.stderr
