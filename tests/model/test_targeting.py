"""Targeting under a budget: exact values on hand-made predictions, and the plan's invariants."""

import numpy as np
import pandas as pd
import pytest

from customer_value.modeling.targeting import plan_contacts, return_curve, save_rates_for


def _preds(p, clv, personas=None, ids=None):
    n = len(p)
    return pd.DataFrame(
        {
            "customer_id": ids or [f"C{i}" for i in range(n)],
            "persona_id": [1] * n,
            "persona": personas or ["All"] * n,
            "churn_probability": p,
            "predicted_clv": clv,
        }
    )


def _plan(frame, budget, cost, default=0.5, rates=None):
    return plan_contacts(frame, budget, cost, save_rates_for(frame, default, rates or {}))


def test_gain_ranking_and_depths_by_hand():
    # value at risk 50, 40, 10, 0; saved at 0.5: 25, 20, 5, 0; net of a 5 contact: 20, 15, 0, -5
    frame = _preds([0.5, 1.0, 0.2, 0.0], [100.0, 40.0, 50.0, 10.0])
    plan = _plan(frame, budget=100.0, cost=5.0)
    assert plan.contacts["customer_id"].tolist() == ["C0", "C1"]
    assert plan.contacts["expected_net_gain"].tolist() == [20.0, 15.0]
    assert plan.contacts["cumulative_net_gain"].tolist() == [20.0, 35.0]
    assert plan.contacts["cumulative_cost"].tolist() == [5.0, 10.0]
    s = plan.summary
    # Net curve 0, 20, 35, 35, 30: the best depth is the first peak; still >= 0 after all four.
    assert (s["best_depth"], s["break_even_depth"]) == (2, 4)
    assert s["limited_by"] == "gain" and s["cost"] == 10.0 and s["expected_net_gain"] == 35.0
    assert s["expected_saved_value"] == 45.0

    small = _plan(frame, budget=9.99, cost=5.0)  # one contact fits, two do not
    assert small.contacts["customer_id"].tolist() == ["C0"]
    assert small.summary["limited_by"] == "budget" and small.summary["affordable_contacts"] == 1


def test_break_even_is_where_the_cumulative_return_turns_negative():
    # Saved 15, 1, 1, 1 at a contact cost of 5.
    curve = return_curve(np.array([10.0, -4.0, -4.0, -4.0]), contact_cost=5.0)
    assert curve["expected_net_gain"].tolist() == [0.0, 10.0, 6.0, 2.0, -2.0]
    assert curve["cost"].tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert curve["expected_saved_value"].tolist() == [0.0, 15.0, 16.0, 17.0, 18.0]
    frame = _preds([1.0, 0.6, 0.6, 0.6], [22.0, 10.0, 10.0, 10.0])  # saved 11, 3, 3, 3 at 0.5
    plan = _plan(frame, budget=1e6, cost=7.0)  # net 4, -4, -4, -4
    assert (plan.summary["best_depth"], plan.summary["break_even_depth"]) == (1, 2)
    assert plan.contacts["customer_id"].tolist() == ["C0"]


def test_nobody_is_contacted_when_every_contact_loses_money():
    plan = _plan(_preds([0.1, 0.2], [10.0, 10.0]), budget=1000.0, cost=5.0)
    assert plan.contacts.empty
    assert plan.summary["best_depth"] == 0 and plan.summary["break_even_depth"] == 0
    assert plan.summary["expected_net_gain"] == 0.0


def test_save_rate_per_persona_by_name_or_id_changes_the_order():
    frame = _preds([0.5, 0.5], [100.0, 80.0], personas=["Champions", "At risk"])
    frame["persona_id"] = [3, 4]
    plan = _plan(frame, 100.0, 1.0, default=0.1, rates={"At risk": 0.5})
    # Champions: 50 x 0.1 - 1 = 4; At risk: 40 x 0.5 - 1 = 19.
    assert plan.contacts["customer_id"].tolist() == ["C1", "C0"]
    assert plan.contacts["save_rate"].tolist() == [0.5, 0.1]
    by_id = _plan(frame, 100.0, 1.0, default=0.1, rates={"4": 0.5})
    pd.testing.assert_frame_equal(by_id.contacts, plan.contacts)
    with pytest.raises(KeyError):
        save_rates_for(frame, 0.1, {"Loyalists": 0.3})


def test_ties_are_broken_by_customer_id_and_the_plan_is_deterministic():
    frame = _preds([0.5] * 4, [40.0] * 4, ids=["b", "d", "a", "c"])
    plan = _plan(frame, budget=6.0, cost=2.0)
    assert plan.contacts["customer_id"].tolist() == ["a", "b", "c"]
    again = _plan(frame.sample(frac=1.0, random_state=3), budget=6.0, cost=2.0)
    pd.testing.assert_frame_equal(plan.contacts, again.contacts)


def test_plan_invariants_on_a_random_base():
    rng = np.random.default_rng(0)
    n = 2000
    frame = _preds(
        rng.uniform(0, 1, n).tolist(),
        rng.gamma(1.0, 80.0, n).tolist(),
        personas=rng.choice(["A", "B", "C"], n).tolist(),
    )
    plan = _plan(frame, budget=1234.0, cost=3.0, rates={"B": 0.05})
    c = plan.contacts
    assert c["cumulative_cost"].iloc[-1] <= 1234.0
    assert (c["expected_net_gain"] > 0).all()
    assert c["expected_net_gain"].is_monotonic_decreasing
    assert c["rank"].tolist() == list(range(1, len(c) + 1))
    # Every customer left out is worth no more than the last one in.
    out = set(frame["customer_id"]) - set(c["customer_id"])
    gains = frame.set_index("customer_id")
    left = gains.loc[sorted(out)]
    rate = np.where(left["persona"] == "B", 0.05, 0.5)
    assert (left["churn_probability"] * left["predicted_clv"] * rate - 3.0).max() <= c[
        "expected_net_gain"
    ].min() + 1e-9
    personas = plan.personas.set_index("persona")
    assert personas.loc[["A", "B", "C"], "contacted"].sum() == personas.loc["all", "contacted"]
    np.testing.assert_allclose(
        personas.loc[["A", "B", "C"], "expected_net_gain"].sum(), plan.summary["expected_net_gain"]
    )
    # The curves end where contacting the whole persona ends.
    curve = plan.curve
    for name in ["A", "B", "C"]:
        assert curve[curve["persona"] == name]["contacts"].max() == personas.loc[name, "customers"]


def test_invalid_terms_are_refused():
    frame = _preds([0.5], [10.0])
    for budget, cost in [(0.0, 1.0), (10.0, 0.0), (float("nan"), 1.0), (10.0, float("inf"))]:
        with pytest.raises(ValueError):
            _plan(frame, budget, cost)
