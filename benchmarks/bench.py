"""`make bench`: every benchmark and backtest side by side, in one report (reports/bench.md).

Each comparison runs in its own process: the feature benchmark (ours vs lifetimes vs DuckDB), the
scoring benchmark, and the backtests (ours vs BG/NBD + Gamma-Gamma and naive baselines) on the real
Online Retail log (skipped with a note when the shared copy is absent) and on the simulated base
(with the oracle). Where our models lose to a baseline, the report lists it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail_2010-12_2011-12.csv.gz"
BACKTESTS = {
    "online_retail": ("configs/online_retail.yaml", "2011-06-30,2011-09-09", []),
    "simulated": (
        "configs/default.yaml",
        "2023-03-31,2023-06-30",
        ["--set", "churn.tuning.n_trials=10", "--set", "clv.tuning.n_trials=10"],
    ),
}


def _run(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t, proc.stdout


def losses(table: pd.DataFrame) -> list[str]:
    """Every (cutoff, metric) where a baseline beats our model, with the margin."""
    lower = {"mae", "rmse", "brier", "log_loss", "decile_mape"}
    out = []
    for (cutoff, task, metric), grp in table.groupby(["cutoff", "task", "metric"]):
        ours = grp[grp["model"].str.startswith("xgboost")]["value"]
        if ours.empty or metric in ("aggregate_error", "aggregate_transactions_error"):
            continue
        o = float(ours.iloc[0])
        for _, r in grp[~grp["model"].str.startswith(("xgboost", "oracle"))].iterrows():
            v = r["value"]
            if v != v:
                continue
            if (v < o) if metric in lower else (v > o):
                out.append(
                    f"{cutoff} {task} {metric}: {r['model']} {v:.4f} vs ours {o:.4f} ({(o - v):+.4f})"
                )
    return out


def main() -> None:
    REPORTS.mkdir(exist_ok=True)
    python = sys.executable
    sections = []
    t_feat, _ = _run(
        [
            python,
            "benchmarks/bench_features.py",
            "--sizes",
            "1000000,10000000",
            "--out",
            str(REPORTS / "bench_features.md"),
        ]
    )
    sections.append((REPORTS / "bench_features.md").read_text())
    t_pred, _ = _run(
        [
            python,
            "benchmarks/bench_predict.py",
            "--customers",
            "1000000",
            "--out",
            str(REPORTS / "bench_predict.md"),
        ]
    )
    sections.append((REPORTS / "bench_predict.md").read_text())
    t_spark, _ = _run(
        [
            python,
            "benchmarks/bench_spark.py",
            "--sizes",
            "1000000,10000000",
            "--out",
            str(REPORTS / "bench_spark.md"),
        ]
    )
    sections.append((REPORTS / "bench_spark.md").read_text())
    for name, (config, cutoffs, extra) in BACKTESTS.items():
        if name == "online_retail" and not RETAIL.exists():
            sections.append(f"# Backtest: {name}\n\nSkipped: {RETAIL} is absent.\n")
            continue
        out = REPORTS / f"backtest_{name}.csv"
        store = [
            "--set",
            f"tracking.db_path={ROOT / '.bench' / 'mlflow.db'}",
            "--set",
            f"tracking.artifact_dir={ROOT / '.bench' / 'mlartifacts'}",
        ]
        cmd = [
            python,
            "-m",
            "customer_value.cli",
            "backtest",
            "--config",
            config,
            "--cutoffs",
            cutoffs,
            "--output",
            str(out),
            *extra,
            *store,
        ]
        seconds, stdout = _run(cmd)
        table = pd.read_csv(out)
        lost = losses(table)
        text = stdout[stdout.index("\nCHURN") :] if "\nCHURN" in stdout else stdout
        sections.append(
            f"# Backtest: {name}\n\nCommand: `customer-value backtest --config {config} --cutoffs "
            f"{cutoffs}{' ' + ' '.join(extra) if extra else ''}` ({seconds:.0f} s)\n\n```\n"
            f"{text.strip()}\n```\n\nWhere a baseline beats our model ({len(lost)} of the "
            f"comparisons):\n\n" + ("\n".join(f"- {x}" for x in lost) or "- none") + "\n"
        )
    head = (
        f"# customer_value benchmarks\n\nCommand: `make bench`. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Features {t_feat:.0f} s, "
        f"scoring {t_pred:.0f} s, pandas vs Spark {t_spark:.0f} s.\n"
    )
    (REPORTS / "bench.md").write_text("\n\n".join([head, *sections]), encoding="utf-8")
    print((REPORTS / "bench.md").read_text())


if __name__ == "__main__":
    main()
