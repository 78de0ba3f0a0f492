"""The command line: summaries, and user errors as clear messages with exit code 2."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import REPO, write
from customer_value.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(map(str, args)))


def test_simulate_then_validate(make_config, tmp_path):
    cfg = make_config("""
        project: {seed: 5}
        simulation: {n_customers: 300, output_dir: raw, truth_dir: truth}
        data:
          transactions: {path: raw/transactions.parquet}
          customers: {path: raw/customers.parquet}
          interactions: {path: raw/interactions.parquet}
    """)
    res = invoke("simulate", "--config", cfg)
    assert res.exit_code == 0, res.output
    assert "Simulated 300 customers" in res.output
    res = invoke("validate", "--config", cfg, "--report", tmp_path / "report.json")
    assert res.exit_code == 0, res.output
    assert "Summary: 300 customers" in res.output
    assert "customer ids before filtering: 300" in res.output
    assert (tmp_path / "report.json").exists()


def test_train_simulates_when_data_is_absent(make_config, tmp_path):
    cfg = make_config("""
        simulation: {n_customers: 1500, output_dir: raw, truth_dir: truth}
        data:
          transactions: {path: raw/transactions.parquet}
        churn: {tuning: {n_trials: 2, max_estimators: 50}}
        clv: {tuning: {n_trials: 2, max_estimators: 50}}
        personas: {k_max: 4, stability_bootstraps: 1, silhouette_sample: 500}
        tracking: {db_path: store/mlflow.db, artifact_dir: store/artifacts}
    """)
    res = invoke("train", "--config", cfg)
    assert res.exit_code == 0, res.output
    assert "simulated the btyd customer base" in res.output
    for text in (
        "CHURN on the out-of-time snapshot",
        "BG/NBD P(no purchase)",
        "CLV on the out-of-time",
        "BG/NBD + Gamma-Gamma",
        "PERSONAS:",
        "champion: v1 is the first version",
        "make ui",
    ):
        assert text in res.output, text
    assert (tmp_path / "truth" / "truth.parquet").exists()
    assert (tmp_path / "store" / "mlflow.db").exists()


def test_user_error_exit_code_2_no_traceback_nothing_written(make_config, tmp_path):
    write(tmp_path / "tx.csv", "customer_id,timestamp,amount\n1,not-a-date,5\n")
    cfg = make_config("data:\n  transactions:\n    path: tx.csv\n")
    report = tmp_path / "out" / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "customer_value.cli",
            "validate",
            "--config",
            str(cfg),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: ")
    assert "column 'timestamp'" in proc.stderr and "'not-a-date'" in proc.stderr
    assert not report.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["validate", "--config", "missing.yaml"], "config file not found"),
        (["validate", "--config", "{cfg}", "--set", "project.sed=1"], "unknown key 'project.sed'"),
        (["simulate", "--config", "{cfg}"], "no 'simulation' section"),
    ],
)
def test_config_errors(make_config, args, fragment):
    cfg = make_config("data:\n  transactions:\n    path: tx.csv\n")
    res = invoke(*[a.format(cfg=cfg) for a in args])
    assert res.exit_code == 2
    assert fragment in res.output
    assert "Traceback" not in res.output


def test_make_help_lists_targets():
    out = subprocess.run(["make", "-s", "-C", str(REPO)], capture_output=True, text=True).stdout
    for target in ("train", "test", "clean", "simulate", "validate"):
        assert f"  {target} " in out


def test_features_command_writes_the_table(make_config, tmp_path):
    cfg = make_config("""
        simulation: {n_customers: 400, output_dir: raw, truth_dir: truth}
        data:
          transactions: {path: raw/transactions.parquet}
          customers: {path: raw/customers.parquet}
          interactions: {path: raw/interactions.parquet}
    """)
    out = tmp_path / "feats.parquet"
    res = invoke("features", "--config", cfg, "--as-of", "2023-12-31", "--output", out)
    assert res.exit_code == 0, res.output
    import pandas as pd

    frame = pd.read_parquet(out)
    assert frame["customer_id"].is_unique and (frame["as_of"] == pd.Timestamp("2023-12-31")).all()
    assert {"recency_days", "p_alive", "customer_value_to_date", "nps_last"} <= set(frame.columns)
    res = invoke(
        "features", "--config", cfg, "--as-of", "yesterday-ish", "--output", tmp_path / "x.parquet"
    )
    assert res.exit_code == 2 and "is not a date" in res.output
    assert not (tmp_path / "x.parquet").exists()
    res = invoke(
        "features", "--config", cfg, "--as-of", "2001-01-01", "--output", tmp_path / "y.parquet"
    )
    assert res.exit_code == 2 and "as_of 2001-01-01 is before the first transaction" in res.output
    assert not (tmp_path / "y.parquet").exists()


def test_an_unexpected_exception_is_one_line_exit_1(make_config, monkeypatch):
    """A bug (any non-UserError exception) never shows a traceback; the debug switch shows it."""
    import customer_value.pipelines.data as data

    def boom(*_a, **_k):
        raise RuntimeError("boom at https://u:hidden-pw@host/x")

    monkeypatch.setattr(data, "load_data", boom)
    cfg = make_config("data:\n  transactions: {path: tx.csv}\n")
    res = invoke("validate", "--config", cfg)
    assert res.exit_code == 1
    assert "Traceback" not in res.output and "hidden-pw" not in res.output
    assert "error: internal error (RuntimeError: boom at https://u:***@host/x)" in res.output
    assert "CUSTOMER_VALUE_DEBUG=1" in res.output
    monkeypatch.setenv("CUSTOMER_VALUE_DEBUG", "1")
    res = invoke("validate", "--config", cfg)
    assert isinstance(res.exception, RuntimeError)
