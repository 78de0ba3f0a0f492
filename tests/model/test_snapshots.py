"""Training snapshots: cutoffs, short histories, projection, and recovery of the simulated truth."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from conftest import REPO, training_set
from customer_value.config import FeatureConfig, SnapshotConfig, load_config
from customer_value.errors import UserError
from customer_value.features.btyd import BTYDModels
from customer_value.features.build import (
    build_feature_set,
    check_feature_ranges,
    plan_cutoffs,
    projection_ratio,
)
from customer_value.features.catalog import catalog_markdown, feature_catalog
from customer_value.modeling.btyd import BetaGeoModel
from customer_value.synthetic import simulate_base
from customer_value.validate import ValidatedData

END = pd.Timestamp("2024-06-30")


@pytest.fixture(scope="module")
def sim():
    base = simulate_base(6000, seed=11)
    tx = base.transactions.sort_values(["customer_id", "timestamp"]).reset_index(drop=True)
    tx["is_return"] = tx["amount"] < 0
    return base, ValidatedData(tx, base.customers, base.interactions)


def test_plan_default_history():
    snaps = SnapshotConfig(spacing_days=45)
    clv = plan_cutoffs("2022-01-01", END, 365, snaps, "clv", "CLV predictions")
    assert clv.oot_cutoff == END - pd.Timedelta(days=365)
    assert clv.label_days == 365 and not clv.projected
    # Purged: every training label window ends on or before the out-of-time cutoff.
    assert all(c + pd.Timedelta(days=365) <= clv.oot_cutoff for c in clv.train_cutoffs)
    assert clv.train_cutoffs == [pd.Timestamp(d) for d in ("2022-04-02", "2022-05-17", "2022-07-01")]
    # Churn plans with its own, shorter window: recent snapshots.
    churn = plan_cutoffs("2022-01-01", END, 90, snaps, "churn")
    assert churn.oot_cutoff == pd.Timestamp("2024-04-01")
    assert churn.train_cutoffs == [pd.Timestamp(d) for d in ("2023-10-04", "2023-11-18", "2024-01-02")]
    unpurged = plan_cutoffs("2022-01-01", END, 365, SnapshotConfig(purge=False), "clv")
    assert unpurged.train_cutoffs[-1] == unpurged.oot_cutoff - pd.Timedelta(days=60)


def test_plan_short_history_projects_and_says_so():
    plan = plan_cutoffs(
        "2024-01-01", "2024-09-30", 270, SnapshotConfig(min_history_days=60), "clv", "CLV predictions"
    )
    assert plan.projected and plan.label_days == (273 - 60) // 2
    assert "projected to 270 days" in plan.notes[0]


def test_plan_too_short_history_gives_dates():
    with pytest.raises(UserError, match=r"2024-01-01 to 2024-03-01 \(60 days\).*at least 150 days"):
        plan_cutoffs("2024-01-01", "2024-03-01", 90, SnapshotConfig(), "churn")


def test_training_set_reads_nothing_after_as_of(sim):
    base, tables = sim
    cfg = load_config(REPO / "configs" / "default.yaml", ["snapshots.n_snapshots=3"])
    as_of = pd.Timestamp("2024-03-31")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        full = training_set(tables, as_of, cfg)
        tx = tables.transactions
        cut = ValidatedData(
            tx[tx["timestamp"] < as_of + pd.Timedelta(days=1)],
            tables.customers,
            tables.interactions[tables.interactions["timestamp"] < as_of + pd.Timedelta(days=1)],
        )
        past = training_set(cut, as_of, cfg)
    for task in ("churn", "clv"):
        a, b = full.tasks[task], past.tasks[task]
        pd.testing.assert_frame_equal(a.frame, b.frame)
        plan = a.plan
        assert plan.oot_cutoff + pd.Timedelta(days=plan.label_days) <= as_of
        assert set(a.frame["snapshot"]) <= {"train", "oot", "serve"}
        # Serving windows are fully labelled by as_of too (they are the refit's rows).
        assert max(plan.serve_cutoffs) + pd.Timedelta(days=plan.label_days) <= as_of
        assert set(a.serving["as_of"]) == set(plan.serve_cutoffs)
        assert a.oot["as_of"].nunique() == 1
        assert a.train["as_of"].nunique() == len(plan.train_cutoffs)
    assert "churned" in full.tasks["churn"].frame and "future_revenue" not in full.tasks["churn"].frame
    assert "future_revenue" in full.tasks["clv"].frame and "churned" not in full.tasks["clv"].frame
    assert "future_revenue" not in full.feature_columns and "nps_class" not in full.feature_columns
    # The same feature columns at every cutoff: the vocabulary is fixed at the earliest cutoff.
    assert list(full.tasks["churn"].frame[full.feature_columns].columns) == list(
        full.tasks["clv"].frame[full.feature_columns].columns
    )
    # The served base: every customer's features at as_of itself, as scoring at as_of builds them.
    pd.testing.assert_frame_equal(full.current, past.current)
    at = build_feature_set(tables, as_of, cfg.features, full.vocabulary).frame
    pd.testing.assert_frame_equal(full.current, at)
    bought = tables.transactions.loc[tables.transactions["timestamp"] <= as_of, "customer_id"]
    assert full.current.index.is_unique and set(bought.unique()) <= set(full.current.index)


def test_projection_ratio():
    rfm = pd.DataFrame(
        {
            "frequency": [0, 3, 10],
            "recency_days": [0.0, 100.0, 300.0],
            "tenure_days": [50.0, 200.0, 310.0],
        }
    )
    never_leave = BetaGeoModel()
    never_leave.r_, never_leave.alpha_, never_leave.a_, never_leave.b_ = 2.0, 50.0, 1e-4, 1e4
    ratio = projection_ratio(BTYDModels(never_leave, None), rfm, 90, 360)
    assert np.allclose(ratio, 4.0, rtol=1e-3)  # pure Poisson: linear in the window
    leavers = BetaGeoModel()
    leavers.r_, leavers.alpha_, leavers.a_, leavers.b_ = 2.0, 50.0, 2.0, 3.0
    ratio = projection_ratio(BTYDModels(leavers, None), rfm, 90, 360)
    assert ((ratio > 1) & (ratio < 4)).all()  # dropout: less than linear
    assert projection_ratio(BTYDModels(None, None), rfm, 90, 360).eq(4.0).all()


def test_feature_range_check_warns():
    train = pd.DataFrame({"tenure_days": np.arange(100.0), "frequency_per_year": np.ones(100)})
    score = pd.DataFrame({"tenure_days": np.arange(100.0) + 50, "frequency_per_year": np.ones(100)})
    with pytest.warns(UserWarning, match=r"tenure_days \(50%\)"):
        out = check_feature_ranges(train, score, ["tenure_days", "frequency_per_year"])
    assert out == {"tenure_days": 0.5}


def test_features_recover_the_simulated_truth(sim):
    base, tables = sim
    fs = build_feature_set(tables, END, FeatureConfig())
    truth = base.truth.set_index("customer_id").loc[fs.frame.index]
    auc = roc_auc_score(truth["alive_at_end"], fs.frame["p_alive"])
    assert auc > 0.80, auc
    rho = spearmanr(fs.frame["bgnbd_expected_transactions"], truth["future_purchase_days"]).statistic
    assert rho > 0.6, rho
    rho = spearmanr(fs.frame["btyd_expected_spend"], truth["future_revenue"]).statistic
    assert rho > 0.55, rho
    assert spearmanr(fs.frame["gg_expected_order_value"], truth["mean_order_value"]).statistic > 0.7
    answered = fs.frame["nps_last"].notna()
    assert (
        spearmanr(fs.frame.loc[answered, "nps_last"], truth.loc[answered, "satisfaction"]).statistic
        > 0.5
    )
    serial = truth["persona"] == "serial_returners"
    assert fs.frame.loc[serial, "return_rate"].mean() > 2 * fs.frame.loc[~serial, "return_rate"].mean()


def test_every_feature_is_in_the_catalog_and_the_page_is_current(sim):
    _, tables = sim
    frame = build_feature_set(tables, END, FeatureConfig()).frame
    cat = feature_catalog(frame.columns)
    assert len(cat) == frame.shape[1] and cat["definition"].str.len().gt(10).all()
    with pytest.raises(KeyError, match="not documented"):
        feature_catalog(["mystery_feature"])
    page = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert page == catalog_markdown(), "docs/features.md is stale: run `make catalog`"


def test_reference_rows_are_the_churn_snapshot_even_with_a_short_horizon(sim):
    """Personas, value and SHAP read the churn out-of-time rows, whichever window ends later."""
    from customer_value.pipelines.train import task_data

    _, tables = sim
    cfg = load_config(
        REPO / "configs" / "default.yaml",
        ["snapshots.n_snapshots=2", "features.horizon_days=60", "features.churn_window_days=90"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ts = training_set(tables, pd.Timestamp("2024-03-31"), cfg)
    assert ts.tasks["clv"].plan.oot_cutoff > ts.tasks["churn"].plan.oot_cutoff  # CLV's ends later
    snaps = task_data(cfg, ts)
    assert "churned" in snaps.reference.columns
    pd.testing.assert_frame_equal(snaps.reference, ts.tasks["churn"].oot.set_index("customer_id"))
    assert snaps.data["personas"].oot is snaps.reference
