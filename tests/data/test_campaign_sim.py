"""The simulated campaign: randomized, both potential outcomes known, the log consistent with them."""

import numpy as np
import pandas as pd
import pytest

from customer_value.features.labels import build_labels
from customer_value.synthetic import CAMPAIGN_EFFECTS, CampaignParams, add_campaign, simulate_base

WINDOW = 90


@pytest.fixture(scope="module")
def pair():
    base = simulate_base(3_000, seed=11)
    return base, add_campaign(base, CampaignParams(window_days=WINDOW), seed=11)


def test_only_caused_orders_are_added(pair):
    base, camp = pair
    truth = camp.truth.set_index("customer_id")
    added = camp.transactions[camp.transactions["order_id"].str.startswith("C")]
    rest = camp.transactions[~camp.transactions["order_id"].str.startswith("C")]
    pd.testing.assert_frame_equal(rest.reset_index(drop=True), base.transactions)
    saved = truth["campaign_y1"].fillna(False) & ~truth["campaign_y0"].fillna(False)
    assert set(added["customer_id"]) == set(saved[saved].index)
    assert truth.loc[saved[saved].index, "campaign_treated"].all()  # controls are never moved
    assert (added["amount"] > 0).all()
    first = camp.campaigns["date"].iloc[0]
    assert first == pd.Timestamp("2024-06-30") - pd.Timedelta(days=WINDOW - 1)
    assert added["timestamp"].between(first, first + pd.Timedelta(days=WINDOW)).all()
    assert added.groupby("customer_id")["order_id"].nunique().eq(1).all()  # one order each
    # Every other table and the ground-truth future are the base's own.
    pd.testing.assert_frame_equal(camp.customers, base.customers)
    pd.testing.assert_frame_equal(camp.future_transactions, base.future_transactions)


def test_the_log_shows_each_arms_potential_outcome(pair):
    """Labels built from the log (METRICS.md's churn window, as_of = the day before the contact)
    equal y1 for contacted and y0 for held-back customers: the simulator's truth is the data's."""
    _, camp = pair
    c = camp.campaigns
    as_of = c["date"].iloc[0] - pd.Timedelta(days=1)
    labels = build_labels(camp.transactions, pd.Index(c["customer_id"]), as_of, WINDOW, WINDOW)
    truth = camp.truth.set_index("customer_id").loc[c["customer_id"]]
    expected = np.where(c["treated"], truth["campaign_y1"], truth["campaign_y0"]).astype(bool)
    np.testing.assert_array_equal(~labels["churned"].to_numpy(), expected)


def test_assignment_is_random_and_effects_are_known(pair):
    base, camp = pair
    c = camp.campaigns
    first = c["date"].iloc[0]
    acquired = base.transactions.loc[base.transactions["timestamp"] < first, "customer_id"].unique()
    assert set(c["customer_id"]) == set(acquired)  # everyone with a purchase before the contact
    assert abs(c["treated"].mean() - 0.5) < 3 * np.sqrt(0.25 / len(c))
    truth = camp.truth.set_index("customer_id").loc[c["customer_id"]]
    q = truth["persona"].map(CAMPAIGN_EFFECTS)
    np.testing.assert_allclose(truth["campaign_effect"], q * ~truth["campaign_y0"].astype(bool))
    assert (c["cost"] == np.where(c["treated"], 1.0, 0.0)).all()
    # Randomization: the arms do not differ in what the customers would have done anyway.
    y0 = truth["campaign_y0"].astype(float)
    t = c["treated"].to_numpy()
    se = np.sqrt(y0[t].var() / t.sum() + y0[~t].var() / (~t).sum())
    assert abs(y0[t].mean() - y0[~t].mean()) < 4 * se


def test_same_seed_same_campaign_and_no_campaign_without_asking(pair):
    base, camp = pair
    again = add_campaign(base, CampaignParams(window_days=WINDOW), seed=11)
    pd.testing.assert_frame_equal(again.campaigns, camp.campaigns)
    pd.testing.assert_frame_equal(again.transactions, camp.transactions)
    other = add_campaign(base, CampaignParams(window_days=WINDOW), seed=12)
    assert not other.campaigns["treated"].equals(camp.campaigns["treated"])
    assert base.campaigns is None and "campaign_y0" not in base.truth


def test_campaign_outside_the_period_is_refused(pair):
    base, _ = pair
    with pytest.raises(ValueError, match="outside the observed period"):
        add_campaign(base, CampaignParams(date=pd.Timestamp("2030-01-01").date()), seed=1)


def _campaign_config(make_config, tmp_path, campaign: str):
    from customer_value.config import load_config

    return load_config(
        make_config(
            f"""
        project: {{seed: 3}}
        simulation:
          n_customers: 400
          output_dir: {tmp_path}/raw
          truth_dir: {tmp_path}/truth
          campaign: {campaign}
        data: {{transactions: {{path: {tmp_path}/raw/transactions.parquet}}}}
        """
        )
    )


def test_simulation_writes_the_campaign_with_partial_effects(make_config, tmp_path):
    from customer_value.pipelines.data import run_simulation

    cfg = _campaign_config(make_config, tmp_path, "{date: 2024-03-01, effects: {bargain_hunters: 0.9}}")
    base, paths = run_simulation(cfg)
    written = pd.read_parquet(paths["campaigns"])
    assert written["date"].unique().tolist() == [pd.Timestamp("2024-03-01")]
    assert base.params["campaign"]["date"] == "2024-03-01"
    effects = base.params["campaign"]["effects"]
    assert effects["bargain_hunters"] == 0.9  # the override
    assert effects["loyal_regulars"] == CAMPAIGN_EFFECTS["loyal_regulars"]  # the rest keep theirs


@pytest.mark.parametrize(
    "campaign, fragment",
    [
        ("{effects: {bargain_hunter: 0.5}}", "unknown persona(s): bargain_hunter"),
        ("{effects: {champions: 1.5}}", "between 0 and 1"),
        ("{date: 2030-01-01}", "must fall after start_date"),
        ("{treat_share: 1}", "treat_share"),
    ],
)
def test_bad_campaign_settings_are_refused_before_simulating(make_config, tmp_path, campaign, fragment):
    from customer_value.errors import ConfigError
    from customer_value.pipelines.data import run_simulation

    with pytest.raises(ConfigError, match=None) as err:
        run_simulation(_campaign_config(make_config, tmp_path, campaign))
    assert fragment in str(err.value)
    assert not (tmp_path / "raw").exists()
