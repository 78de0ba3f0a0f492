"""Data expectations on the real UCI Online Retail log (skips when the shared copy is absent)."""

import pandas as pd
import pytest

from conftest import ONLINE_RETAIL, REPO
from customer_value.config import load_config
from customer_value.pipelines.data import load_data

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def loaded():
    from conftest import ONLINE_RETAIL

    if not ONLINE_RETAIL.exists():
        pytest.skip(f"shared Online Retail data not found at {ONLINE_RETAIL}")
    return load_data(
        load_config(REPO / "configs" / "online_retail.yaml", [f"data.transactions.path={ONLINE_RETAIL}"])
    )


def test_counts_before_and_after_filtering(loaded):
    facts = loaded.report.facts["transactions"]
    assert facts["rows_read"] == 541_909
    assert facts["customers_before_filtering"] == 4_372
    rep = loaded.report
    assert rep.dropped("transactions", "missing_customer_id") == 135_080
    assert rep.dropped("transactions", "exclude_products") == 1_920
    assert rep.dropped("transactions", "zero_amounts") == 33
    # 5,220 repeated lines are kept (duplicates: keep), as protocol R's truth keeps them.
    assert rep.dropped("transactions", "duplicates") == 0
    tx = loaded.data.transactions
    assert len(tx) == 541_909 - 135_080 - 1_920 - 33
    # Ids written as floats ("17850.0") are normalised.
    assert "17850" in set(tx["customer_id"]) and not tx["customer_id"].str.endswith(".0").any()


def test_cancellations_are_returns(loaded):
    tx = loaded.data.transactions
    returns = tx[tx["is_return"]]
    assert returns["order_id"].str.startswith("C").all()
    assert (returns["amount"] < 0).all()
    assert not tx.loc[~tx["is_return"], "order_id"].str.startswith("C").any()
    assert tx["timestamp"].min().isoformat() == "2010-12-01T08:26:00"
    assert tx["timestamp"].max().isoformat() == "2011-12-09T12:50:00"


def test_non_product_codes_are_excluded(loaded):
    codes = set(loaded.data.transactions["product_id"])
    assert not codes & {"POST", "DOT", "M", "C2", "BANK CHARGES", "AMAZONFEE", "CRUK", "D", "S"}
    assert not any(c.startswith("gift_0001_") for c in codes)


def test_labels_and_metrics_agree_with_protocol_r(loaded):
    """Our holdout labels and metrics equal ../shared/bench/protocol.py's (what scores R)."""
    import sys

    import numpy as np

    bench = REPO.parent / "shared" / "bench"
    if not (bench / "protocol.py").exists():
        pytest.skip("the shared protocol R scorer is not here")
    sys.path.insert(0, str(bench))
    try:
        import protocol as P
    finally:
        sys.path.remove(str(bench))
    from customer_value.features.build import build_feature_set
    from customer_value.features.labels import build_labels
    from customer_value.pipelines.evaluate import metric

    P.use("R")
    truth = P.holdout_targets()
    cfg = load_config(
        REPO / "configs" / "online_retail.yaml", [f"data.transactions.path={ONLINE_RETAIL}"]
    )
    fs = build_feature_set(loaded.data, P.CAL_END, cfg.features)
    f = fs.frame[fs.frame["purchase_days"] > 0]
    ids = f.index.astype(np.int64)
    assert set(ids) == set(truth.index)
    labels = build_labels(loaded.data.transactions, f.index, P.CAL_END, 91, 91)
    labels.index = ids
    labels = labels.reindex(truth.index)
    np.testing.assert_allclose(labels["future_revenue"], truth["holdout_spend"], atol=1e-6)
    np.testing.assert_array_equal(labels["churned"].astype(int), truth["churned"])
    np.testing.assert_array_equal(labels["future_transactions"], truth["holdout_transactions"])
    # Same predictions, same numbers, to the fourth decimal and beyond.
    rng = np.random.default_rng(0)
    spend, q = rng.gamma(1, 300, len(truth)), rng.uniform(0, 1, len(truth))
    theirs = P.score(truth, pd.DataFrame({"pred_spend": spend, "p_churn": q}, index=truth.index))
    y, c = truth["holdout_spend"], truth["churned"]
    for ours, key, yy, pp in (
        ("normalized_gini", "spend_norm_gini", y, spend),
        ("spearman", "spend_spearman", y, spend),
        ("top_decile_capture", "spend_top10_capture", y, spend),
        ("aggregate_error", "spend_agg_err", y, spend),
        ("roc_auc", "churn_ROC_AUC", c, q),
        ("pr_auc", "churn_PR_AUC", c, q),
        ("brier", "churn_Brier", c, q),
    ):
        assert metric(ours, yy, pp) == pytest.approx(theirs[key], abs=1e-9), ours
