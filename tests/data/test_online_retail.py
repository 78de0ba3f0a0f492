"""Data expectations on the real UCI Online Retail log (skips when the shared copy is absent)."""

import pytest

from conftest import REPO
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
    assert rep.dropped("transactions", "duplicates") == 5_220
    tx = loaded.data.transactions
    assert len(tx) == 541_909 - 135_080 - 1_920 - 33 - 5_220
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
