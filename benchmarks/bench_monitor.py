"""Drift alarms of `monitor`: do they ring when the log changes, and stay quiet when it does not.

    .venv/bin/python benchmarks/bench_monitor.py --customers 5000 --out reports/bench_monitor.md

Simulates a base, trains the chain at a reference date (default 2023-12-31; few Optuna trials, it
is the drift check that is measured, not the models), then compares features and predictions at
the reference with those 90 days later, on the unchanged log and on logs edited after the
reference (order values up, orders dropped, both). Prints one row per scenario: the features
flagged, the largest excess PSI and KS (beyond the usual shift of the 90 days before the
reference), the prediction PSIs and whether `monitor` would exit 3.
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import warnings
from pathlib import Path

import pandas as pd
from report_table import markdown, publish

from customer_value.config import load_config
from customer_value.pipelines.data import load_data
from customer_value.pipelines.monitor import alerts_for, drift_report
from customer_value.pipelines.train import run_train

CONFIG = """
project: {{name: bench-monitor, seed: 7}}
simulation: {{n_customers: {n}, output_dir: raw, truth_dir: truth}}
data:
  transactions: {{path: raw/transactions.parquet}}
  customers: {{path: raw/customers.parquet}}
  interactions: {{path: raw/interactions.parquet}}
personas: {{k_max: 6, silhouette_sample: 1500, stability_bootstraps: 2}}
churn: {{tuning: {{n_trials: 3, max_estimators: 300}}}}
clv: {{tuning: {{n_trials: 3, max_estimators: 300}}}}
explain: {{sample_size: 300}}
tracking: {{db_path: mlflow.db, artifact_dir: mlartifacts}}
"""


def _scenarios(tables, reference: pd.Timestamp):
    tx = tables.transactions
    after = (tx["timestamp"] > reference).to_numpy()
    order = tx["customer_id"].astype(str) + tx["timestamp"].astype(str)
    third = (pd.util.hash_pandas_object(order, index=False) % 3 == 0).to_numpy()

    def scaled(t, k):
        return t.assign(amount=t["amount"].where(~after, t["amount"] * k))

    return {
        "unchanged": tx,
        "order values x1.5": scaled(tx, 1.5),
        "order values x3": scaled(tx, 3.0),
        "two in three orders dropped": tx[~after | third],
        "x3 and two in three dropped": scaled(tx, 3.0)[~after | third],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--reference", default="2023-12-31")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    reference = pd.Timestamp(args.reference)
    current = reference + pd.Timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(CONFIG.format(n=args.customers))
        cfg = load_config(path)
        chain = run_train(cfg, as_of=reference, say=lambda _m: None).chain
        tables = load_data(cfg).data
        rows = []
        for name, tx in _scenarios(tables, reference).items():
            edited = type(tables)(tx.reset_index(drop=True), tables.customers, tables.interactions)
            feats, preds, *_ = drift_report(chain, edited, reference, current, cfg)
            excess = feats["psi"] - feats["psi_usual"]
            p = preds.set_index("column")["psi"]
            rows.append(
                {
                    "scenario": name,
                    "features flagged": f"{int(feats['drifted'].sum())} of {len(feats)}",
                    "top flagged": ", ".join(feats[feats["drifted"]]["column"].head(3)) or "-",
                    "max excess PSI": f"{excess.max():.3f}",
                    "max excess KS": f"{(feats['ks_statistic'] - feats['ks_usual']).max():.3f}",
                    "PSI churn / CLV": f"{p['churn_probability']:.3f} / {p['predicted_clv']:.3f}",
                    "exit": 3 if alerts_for(feats, preds, cfg) else 0,
                }
            )
    table = pd.DataFrame(rows)
    m = cfg.monitoring
    text = (
        textwrap.dedent(f"""\
        ## Drift detection (`make bench-monitor`)

        {args.customers:,} simulated customers, chain trained at {reference.date()}, features and
        predictions at {current.date()} against the reference; thresholds PSI {m.psi_threshold},
        KS {m.ks_threshold} beyond the usual shift of the {args.days} days before the reference.

        """)
        + markdown(table)
        + "\n"
    )
    publish(text, args.out)


if __name__ == "__main__":
    main()
