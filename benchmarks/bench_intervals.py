"""CLV interval coverage on simulated bases, cutoff by cutoff (the backtest's own metrics).

    .venv/bin/python benchmarks/bench_intervals.py --customers 5000 --seeds 7 8 9 \
        --out reports/bench_intervals.md

Per seed, simulates a base with a long history (from 2020, so every cutoff has a full 365-day
out-of-time window to calibrate on), runs `customer-value backtest` at three cutoffs (few Optuna
trials: the intervals are measured, not the models) and prints, per cutoff and level, the share of customers
whose realised CLV fell inside their interval, the same share without the point-mass customers
(bins that bought nothing at least the level's share of the time in calibration) and how many
customers those are, with the bootstrap 95 % interval of each share.
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
from customer_value.pipelines.backtest import run_backtest

CONFIG = """
project: {{name: bench-intervals, seed: {seed}}}
simulation: {{n_customers: {n}, start_date: 2020-01-01, output_dir: raw, truth_dir: truth}}
data:
  transactions: {{path: raw/transactions.parquet}}
  customers: {{path: raw/customers.parquet}}
  interactions: {{path: raw/interactions.parquet}}
personas: {{k_max: 5, silhouette_sample: 1000, stability_bootstraps: 1}}
churn: {{tuning: {{n_trials: 5}}}}
clv: {{tuning: {{n_trials: 5}}, intervals_match_ranks: {match}}}
explain: {{sample_size: 200}}
tracking: {{db_path: mlflow.db, artifact_dir: mlartifacts}}
"""
CUTOFFS = ["2022-10-31", "2023-02-28", "2023-06-30"]


def _cell(row: pd.Series) -> str:
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument(
        "--by-prediction",
        action="store_true",
        help="place customers in their bin by prediction alone (clv.intervals_match_ranks: false)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    match = not args.by_prediction
    rows = [row for seed in args.seeds for row in _seed_rows(args.customers, seed, match)]
    table = pd.DataFrame(rows)
    seeds = ", ".join(str(s) for s in args.seeds)
    text = (
        textwrap.dedent(f"""\
        ## CLV interval coverage (`make bench-intervals`)

        {args.customers:,} simulated customers per base (history from 2020-01-01, seeds {seeds}),
        365-day CLV, one training per cutoff; coverage = share of customers whose realised CLV is
        inside their interval [bootstrap 95 % interval over customers]; customers placed in
        their prediction bin {"by rank among the served base" if match else "by prediction alone"}.

        """)
        + markdown(table)
        + "\n"
    )
    publish(text, args.out)


def _seed_rows(customers: int, seed: int, match: bool) -> list[dict]:
    """The table's rows for the base simulated with ``seed``: per cutoff and level."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(CONFIG.format(n=customers, seed=seed, match=str(match).lower()))
        t = run_backtest(load_config(path), CUTOFFS, n_boot=200, say=lambda _m: None).table
    ours = t[(t["task"] == "clv") & (t["model"] == "xgboost clv")].set_index(["cutoff", "metric"])
    rows = []
    for cutoff in CUTOFFS:
        for tag in ("80", "95"):
            at = ours.loc[cutoff]
            rows.append(
                {
                    "seed": seed,
                    "cutoff": cutoff,
                    "level": f"{tag} %",
                    "coverage": _cell(at.loc[f"coverage_{tag}"]),
                    "without point mass": _cell(at.loc[f"coverage_{tag}_rest"]),
                    "point-mass share": f"{at.loc[f'point_mass_share_{tag}', 'value']:.3f}",
                    "mean width": f"{at.loc[f'interval_width_{tag}', 'value']:.1f}",
                    "base total inside": int(at.loc[f"total_coverage_{tag}", "value"]),
                }
            )
    return rows


if __name__ == "__main__":
    main()
