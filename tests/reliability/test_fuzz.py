"""Fuzz the real CLI: valid small inputs, corrupted as a careless or hostile user would.

Each example takes a valid 800-customer base (csv files and a config), applies one or two
corruptions (cells, headers, encodings, file truncation, config values, YAML, paths, CLI options)
and runs one command as a subprocess. Whatever the corruption, the outcome must be:

- exit 0, or exit 2 with stderr starting ``error:`` (never 1, never a signal, never a hang);
- no ``Traceback`` anywhere in the output;
- on exit 2, nothing written: the example's folder is unchanged (names, sizes, modification times);
- the password planted in some configs never appears in the output.

Hypothesis runs derandomized (a fixed seed), so the examples are the same on every run; the budget
is ``CV_FUZZ_EXAMPLES`` examples per command (small in ``make test``, larger in ``make bench``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("CV_FUZZ_EXAMPLES", "12"))
TIMEOUT_S = 300
SECRET = "Fuzz-S3cret-pw"

BASE_CONFIG = """\
project: {name: fuzz, seed: 3}
data:
  transactions: {path: tx.csv}
  customers: {path: customers.csv}
  interactions: {path: interactions.csv}
  campaigns: {path: campaigns.csv}
snapshots: {n_snapshots: 2, spacing_days: 60}
personas: {k_max: 3, silhouette_sample: 300, stability_bootstraps: 1, min_share: 0.02}
churn: {tuning: {n_trials: 1, max_estimators: 30}}
clv: {tuning: {n_trials: 1, max_estimators: 30}}
explain: {sample_size: 50}
uplift: {n_estimators: 40}
tracking: {db_path: store/mlflow.db, artifact_dir: store/artifacts, report_path: out/report.html}
"""

# -- the valid base -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """An 800-customer simulated base as csv files, and a store trained on it (for predict)."""
    root = tmp_path_factory.mktemp("fuzzbase")
    sim = root / "sim"
    sim.mkdir()
    (sim / "c.yaml").write_text(
        "project: {name: fuzz, seed: 3}\nsimulation: {n_customers: 800, output_dir: raw, truth_dir: truth, "
        "campaign: {}}\n"
        "data:\n  transactions: {path: raw/transactions.parquet}\n"
    )
    _cli(sim, "simulate", "--config", "c.yaml", check=True)
    clean = root / "clean"
    clean.mkdir()
    for name, out in (
        ("transactions", "tx"),
        ("customers", "customers"),
        ("interactions", "interactions"),
        ("campaigns", "campaigns"),
    ):
        pd.read_parquet(sim / "raw" / f"{name}.parquet").to_csv(clean / f"{out}.csv", index=False)
    (clean / "config.yaml").write_text(BASE_CONFIG)
    _cli(clean, "train", "--config", "config.yaml", check=True)
    return clean


def _cli(cwd: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}
    env.pop("CUSTOMER_VALUE_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "customer_value.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


# -- corruptions ----------------------------------------------------------------------------------

FILES = ("tx.csv", "customers.csv", "interactions.csv", "campaigns.csv")
ODD_VALUES = [
    "",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "-1e308",
    "abc",
    "１２３",
    "7\u200b",
    "\u00a0",
    "NULL",
    "None",
    "2024-13-45",
    "01/02/2024",
    "1719705600",
    "0",
    "-5",
    "1e12",
    "9" * 60,
    "x" * 3000,
    "\u2603\ufe0f",
    '"',
    "a,b",
    "'; DROP TABLE x; --",
    "../../etc/passwd",
    "2024-06-30T00:00:00+05:00",
    "1900-01-01",
    "2999-01-01",
    "true",
    "C000001",
]
CONFIG_EDITS = [
    ("data.policies.duplicates", ["keep", "error", "bogus", 3]),
    ("data.policies.negative_amounts", ["return", "drop", "error", None]),
    ("data.policies.extreme_amounts", ["keep", "drop", "error", "x"]),
    ("data.transactions.encoding", ["latin-1", "utf-16", "utf-99", "rot13", ""]),
    ("data.transactions.delimiter", [";", "\t", "", ",,"]),
    ("data.transactions.date_format", ["%d/%m/%Y", "epoch_s", "%Q", "", "%Y"]),
    (
        "data.transactions.derive",
        [
            {"amount": "amount * 2"},
            {"amount2": "1/0"},
            {"a": "__import__('os')"},
            {"x": "+".join(["amount"] * 500)},
            {"y": "9" * 400},
        ],
    ),
    ("data.transactions.columns", [{"amount": "customer_id"}, {"cost": "amount"}, {"nope": "amount"}]),
    (
        "data.transactions.cancellation",
        [{"column": "order_id", "prefix": ""}, {"column": "nope", "prefix": "C"}],
    ),
    ("data.transactions.path", ["missing.csv", ".", "customers.csv", "/dev/null", "tx.csv/x"]),
    ("data.timezone", ["Europe/Paris", "Mars/Olympus", "", 5]),
    ("features.horizon_days", [0, -1, 1, 100000, "many"]),
    ("features.churn_window_days", [0, 1, 10**9]),
    ("snapshots.n_snapshots", [0, 1, 10**6]),
    ("project.name", ["../../x", "", "ok name", "a/b", "x" * 300]),
    ("tracking.experiment", ["../evil", "fine"]),
    (
        "tracking.uri",
        [
            f"postgresql://u:{SECRET}@127.0.0.1:9/db",
            f"https://:{SECRET}@127.0.0.1:9",
            "sqlite://",
            f"mysql+pymysql://a:{SECRET}@127.0.0.1:9/x",
            "not a uri",
        ],
    ),
    ("tracking.db_path", ["tx.csv", ".", "nofolder/deeper/m.db", "a%20b/m.db", "x?y.db"]),
    ("tracking.report_path", ["tx.csv", "config.yaml/r.html", ".", "out/r.html"]),
    ("tracking.artifact_dir", ["tx.csv", "a#b", "art"]),
]


@dataclass(frozen=True)
class Cell:
    file: str
    row: int  # 0 = header
    col: int
    value: str


@dataclass(frozen=True)
class FileEdit:
    file: str
    kind: str  # truncate, empty, binary, latin1, utf16, bom, dup_column, drop_column, header_only


@dataclass(frozen=True)
class ConfigEdit:
    key: str
    value: object


@dataclass(frozen=True)
class RawConfig:
    text: str


cells = st.builds(
    Cell,
    st.sampled_from(FILES),
    st.integers(0, 40),
    st.integers(0, 9),
    st.sampled_from(ODD_VALUES),
)
file_edits = st.builds(
    FileEdit,
    st.sampled_from(FILES),
    st.sampled_from(
        [
            "truncate",
            "empty",
            "binary",
            "latin1",
            "utf16",
            "bom",
            "dup_column",
            "drop_column",
            "header_only",
        ]
    ),
)
config_edits = st.sampled_from(CONFIG_EDITS).flatmap(
    lambda kv: st.builds(ConfigEdit, st.just(kv[0]), st.sampled_from(kv[1]))
)
raw_configs = st.sampled_from(
    [
        "data: [1, 2",
        BASE_CONFIG + "data:\n  transactions: {path: other.csv}\n",
        "a: &a [" + ",".join(["*a"] * 3) + "]\n",
        "x: !!python/object/apply:os.system ['true']\n" + BASE_CONFIG,
        "\ufeff" + BASE_CONFIG,
        BASE_CONFIG.replace("tx.csv", "tx.csv\n    bogus_key: 1"),
        "",
    ]
).map(RawConfig)
corruptions = st.lists(st.one_of(cells, file_edits, config_edits, raw_configs), min_size=1, max_size=2)


def _set(tree: dict, key: str, value: object) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
    node[parts[-1]] = value


def _apply(work: Path, edits: list) -> None:
    import yaml

    tree = yaml.safe_load((work / "config.yaml").read_text())
    raw_text = None
    for e in edits:
        if isinstance(e, Cell):
            path = work / e.file
            lines = path.read_text(encoding="utf-8").split("\n")
            row = min(e.row, len(lines) - 2)
            fields = lines[row].split(",")
            fields[e.col % len(fields)] = e.value
            lines[row] = ",".join(fields)
            path.write_text("\n".join(lines), encoding="utf-8")
        elif isinstance(e, FileEdit):
            _file_edit(work / e.file, e.kind)
        elif isinstance(e, ConfigEdit):
            _set(tree, e.key, e.value)
        else:
            raw_text = e.text
    text = raw_text if raw_text is not None else yaml.safe_dump(tree, allow_unicode=True)
    (work / "config.yaml").write_text(text, encoding="utf-8")


def _file_edit(path: Path, kind: str) -> None:
    # A second edit of a file the first made binary must still apply (not crash the harness).
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    if kind == "truncate":
        path.write_bytes(text.encode()[: len(text) // 3 + 7])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "latin1":
        path.write_bytes(text.replace("store", "magasin é").encode("latin-1"))
    elif kind == "utf16":
        path.write_bytes(text.encode("utf-16"))
    elif kind == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    elif kind == "dup_column":
        path.write_text("\n".join(f"{ln},{ln.split(',')[-1]}" if ln else ln for ln in lines))
    elif kind == "drop_column":
        path.write_text("\n".join(",".join(ln.split(",")[1:]) for ln in lines))
    elif kind == "header_only":
        path.write_text(lines[0] + "\n")


# -- the property ---------------------------------------------------------------------------------


OUTCOMES: list[dict] = []  # every example's command, exit code and first stderr line


def _tree(root: Path) -> dict[str, tuple]:
    out = {}
    for p in [root, *root.rglob("*")]:
        st_ = p.lstat()
        out[str(p.relative_to(root))] = (p.is_dir(), st_.st_size, st_.st_mtime_ns)
    return out


def _check(base: Path, tmp: Path, edits: list, command: list[str], copy_store: bool = False) -> None:
    work = tmp / "w"
    if work.exists():
        shutil.rmtree(work)
    ignore = None if copy_store else shutil.ignore_patterns("store", "out")
    shutil.copytree(base, work, ignore=ignore)
    _apply(work, edits)
    before = _tree(work)
    proc = _cli(work, *command)
    out = proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0][:160] if proc.stderr.strip() else ""
    OUTCOMES.append(
        {"command": command[0], "exit": proc.returncode, "edits": repr(edits)[:300], "said": first}
    )
    shown = f"edits={edits!r}\ncommand={command}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
    assert "Traceback" not in out, shown
    assert SECRET not in out, shown
    assert proc.returncode in (0, 2), shown
    if proc.returncode == 2:
        assert proc.stderr.startswith("error: "), shown
        after = _tree(work)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert not changed, f"files written on error: {changed}\n{shown}"


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Plain runs are listed several times so that most examples reach the data and the models, not
# only the option checks.
OPTIONS = st.sampled_from(
    [
        [],
        [],
        [],
        [],
        ["--as-of", "2024-06-30"],
        ["--as-of", "01/07/2024"],
        ["--as-of", "2031-01-01"],
        ["--as-of", "1999-01-01"],
        ["--as-of", "2024-01-01T00:00+02:00"],
        ["--as-of", "yesterday"],
        ["--set", "features.horizon_days=0"],
        ["--set", "=3"],
        ["--set", "tracking.uri=https://u:" + SECRET + "@127.0.0.1:9"],
        ["--config", "."],
        ["--config", "missing.yaml"],
    ]
)


@FUZZ
@given(edits=corruptions, options=OPTIONS)
def test_fuzz_validate(base, tmp_path, edits, options):
    usable = [] if options and options[0] == "--as-of" else options  # validate has no --as-of
    _check(base, tmp_path, edits, ["validate", "--config", "config.yaml", *usable])


@FUZZ
@given(
    edits=corruptions,
    options=OPTIONS,
    output=st.sampled_from(
        [
            "out/f.parquet",
            "out/f.parquet",
            "out/f.parquet",
            "tx.csv",
            "f.xlsx",
            "config.yaml",
            ".",
            "tx.csv/f.parquet",
            "out/f.csv.gz",
        ]
    ),
)
def test_fuzz_features(base, tmp_path, edits, options, output):
    _check(base, tmp_path, edits, ["features", "--config", "config.yaml", *options, "--output", output])


@FUZZ
@given(
    edits=corruptions,
    options=OPTIONS,
    output=st.sampled_from(
        [
            "out/p.parquet",
            "out/p.parquet",
            "out/p.parquet",
            "out/p.csv",
            "tx.csv",
            "sqlite://",
            "sqlite:///nofolder/p.db",
            "table:preds",
            "p.json",
            f"postgresql://u:{SECRET}@127.0.0.1:9/db",
        ]
    ),
)
def test_fuzz_predict(base, tmp_path, edits, options, output):
    _check(
        base,
        tmp_path,
        edits,
        ["predict", "--config", "config.yaml", *options, "--output", output],
        copy_store=True,
    )


@FUZZ
@given(
    edits=corruptions,
    options=OPTIONS.filter(lambda o: not o or o[0] != "--as-of"),  # uplift has no --as-of
    output=st.sampled_from(
        ["out/u.parquet", "out/u.parquet", "out/u.csv", "tx.csv", "campaigns.csv", "u.json", "."]
    ),
)
def test_fuzz_uplift(base, tmp_path, edits, options, output):
    _check(
        base,
        tmp_path,
        edits,
        ["uplift", "--config", "config.yaml", *options, "--output", output, "--report", ""],
    )


@settings(FUZZ, max_examples=max(2, EXAMPLES // 4))
@given(edits=corruptions)
def test_fuzz_train(base, tmp_path, edits):
    _check(base, tmp_path, edits, ["train", "--config", "config.yaml"])


def test_fuzz_outcomes_are_recorded_and_varied():
    """The examples above reached both outcomes (a fuzzer whose inputs all fail, or all pass, tests
    little); the outcomes are kept for people to read."""
    import json

    from conftest import ARTIFACTS

    if not OUTCOMES:
        pytest.skip("run with the fuzz tests above")
    folder = ARTIFACTS / "reliability"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fuzz.json").write_text(json.dumps(OUTCOMES, indent=1))
    codes = {o["exit"] for o in OUTCOMES}
    assert codes == {0, 2}, codes
