"""Serving: the blend with the classical models, the gate against them, and the refit plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_value.config import SnapshotConfig
from customer_value.features.build import plan_cutoffs
from customer_value.modeling.blend import BaselineOnly, Blend, ChurnBlend, candidates
from customer_value.pipelines.evaluate import metric, verdicts
from customer_value.tasks.base import versus_baselines


class _Fixed:
    """A 'fitted model' that returns a column: makes blend weights checkable exactly."""

    features_ = ["learned_col"]

    def predict(self, X):
        return X["learned_col"].to_numpy(float)

    def contributions(self, X, approx=False):
        return pd.DataFrame({"learned_col": X["learned_col"], "bias": 0.0}, index=X.index)


def _frame(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(60, 400, n)
    freq = rng.poisson(3, n).astype(float)
    mean = rng.gamma(2, 50, n)
    return pd.DataFrame(
        {
            "learned_col": rng.gamma(2, 40, n),
            "btyd_expected_spend": rng.gamma(2, 30, n),
            "monetary_repeat_mean": mean,
            "frequency": freq,
            "tenure_days": tenure,
            "monetary_total": mean * (freq + 1),
            "bgnbd_expected_transactions": rng.gamma(2, 1, n),
            "bgnbd_p_no_purchase": rng.uniform(0, 1, n),
        }
    )


def test_blend_recovers_known_weights():
    X = _frame()
    c = candidates(X, "spend")
    truth = 0.6 * X["learned_col"] + 0.3 * c["BG/NBD + Gamma-Gamma"] + 20.0 * c["naive repeat rate"]
    y = np.random.default_rng(1).poisson(truth.to_numpy())
    w = Blend(_Fixed(), "spend").fit(X, y).weights()
    assert w["learned"] == pytest.approx(0.6, rel=0.1)
    assert w["BG/NBD + Gamma-Gamma"] == pytest.approx(0.3, rel=0.15)
    assert w["naive repeat rate"] == pytest.approx(20.0, rel=0.15)
    assert w["naive total rate"] < 1.0  # absent from the truth: (near) zero weight
    # The blend's total matches the window it was fitted on (Poisson deviance: sums match).
    assert Blend(_Fixed(), "spend").fit(X, y).predict(X).sum() == pytest.approx(y.sum(), rel=1e-3)


def test_blend_keeps_weights_around_a_refit_and_explains_the_learned_part():
    X = _frame(500)
    y = X["learned_col"].to_numpy()
    b = Blend(_Fixed(), "spend").fit(X, y)
    again = b.with_model(_Fixed())
    np.testing.assert_array_equal(again.weights_, b.weights_)
    assert list(b.contributions(X).columns) == ["learned_col", "bias"]
    assert "btyd_expected_spend" in b.features_ and b.features_[0] == "learned_col"


def test_baseline_only_serves_one_classical_model_scaled_to_the_window_total():
    X = _frame(300)
    y = np.full(300, 10.0)
    m = BaselineOnly(_Fixed(), "spend", "BG/NBD + Gamma-Gamma").fit(X, y)
    p = m.predict(X)
    assert p.sum() == pytest.approx(3000.0)
    ratio = p / X["btyd_expected_spend"].to_numpy()
    assert np.allclose(ratio, ratio[0])  # only the baseline, rescaled
    q = ChurnBlend(_Fixed(), learned_weight=0.0).predict_proba(X)[:, 1]
    np.testing.assert_allclose(q, X["bgnbd_p_no_purchase"])


@pytest.fixture(scope="module")
def training_set_small(tmp_path_factory):
    """A small simulated base: config, the churn task's data and a fitted churn model."""
    from conftest import TRAIN_CONFIG, training_set
    from customer_value.config import load_config
    from customer_value.modeling.gbm import ChurnModel
    from customer_value.pipelines.data import ensure_data, load_data
    from customer_value.pipelines.train import task_data

    root = tmp_path_factory.mktemp("serving")
    (root / "config.yaml").write_text(TRAIN_CONFIG.format(trials=1).replace("3000", "1500"))
    cfg = load_config(root / "config.yaml")
    ensure_data(cfg)
    tables = load_data(cfg).data
    ts = training_set(tables, tables.transactions["timestamp"].max(), cfg)
    data = task_data(cfg, ts).data["churn"]
    X, y = data.train[data.features], data.train["churned"]
    model = ChurnModel(params={"max_depth": 3}, n_estimators=40, random_state=0).fit(X, y, X, y)
    return cfg, data, model


def _rows(ours: dict, base: dict):
    rows = [{"task": "t", "model": "ours", "metric": k, "value": v} for k, v in ours.items()]
    rows += [{"task": "t", "model": "bg", "metric": k, "value": v} for k, v in base.items()]
    return rows


def test_gate_refuses_a_miscalibrated_model_and_accepts_within_tolerance():
    # Same ranking, much worse Brier: refused.
    v = versus_baselines(
        _rows({"roc_auc": 0.80, "brier": 0.25}, {"roc_auc": 0.78, "brier": 0.20}),
        "ours",
        ("roc_auc", "brier"),
        0.02,
    )
    assert list(v["verdict"]) == ["win", "loss"]
    # Brier 1 % worse, tolerance 2 % (relative): a tie, not a loss.
    v = versus_baselines(
        _rows({"roc_auc": 0.80, "brier": 0.202}, {"roc_auc": 0.78, "brier": 0.20}),
        "ours",
        ("roc_auc", "brier"),
        0.02,
    )
    assert list(v["verdict"]) == ["win", "tie"]
    # |aggregate error| compares magnitudes: -10 % beats +20 %.
    v = versus_baselines(
        _rows({"aggregate_error": -0.10}, {"aggregate_error": 0.20}), "ours", ("aggregate_error",)
    )
    assert v["verdict"].iloc[0] == "win" and v["baseline"].iloc[0] == "bg"
    # A rank metric 0.03 below the baseline with tolerance 0.02: a loss.
    v = versus_baselines(
        _rows({"normalized_gini": 0.70}, {"normalized_gini": 0.73}), "ours", ("normalized_gini",), 0.02
    )
    assert v["verdict"].iloc[0] == "loss"


def test_churn_task_serves_bgnbd_when_ours_loses(training_set_small):
    from customer_value.tasks.base import Assessment
    from customer_value.tasks.churn import BGNBD, ChurnTask

    config, data, model = training_set_small
    rows = _rows({"roc_auc": 0.60, "brier": 0.30}, {})
    rows += [
        {"task": "churn", "model": BGNBD, "metric": m, "value": v}
        for m, v in (("roc_auc", 0.8), ("brier", 0.2))
    ]
    rows = [dict(r, model="xgboost churn") if r["model"] == "ours" else r for r in rows]
    served = ChurnTask().serve(model, data, config, Assessment(rows, {}, None, {BGNBD: None}))
    assert isinstance(served.model, ChurnBlend) and served.model.learned_weight == 0.0
    assert "serving BG/NBD" in served.decision
    q = served.model.predict_proba(data.oot)[:, 1]
    np.testing.assert_allclose(q, data.oot["bgnbd_p_no_purchase"].fillna(0.5).clip(0, 1))
    # When ours wins, the refit on the serving windows is served.
    good = [
        dict(r, value=0.9 if r["metric"] == "roc_auc" else 0.1) if r["model"] == "xgboost churn" else r
        for r in rows
    ]
    served = ChurnTask().serve(model, data, config, Assessment(good, {}, None, {BGNBD: None}))
    assert served.model.learned_weight == 0.5 and "refitted" in served.decision
    # The refit learned the latest windows (a different model from the one judged), and the
    # served probability is the equal average of it and BG/NBD's.
    assert served.model.model is not model
    q = served.model.predict_proba(data.oot)[:, 1]
    learned = served.model.model.predict_proba(data.oot[model.features_])[:, 1]
    np.testing.assert_allclose(q, 0.5 * learned + 0.5 * data.oot["bgnbd_p_no_purchase"])


def test_serving_cutoffs_are_the_latest_labelled_windows():
    snaps = SnapshotConfig(n_snapshots=4, spacing_days=15, min_history_days=60, serving_snapshots=8)
    plan = plan_cutoffs("2010-12-01", "2011-09-09", 91, snaps, "churn")
    assert plan.oot_cutoff == pd.Timestamp("2011-06-10")
    assert plan.serve_cutoffs[-1] == plan.oot_cutoff
    assert len(plan.serve_cutoffs) == 8
    assert all(c + pd.Timedelta(days=91) <= pd.Timestamp("2011-09-09") for c in plan.serve_cutoffs)
    assert np.all(np.diff(plan.serve_cutoffs) == pd.Timedelta(days=15))
    # Training cutoffs stay purged: their labels end before the out-of-time window starts.
    assert all(c + pd.Timedelta(days=91) <= plan.oot_cutoff for c in plan.train_cutoffs)


def test_evaluate_metrics_and_verdicts_on_hand_made_numbers():
    y = np.array([0.0, 10.0, 0.0, 30.0])
    assert metric("aggregate_error", y, np.array([5.0, 5.0, 5.0, 5.0])) == pytest.approx(-0.5)
    assert metric("transactions_mae", np.array([1.0, 2.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)
    assert metric("normalized_gini", y, y) == pytest.approx(1.0)
    # Constant prediction: ties spread evenly, G(k) = k/4, Gini = 2·mean(G) − 1 = 1/4; perfect:
    # G = (.75, 1, 1, 1), Gini = .875 (METRICS.md; 0 only as n grows).
    assert metric("normalized_gini", y, np.ones(4)) == pytest.approx(0.25 / 0.875)
    table = pd.DataFrame(
        [
            ("c", "customer_value (served)", "brier", 0.19, 0.18, 0.20),
            ("c", "BG/NBD + Gamma-Gamma", "brier", 0.20, np.nan, np.nan),
            ("c", "customer_value (served)", "aggregate_error", 0.30, 0.2, 0.4),
            ("c", "naive total rate", "aggregate_error", -0.10, np.nan, np.nan),
        ],
        columns=["cal_end", "model", "metric", "value", "ci_low", "ci_high"],
    )
    v = verdicts(table).set_index("metric")
    assert v.loc["brier", "verdict"] == "win"
    assert v.loc["aggregate_error", "verdict"] == "loss"
    assert v.loc["aggregate_error", "best_classical"] == "naive total rate"


def test_seasonal_index_compares_the_same_two_windows_a_year_earlier():
    from customer_value.features.build import seasonal_index

    days = pd.date_range("2022-01-01", "2023-12-31", freq="D")
    # 10 a day, 25 a day from October to December: a Q4 season.
    daily = pd.Series(np.where(days.month >= 10, 25.0, 10.0), index=days)
    # Served window (2023-09-30, 2023-12-30]: a year earlier the 91 days after 2022-09-30 held
    # 25 a day (Q4) against 10 a day in the 91 days before it.
    assert seasonal_index(daily, "2023-09-30", 91) == pytest.approx(2.5)
    # Same season on both sides: no change.
    assert seasonal_index(daily, "2023-06-30", 30) == pytest.approx(1.0)
    # A whole-year window has no season; too little history gives none either.
    assert seasonal_index(daily, "2023-09-30", 365) is None
    assert seasonal_index(daily, "2022-12-01", 91) is None
    assert seasonal_index(None, "2023-09-30", 91) is None


class _Miscalibrated:
    """A fitted churn model whose probabilities are pushed to the extremes (ranking kept)."""

    def __init__(self, model):
        self.model = model
        self.features_ = model.features_
        self.params, self.best_iteration_, self.monotone = (
            model.params,
            model.best_iteration_,
            model.monotone,
        )

    def predict_proba(self, X):
        q = self.model.predict_proba(X)[:, 1]
        q = np.where(q > np.median(q), 0.999, 0.001)
        return np.column_stack([1 - q, q])


def test_a_deliberately_miscalibrated_churn_model_is_refused(training_set_small):
    from customer_value.tasks.churn import ChurnTask

    config, data, model = training_set_small
    config = config.model_copy(deep=True)
    config.serving.blend = False  # judged alone, as it would be served
    task = ChurnTask()
    bad = _Miscalibrated(model)
    a = task.assess(bad, data, config)
    served = task.serve(bad, data, config, a)
    assert isinstance(served.model, ChurnBlend) and served.model.learned_weight == 0.0
    assert "brier" in served.decision
    # The honest model (same ranking, real probabilities) averaged with BG/NBD is served.
    config.serving.blend = True
    ok = task.serve(model, data, config, task.assess(model, data, config))
    assert "serving the learned model" in ok.decision and ok.model.learned_weight == 0.5


def test_a_clv_model_with_wrong_totals_is_refused(training_set_small):
    from customer_value.modeling.blend import SpendAndCounts
    from customer_value.tasks.clv import CLVTask

    config, data, _ = training_set_small
    config = config.model_copy(deep=True)
    config.serving.blend = False
    clv = data_clv(config)
    task = CLVTask()

    class Inflated(_Fixed):
        features_ = ["btyd_expected_spend"]

        def predict(self, X):  # BG/NBD + GG's ranking, five times its total
            return 5 * np.nan_to_num(X["btyd_expected_spend"].to_numpy(float))

    bad = SpendAndCounts(Inflated(), None)
    served = task.serve(bad, clv, config, task.assess(bad, clv, config))
    assert isinstance(served.model.spend, BaselineOnly)
    assert "aggregate_error" in served.decision
    # Served totals are the latest window's (the baseline is scaled to it).
    y = clv.oot[clv.target].clip(lower=0)
    assert served.model.predict(clv.oot).sum() == pytest.approx(y.sum(), rel=1e-6)


def data_clv(config):
    """The CLV task's data on the same small base (its own label window)."""
    from conftest import training_set
    from customer_value.pipelines.data import load_data
    from customer_value.pipelines.train import task_data

    tables = load_data(config).data
    ts = training_set(tables, tables.transactions["timestamp"].max(), config)
    return task_data(config, ts).data["clv"]
