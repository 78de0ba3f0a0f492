"""The drift base: determinism, the mechanisms it is built from, and truth the oracle can use.

Also pins the default (btyd) base to numbers recorded before the drift base was added, so adding a
second generator cannot move the first.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from customer_value.config import load_config
from customer_value.errors import ConfigError
from customer_value.pipelines.data import run_simulation
from customer_value.synthetic import DriftParams, simulate, simulate_base, simulate_drift

START = pd.Timestamp("2022-01-01")
END = pd.Timestamp("2024-06-30")
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def base():
    return simulate_drift(3000, seed=11)


@pytest.fixture(scope="module")
def truth(base):
    return base.truth.set_index("customer_id")


def _purchase_days(tx: pd.DataFrame) -> pd.DataFrame:
    sales = tx.loc[tx["amount"] > 0, ["customer_id", "timestamp"]]
    return sales.assign(day=sales["timestamp"].dt.normalize()).drop_duplicates(["customer_id", "day"])


def _rate_per_active_day(days: pd.DataFrame, truth: pd.DataFrame, lo: str, hi: str) -> float:
    """Purchase days per customer-day alive (acquired and not dropped out) in [lo, hi)."""
    lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
    n = ((days["day"] >= lo) & (days["day"] < hi)).sum()
    since = truth["first_purchase"].clip(lower=lo)
    until = truth["death_date"].fillna(hi).clip(upper=hi)
    exposure = ((until - since).dt.total_seconds() / 86400).clip(lower=0).sum()
    return n / exposure


# --- determinism and the default base ------------------------------------------------------------


def test_same_seed_same_base_other_seed_differs(base):
    again = simulate_drift(3000, seed=11)
    for name in ("transactions", "customers", "interactions", "truth", "future_transactions"):
        pd.testing.assert_frame_equal(getattr(base, name), getattr(again, name))
    other = simulate_drift(3000, seed=12)
    assert not base.transactions["amount"].equals(other.transactions["amount"])


def test_btyd_default_is_unchanged():
    """Numbers of ``simulate_base(3000, seed=7)`` recorded before the drift base existed."""
    b = simulate_base(3000, seed=7)
    tx, it, tr, fu, cu = b.transactions, b.interactions, b.truth, b.future_transactions, b.customers
    assert (len(tx), tx["order_id"].nunique(), len(it), len(fu)) == (64280, 26950, 5769, 26733)
    assert tx["amount"].sum() == pytest.approx(1923128.96, rel=1e-12)
    assert tx["cost"].sum() == pytest.approx(1308954.2999999998, rel=1e-12)
    assert int(tx["timestamp"].astype("int64").sum() // 10**9) == -2477239295
    assert it["score"].sum() == 19376.0
    assert tr["purchase_rate_per_day"].sum() == pytest.approx(58.76659508401886, rel=1e-12)
    assert tr["mean_order_value"].sum() == pytest.approx(266247.98961778614, rel=1e-12)
    assert tr["future_revenue"].sum() == pytest.approx(795017.94, rel=1e-12)
    assert (int(tr["future_purchase_days"].sum()), int(tr["death_date"].notna().sum())) == (8986, 1772)
    assert cu["acquisition_cost"].sum() == pytest.approx(78361.91, rel=1e-12)
    assert int(cu["referred_by"].notna().sum()) == 324
    assert tuple(tx.iloc[0].astype(str)) == (
        "C000001",
        "O00014852",
        "2022-01-01 07:44:19",
        "BEA-001",
        "beauty",
        "app",
        "1.0",
        "35.98",
        "15.27",
        "0.0",
    )
    # The dispatcher's default kind is the same code path.
    pd.testing.assert_frame_equal(simulate(n_customers=3000, seed=7).transactions, tx)


def _sim_config(make_config, name, kind, seed=3):
    return load_config(
        make_config(
            f"""
        project: {{seed: {seed}}}
        simulation:
          kind: {kind}
          n_customers: 600
          output_dir: {name}/raw
          truth_dir: {name}/truth
        data:
          transactions: {{path: {name}/raw/transactions.parquet}}
    """,
            name=f"{name}.yaml",
        )
    )


def _digests(paths):
    return {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in paths.items()}


def test_written_files_match_the_btyd_schemas_and_stop_at_the_end(make_config):
    _, drift_a = run_simulation(_sim_config(make_config, "drift_a", "drift"))
    _, drift_b = run_simulation(_sim_config(make_config, "drift_b", "drift"))
    _, btyd = run_simulation(_sim_config(make_config, "btyd", "btyd"))
    assert _digests(drift_a) == _digests(drift_b)  # byte-identical files for a seed
    assert set(drift_a) == set(btyd)
    for name in ("transactions", "customers", "interactions", "future_transactions"):
        d, b = pd.read_parquet(drift_a[name]), pd.read_parquet(btyd[name])
        assert list(d.columns) == list(b.columns), name
        assert d.dtypes.astype(str).to_dict() == b.dtypes.astype(str).to_dict(), name
    truth_d, truth_b = pd.read_parquet(drift_a["truth"]), pd.read_parquet(btyd["truth"])
    assert set(truth_b.columns) <= set(truth_d.columns)
    shared = list(truth_b.columns)
    assert truth_d[shared].dtypes.astype(str).to_dict() == truth_b.dtypes.astype(str).to_dict()
    # Nothing after the observation end reaches the data folder.
    tx = pd.read_parquet(drift_a["transactions"])
    assert tx["timestamp"].max() < END + DAY
    assert pd.read_parquet(drift_a["interactions"])["timestamp"].max() < END + DAY
    params = json.loads(drift_a["params"].read_text())
    assert params["kind"] == "drift" and params["drift"] == DriftParams().as_dict()
    assert "kind" not in json.loads(btyd["params"].read_text())  # the default's file is unchanged


def test_drift_overrides_are_validated_before_anything_is_written(make_config):
    path = _sim_config(make_config, "o", "drift").source_path
    for override, message in (
        ("simulation.drift.seasonal_amplitud=0.3", "unknown drift parameter"),
        ("simulation.drift.seasonal_amplitude=1.5", "seasonal_amplitude"),
        ("simulation.drift.weekly_pattern=[1, 1]", "weekly_pattern"),
    ):
        cfg = load_config(path, [override])
        with pytest.raises(ConfigError, match=message):
            run_simulation(cfg)
        assert not cfg.simulation.truth_dir.exists()
    flat = load_config(path, ["simulation.drift.seasonal_amplitude=0"])
    _, paths = run_simulation(flat)
    assert json.loads(paths["params"].read_text())["drift"]["seasonal_amplitude"] == 0


# --- the mechanisms ---------------------------------------------------------------------------------


def test_seasonality_is_visible(base, truth):
    days = _purchase_days(base.transactions)
    for year in (2022, 2023):
        q4 = _rate_per_active_day(days, truth, f"{year}-10-01", f"{year + 1}-01-01")
        summer = _rate_per_active_day(days, truth, f"{year}-06-01", f"{year}-09-01")
        # Amplitude 0.27: 1.74x peak to trough, ~1.5x between the quarter means (Q4 vs Jun-Aug).
        assert q4 > 1.3 * summer, (year, q4, summer)
    weekday = days["day"].dt.day_of_week.value_counts(normalize=True)
    assert weekday[5] > 1.12 * weekday[1]  # Saturday (1.15) over Tuesday (0.90), normalised


def test_seasonality_off_removes_it():
    flat = simulate_drift(3000, seed=11, params=DriftParams(seasonal_amplitude=0.0))
    t = flat.truth.set_index("customer_id")
    days = _purchase_days(flat.transactions)
    q4 = _rate_per_active_day(days, t, "2023-10-01", "2024-01-01")
    summer = _rate_per_active_day(days, t, "2023-06-01", "2023-09-01")
    assert 0.85 < q4 / summer < 1.15


def test_later_cohorts_differ_as_parameterised(base, truth):
    p = DriftParams()
    early = truth[truth["acquisition_years"] < 0.1]  # the existing base and the first weeks
    late = truth[truth["acquisition_years"] > 1.75]
    # Purchase rate: Gamma draws scaled by exp(cohort_rate_trend * years).
    gap = late["acquisition_years"].mean() - early["acquisition_years"].mean()
    ratio = late["base_purchase_rate_per_day"].mean() / early["base_purchase_rate_per_day"].mean()
    assert ratio == pytest.approx(np.exp(p.cohort_rate_trend * gap), rel=0.15)

    # Higher early dropout (the truth covers 90 days after every first purchase).
    def early_drop(t):
        return ((t["death_date"] - t["first_purchase"]) < pd.Timedelta(days=90)).mean()

    assert early_drop(late) > early_drop(early) + 0.1
    assert late["satisfaction_initial"].mean() < early["satisfaction_initial"].mean() - 0.1
    # Acquisition grows: new customers per day, same season (Feb-Jun) two years apart.
    first = truth["first_purchase"]

    def per_day(lo, hi):
        return ((first >= pd.Timestamp(lo)) & (first < pd.Timestamp(hi))).sum()

    growth = per_day("2024-02-01", "2024-07-01") / per_day("2022-02-01", "2022-07-01")
    assert 1.5 < growth < 1.5 * np.exp(2 * p.acquisition_growth)  # exp(0.4 * 2) = 2.2 expected


def test_dropout_follows_satisfaction_and_happens_between_purchases(base, truth):
    gone = truth[~truth["alive_at_end"]]
    stayed = truth[truth["alive_at_end"]]
    assert gone["satisfaction_at_dropout"].notna().all()
    assert gone["satisfaction_at_dropout"].mean() < stayed["satisfaction"].mean() - 0.5
    # Within a persona too: satisfaction, not only the persona mix, drives dropout.
    for _, rows in truth.groupby("persona"):
        g, s = rows[~rows["alive_at_end"]], rows[rows["alive_at_end"]]
        if len(g) > 30 and len(s) > 30:
            assert g["satisfaction_at_dropout"].mean() < s["satisfaction"].mean()
    # Not a coin flip at a purchase: the dropout comes days after the last purchase, and some
    # customers leave before any repeat purchase.
    sales = base.transactions[base.transactions["amount"] > 0]
    last = sales.groupby("customer_id")["timestamp"].max().reindex(gone.index)
    assert ((gone["death_date"] - last) > DAY).mean() > 0.9
    assert (gone["lifetime_repeats"] == 0).mean() > 0.1
    # Returns and tickets wear satisfaction down.
    returns = base.transactions[base.transactions["amount"] < 0].groupby("customer_id").size()
    drop = truth["satisfaction"] - truth["satisfaction_initial"]
    has_returns = returns.reindex(truth.index, fill_value=0) > 2
    assert drop[has_returns].mean() < drop[~has_returns].mean()
    assert spearmanr(truth["satisfaction"], truth["dropout_prob"]).statistic < -0.2


def test_spend_trends_and_inflation(base, truth):
    sales = base.transactions[base.transactions["amount"] > 0]
    orders = sales.assign(list_value=sales["amount"] + sales["discount"]).groupby("order_id")
    orders = orders.agg(
        customer_id=("customer_id", "first"), t=("timestamp", "first"), value=("list_value", "sum")
    )
    t = truth.reindex(orders["customer_id"])
    age = (orders["t"] - t["first_purchase"].to_numpy()).dt.total_seconds().to_numpy() / 86400 / 365.25
    # Remove the customer's level and trend: what is left is inflation (4 % a year).
    norm = orders["value"].to_numpy() / (
        t["base_mean_order_value"].to_numpy() * np.exp(t["spend_trend_per_year"].to_numpy() * age)
    )
    year = orders["t"].dt.year.to_numpy()
    assert np.mean(norm[year == 2024]) / np.mean(norm[year == 2022]) == pytest.approx(1.04**2, abs=0.05)
    # Per customer: the change of order value between the first and the later orders follows the trend.
    late = age > 0.75
    per = pd.DataFrame({"c": orders["customer_id"].to_numpy(), "late": late, "v": orders["value"]})
    mean = per.groupby(["c", "late"])["v"].mean().unstack().dropna()
    change = np.log(mean[True] / mean[False])
    assert spearmanr(change, truth.loc[change.index, "spend_trend_per_year"]).statistic > 0.2


# --- the ground truth -------------------------------------------------------------------------------


def test_future_purchases_respect_death_dates(base, truth):
    fut = base.future_transactions
    assert fut["timestamp"].min() >= END + DAY and fut["timestamp"].max() < END + 366 * DAY
    sales = fut[fut["amount"] > 0]
    death = truth["death_date"].reindex(sales["customer_id"]).to_numpy()
    assert not (pd.notna(death) & (sales["timestamp"].to_numpy() >= death)).any()
    obs_sales = base.transactions[base.transactions["amount"] > 0]
    death = truth["death_date"].reindex(obs_sales["customer_id"]).to_numpy()
    assert not (pd.notna(death) & (obs_sales["timestamp"].to_numpy() >= death)).any()
    assert (truth.loc[~truth["alive_at_end"], "future_purchase_days"] == 0).all()
    assert truth.loc[truth["future_purchase_days"] > 0, "alive_at_end"].all()
    assert (truth.loc[truth["alive_at_end"], "death_date"].dropna() > END + DAY).all()
    assert 0.25 < truth["alive_at_end"].mean() < 0.6


def test_truth_rate_and_order_value_are_the_future_expectations(base, truth):
    """For customers alive through the window, rate x 365 and its value match what they then did."""
    survivors = truth[truth["death_date"].isna()]
    expected_days = (survivors["purchase_rate_per_day"] * 365).sum()
    assert survivors["future_purchase_days"].sum() == pytest.approx(expected_days, rel=0.06)
    fut = base.future_transactions
    sales = fut[(fut["amount"] > 0) & fut["customer_id"].isin(survivors.index)]
    list_revenue = (sales["amount"] + sales["discount"]).sum()
    expected = (survivors["purchase_rate_per_day"] * 365 * survivors["mean_order_value"]).sum()
    assert list_revenue == pytest.approx(expected, rel=0.1)
    # A whole year of seasons averages to 1, and 1 - exp(-x) <= x: the rate is at most the base rate.
    ratio = truth["purchase_rate_per_day"] / truth["base_purchase_rate_per_day"]
    assert ratio.between(0.8, 1.01).all()
    assert (truth["mean_order_value"] > 0).all()
