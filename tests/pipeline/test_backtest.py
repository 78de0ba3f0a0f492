"""The backtest: bootstrap intervals, one parent run with a run per cutoff, clear errors."""

import numpy as np
import pytest

from customer_value.errors import UserError
from customer_value.pipelines.backtest import bootstrap_ci, run_backtest


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    p = y + rng.normal(scale=0.5, size=500)
    mae = lambda a, b: float(np.mean(np.abs(a - b)))  # noqa: E731
    lo, hi = bootstrap_ci(y, p, mae, 200, seed=1)
    assert lo < mae(y, p) < hi and hi - lo < 0.1
    assert (lo, hi) == bootstrap_ci(y, p, mae, 200, seed=1)


def test_backtest_on_the_simulated_base(trained_store):
    cfg, _, _ = trained_store
    import mlflow

    client = mlflow.MlflowClient(cfg.tracking.tracking_uri)
    before = {
        m.name: len(client.search_model_versions(f"name='{m.name}'"))
        for m in client.search_registered_models()
    }
    res = run_backtest(cfg, ["2023-06-30"], horizon_days=180, n_boot=20, say=lambda _m: None)
    t = res.table
    assert set(t["cutoff"]) == {"2023-06-30"}
    models = set(t["model"])
    assert {
        "xgboost churn",
        "xgboost clv",
        "BG/NBD P(no purchase)",
        "BG/NBD + Gamma-Gamma",
        "naive total rate",
        "naive repeat rate",
        "oracle (true state)",
    } <= models
    ours = t[(t["model"] == "xgboost churn") & (t["metric"] == "roc_auc")].iloc[0]
    assert ours["ci_low"] <= ours["value"] <= ours["ci_high"] and 0.6 < ours["value"] < 1
    oracle = t[(t["model"] == "oracle (true state)") & (t["metric"] == "roc_auc")]["value"].iloc[0]
    assert oracle >= ours["value"] - 0.02  # the oracle is (close to) the ceiling
    assert (t["task"] == "transactions").any()
    _check_interval_rows(t)
    runs = client.search_runs(
        [client.get_experiment_by_name(cfg.project.name).experiment_id],
        f"tags.mlflow.parentRunId = '{res.run_id}'",
    )
    assert [r.info.run_name for r in runs] == ["cutoff 2023-06-30"]
    after = {
        m.name: len(client.search_model_versions(f"name='{m.name}'"))
        for m in client.search_registered_models()
    }
    assert after == before  # backtest models never enter the registry
    with pytest.raises(UserError, match="leave less than the 180-day window"):
        run_backtest(cfg, ["2024-03-01"], horizon_days=180, n_boot=0, say=lambda _m: None)


def _check_interval_rows(t):
    """CLV intervals, calibrated on training's out-of-time window, measured on the next window."""
    ours = t[(t["task"] == "clv") & (t["model"] == "xgboost clv")].set_index("metric")
    # ~3,000 scored and ~2,500 calibration customers: the binomial standard error of the coverage
    # is ~1.0 point at 80 % and ~0.5 at 95 % (both samples), so 3 s.e. either side. Measured:
    # 79.4 % and 95.2 % (81.9 % at 80 % before intervals were matched by rank within their bin).
    for level, tag, tol in ((0.8, "80", 0.03), (0.95, "95", 0.015)):
        row = ours.loc[f"coverage_{tag}"]
        assert abs(row["value"] - level) <= tol, (tag, row["value"])
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
        assert ours.loc[f"total_coverage_{tag}", "value"] in (0.0, 1.0)
        assert 0 <= ours.loc[f"persona_total_coverage_{tag}", "value"] <= 1
    assert 0 < ours.loc["interval_width_80", "value"] < ours.loc["interval_width_95", "value"]
    # Without the point-mass customers (bins that bought nothing at least 80 % of the time in
    # calibration) coverage sits at the level too. Measured here: 78.2 % on the other 76 % of
    # customers; at 95 % no bin is a point mass.
    for tag, level in (("80", 0.8), ("95", 0.95)):
        share = ours.loc[f"point_mass_share_{tag}", "value"]
        rest = ours.loc[f"coverage_{tag}_rest", "value"]
        assert 0 <= share < 1
        assert abs(rest - level) <= 0.03, (tag, rest)


def test_evaluate_on_the_simulated_base_with_verdicts(trained_store):
    """The protocol-style holdout: the served chain vs BG/NBD, MBG/NBD and naive rates."""
    from customer_value.pipelines.evaluate import OURS, run_evaluate

    cfg, _, _ = trained_store
    res = run_evaluate(cfg, ["2023-06-30"], 180, n_boot=20, say=lambda _m: None)
    t = res.table
    assert {
        OURS,
        "BG/NBD + Gamma-Gamma",
        "MBG/NBD + Gamma-Gamma",
        "naive total rate",
        "naive repeat rate",
    } <= set(t["model"])
    v = res.verdicts.set_index("metric")
    assert set(v.index) >= {"normalized_gini", "roc_auc", "brier", "aggregate_error", "transactions_mae"}
    assert v.loc["roc_auc", "ci_low"] <= v.loc["roc_auc", "ours"] <= v.loc["roc_auc", "ci_high"]
    assert bool(v.loc["normalized_gini", "headline"]) and not bool(v.loc["transactions_mae", "headline"])
    # The verdict is the comparison it names.
    g = v.loc["normalized_gini"]
    assert (g["verdict"] == "win") == (g["ours"] > g["classical"])
    # Every customer with a purchase day by the calibration end is scored, once per model.
    per_model = t[t["metric"] == "brier"].groupby("model").size()
    assert (per_model == 1).all()
    with pytest.raises(UserError, match="leave less than the 180-day window"):
        run_evaluate(cfg, ["2024-03-01"], 180, n_boot=0, say=lambda _m: None)
    with pytest.raises(UserError, match="--cal-end 'yesterday-ish' is not a date"):
        run_evaluate(cfg, ["yesterday-ish"], 180, n_boot=0, say=lambda _m: None)
    with pytest.raises(UserError, match="--holdout-days must be at least 1"):
        run_evaluate(cfg, ["2023-06-30"], 0, n_boot=0, say=lambda _m: None)
