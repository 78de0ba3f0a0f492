"""The bad-input corpus: every case in ``tests/reliability/bad_inputs/`` run through the real CLI.

Each case folder holds small input files, a ``config.yaml`` and a ``case.yaml`` (see
``tests/reliability/bad_inputs/README.md``). A case is copied into its own temporary folder and run as a user
would run it: a subprocess, in that folder. An error case must exit with code 2, print no
traceback, say in stderr which file, column or key is wrong and what to do, and write nothing at
all: the folder (and its parent, where the default store and data paths point) is byte-for-byte
unchanged, down to modification times, so no store, output, report or temporary file appears.

The CLI starts take a few seconds each, so the selected cases run concurrently once per module
and each case's assertions are its own test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.yaml").is_file())
MIN_ERROR_CASES = 30
TIMEOUT_S = 120


@dataclass
class Outcome:
    """What one CLI run did: exit code, output, and the file tree before and after."""

    spec: dict
    returncode: int | None
    stdout: str
    stderr: str
    before: dict[str, tuple]
    after: dict[str, tuple]


def _spec(name: str) -> dict:
    return yaml.safe_load((CORPUS / name / "case.yaml").read_text(encoding="utf-8"))


def _tree(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root`` with its size and modification time.

    Folders are included: a temporary file that was created and removed again still changes its
    folder's mtime.
    """
    out = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        out[str(path.relative_to(root))] = (path.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def _run(name: str, base: Path) -> Outcome:
    spec = _spec(name)
    # <base>/<case>: the defaults that point one level up (../mlflow.db, ../data/raw) stay in <base>.
    work = base / name
    shutil.copytree(CORPUS / name, work)
    before = _tree(base)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "customer_value.cli", *map(str, spec["command"])],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
        )
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = None, str(exc.stdout or ""), f"timed out after {TIMEOUT_S}s"
    return Outcome(spec, code, out, err, before, _tree(base))


def _selected(request) -> list[str]:
    """The cases this session will assert on (all of them, or those picked with -k)."""
    names = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is request.module and callspec is not None and "case" in callspec.params:
            names.append(callspec.params["case"])
    return sorted(set(names))


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Run the selected cases concurrently (each in its own temporary folder)."""
    names = _selected(request)
    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        futures = {n: pool.submit(_run, n, tmp_path_factory.mktemp(n[:40])) for n in names}
        return {n: f.result() for n, f in futures.items()}


def test_corpus_size():
    errors = [n for n in CASES if _spec(n).get("exit", 2) == 2]
    assert len(errors) >= MIN_ERROR_CASES, f"only {len(errors)} error cases in {CORPUS}"
    for name in CASES:
        spec = _spec(name)
        assert spec.get("why") and spec.get("command"), f"{name}: case.yaml needs why and command"
        if spec.get("exit", 2) == 2:
            assert spec.get("expect"), f"{name}: an error case lists what stderr must say"
        else:
            assert name.startswith("accepted_"), f"{name}: non-error cases are named accepted_*"


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, outcomes):
    res = outcomes[case]
    spec = res.spec
    shown = f"\n--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}"
    expected_code = spec.get("exit", 2)
    assert res.returncode == expected_code, f"exit code {res.returncode}, not {expected_code}{shown}"
    assert "Traceback" not in res.stdout + res.stderr, shown
    if expected_code == 2:
        assert res.stderr.startswith("error: "), shown
    for text in spec.get("expect", []):
        assert text in res.stderr, f"stderr lacks {text!r}{shown}"
    for text in spec.get("expect_stdout", []):
        assert text in res.stdout, f"stdout lacks {text!r}{shown}"
    for text in spec.get("forbid", []):
        assert text not in res.stdout + res.stderr, f"output shows {text!r}{shown}"
    changed = sorted(
        k for k in res.before.keys() | res.after.keys() if res.before.get(k) != res.after.get(k)
    )
    assert not changed, f"files written or changed: {changed}{shown}"
