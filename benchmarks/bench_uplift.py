"""Uplift learners on simulated campaigns: how much of the known effect each one recovers.

    .venv/bin/python benchmarks/bench_uplift.py --customers 20000 --seeds 5 --out reports/bench_uplift.md

For each seed: a fresh simulated base with a randomized campaign (synthetic.CAMPAIGN_EFFECTS), the
features before the contact and the responses after it (`customer-value uplift`'s own rows), one
held-out part; then each learner fitted on the rest. Reported per learner, as mean ± standard
deviation over the seeds: the held-out Qini coefficient and uplift@10 %, the correlation of the
predicted and the true individual effect, the largest per-persona error of the mean predicted
effect, and how often the two personas with the largest true effect are the predicted top two.
The "observed persona" rows add the simulator's persona as a feature: what the learner recovers
when the segment that drives the effect is in the data, against what behaviour alone allows.
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from report_table import markdown, publish

from customer_value.config import load_config
from customer_value.pipelines.data import ensure_data, load_data
from customer_value.pipelines.uplift import CampaignRows, assess, campaign_rows

CONFIG = """
project: {{name: bench-uplift, seed: {seed}}}
simulation:
  n_customers: {n}
  output_dir: raw
  truth_dir: truth
  campaign: {{}}
data:
  transactions: {{path: raw/transactions.parquet}}
  customers: {{path: raw/customers.parquet}}
  interactions: {{path: raw/interactions.parquet}}
  campaigns: {{path: raw/campaigns.parquet}}
tracking: {{db_path: mlflow.db, artifact_dir: mlartifacts}}
"""


def _one(rows: CampaignRows, cfg, truth: pd.DataFrame) -> dict:
    metrics, _, _, held = assess(rows, cfg)
    held = held.join(truth[["persona", "campaign_effect"]])
    by = held.groupby("persona").agg(pred=("uplift", "mean"), true=("campaign_effect", "mean"))
    top2 = set(by["pred"].nlargest(2).index) == set(by["true"].nlargest(2).index)
    return {
        "qini": metrics["qini_coefficient"],
        "uplift@10": metrics.get("uplift_at_10", np.nan),
        "corr": float(np.corrcoef(held["uplift"], held["campaign_effect"])[0, 1]),
        "max persona error": float((by["pred"] - by["true"]).abs().max()),
        "base error": float(held["uplift"].mean() - held["campaign_effect"].mean()),
        "top-2 personas": float(top2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    results = []
    for seed in range(1, args.seeds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(CONFIG.format(n=args.customers, seed=seed))
            cfg = load_config(path)
            ensure_data(cfg)
            rows = campaign_rows(load_data(cfg).data, cfg)
            truth = pd.read_parquet(Path(tmp) / "truth" / "truth.parquet").set_index("customer_id")
        dummies = pd.get_dummies(truth["persona"], prefix="persona").astype(float)
        oracle = CampaignRows(
            rows.frame.join(dummies), rows.features + list(dummies.columns), rows.window_days
        )
        for learner in ("x", "two_model"):
            for name, data in (("behaviour", rows), ("observed persona", oracle)):
                run = cfg.model_copy(
                    update={"uplift": cfg.uplift.model_copy(update={"learner": learner})}
                )
                results.append({"learner": learner, "features": name, **_one(data, run, truth)})
        print(f"seed {seed} done", flush=True)
    frame = pd.DataFrame(results)
    stats = frame.groupby(["learner", "features"], sort=False).agg(["mean", "std"])
    table = pd.DataFrame(
        {
            "learner": [k[0] for k in stats.index],
            "features": [k[1] for k in stats.index],
            **{
                col: [
                    f"{m:.3f} ± {s:.3f}"
                    for m, s in zip(stats[(col, "mean")], stats[(col, "std")], strict=True)
                ]
                for col in frame.columns[2:]
            },
        }
    )
    u = cfg.uplift
    paired = []
    for features in ("behaviour", "observed persona"):
        sel = frame[frame["features"] == features]
        x, t = (sel[sel["learner"] == k].reset_index(drop=True) for k in ("x", "two_model"))
        for col in ("qini", "corr"):
            d = x[col] - t[col]
            paired.append(
                f"- {features}, {col}: X − two-model {d.mean():+.3f} (standard error "
                f"{d.std(ddof=1) / np.sqrt(len(d)):.3f}), X ahead on {int((d > 0).sum())} of "
                f"{len(d)} seeds"
            )
    text = (
        textwrap.dedent(f"""\
        ## Uplift learners on simulated campaigns (`make bench-uplift`)

        {args.customers:,} simulated customers per seed, {args.seeds} seeds; one randomized
        campaign {u.window_days or cfg.features.churn_window_days} days before the data ends,
        half the base contacted; {u.holdout_share:.0%} held out; xgboost with {u.n_estimators}
        trees of depth {u.max_depth}. Mean ± standard deviation over the seeds ("top-2 personas":
        share of seeds where the two personas with the largest true effect are predicted top two).

        """)
        + markdown(table)
        + "\n\nPaired over the seeds (same data for both learners):\n\n"
        + "\n".join(paired)
        + "\n"
    )
    publish(text, args.out)


if __name__ == "__main__":
    main()
