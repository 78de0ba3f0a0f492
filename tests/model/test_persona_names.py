"""Persona names claim only what their personas' profiles show, on every data set of the suite.

The claims are re-stated here, independently of :mod:`customer_value.modeling.persona_names`, and
checked against medians (means for shares) computed from the customers themselves: a name whose
word is not backed by its persona's numbers fails, whatever the naming code believes.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from customer_value.config import FeatureConfig, PersonaConfig, load_config
from customer_value.features.build import build_feature_set
from customer_value.modeling.persona_names import name_personas
from customer_value.modeling.personas import NAMED_FEATURES, PersonaModel
from customer_value.pipelines.data import load_data
from customer_value.synthetic import simulate_base
from customer_value.validate import ValidatedData

SHARES = {"discount_share", "return_rate"}


def _stats(frame: pd.DataFrame, col: str) -> float:
    return float(frame[col].mean() if col in SHARES else frame[col].median())


def _claim(word: str, p: dict, b: dict, everyone: dict[str, dict]) -> bool:
    """Whether one claim holds for persona stats ``p`` against base stats ``b``."""
    not_new = {k: v for k, v in everyone.items() if not v["tenure_days"] <= 0.5 * b["tenure_days"]}
    rules = {
        "new": lambda: p["tenure_days"] <= 0.5 * b["tenure_days"],
        "frequent": lambda: p["frequency_per_year"] > b["frequency_per_year"],
        "infrequent": lambda: p["frequency_per_year"] <= b["frequency_per_year"],
        "recent": lambda: p["days_since_last_purchase"] <= b["days_since_last_purchase"],
        "lapsed": lambda: p["days_since_last_purchase"] >= 1.5 * b["days_since_last_purchase"],
        "high spend": lambda: p["revenue_per_year"] > b["revenue_per_year"],
        "low spend": lambda: p["revenue_per_year"] < b["revenue_per_year"],
        "big baskets": lambda: p["monetary_mean"] > b["monetary_mean"],
        "big ticket": lambda: p["monetary_mean"] >= 1.5 * b["monetary_mean"],
        "small baskets": lambda: p["monetary_mean"] < b["monetary_mean"],
        "discount-driven": lambda: (
            p["discount_share"] > 0 and p["discount_share"] >= 1.5 * b["discount_share"]
        ),
        "returns a lot": lambda: p["return_rate"] > 0 and p["return_rate"] >= 2 * b["return_rate"],
        "long-standing": lambda: p["tenure_days"] > b["tenure_days"],
        "broad range": lambda: p["distinct_categories"] > b["distinct_categories"],
        "leads on value": lambda: (
            p["revenue_per_year"] >= max(v["revenue_per_year"] for v in everyone.values())
        ),
        "leads on recency": lambda: (
            p in not_new.values()
            and p["days_since_last_purchase"]
            <= min(v["days_since_last_purchase"] for v in not_new.values())
        ),
    }
    return bool(rules[word]())


ARCHETYPE_CLAIMS = {
    "New customers": ["new"],
    "Champions": ["leads on value", "leads on recency", "frequent", "high spend"],
    "Loyal regulars": ["frequent", "recent"],
    "Big-ticket occasionals": ["big ticket", "infrequent"],
    "Bargain hunters": ["discount-driven"],
    "Serial returners": ["returns a lot"],
    "At risk": ["high spend", "lapsed"],
    "Hibernating": ["lapsed"],
    "Occasional buyers": ["infrequent"],
    "Regular buyers": ["frequent"],
}


def check_names(frame: pd.DataFrame, names: pd.Series) -> list[str]:
    """Every claim of every name, checked on the customers' own numbers; the failures."""
    cols = [c for c in frame.columns]
    base = {c: _stats(frame, c) for c in cols}
    everyone = {n: {c: _stats(g, c) for c in cols} for n, g in frame.groupby(names)}
    failures = []
    for name, p in everyone.items():
        archetype, _, rest = name.partition(", ")
        assert archetype in ARCHETYPE_CLAIMS, f"unknown archetype in {name!r}"
        words = list(ARCHETYPE_CLAIMS[archetype])
        for q in rest.split(" and ") if rest else []:
            m = re.fullmatch(r"(more|less) (.+)", q)
            if m:  # a comparative: above (below) every other persona of the same archetype
                col = m.group(2).replace(" ", "_")
                rivals = [v[col] for n, v in everyone.items() if n != name and n.startswith(archetype)]
                ok = p[col] > max(rivals) if m.group(1) == "more" else p[col] < min(rivals)
                if not ok:
                    failures.append(f"{name}: {q}")
                continue
            words.append(q)
        failures += [f"{name}: {w}" for w in words if not _claim(w, p, base, everyone)]
    return failures


def _assert_truthful(frame: pd.DataFrame, names: pd.Series) -> None:
    unique = names.unique()
    assert not [n for n in unique if re.search(r"\d", n)], f"numbered names: {list(unique)}"
    assert check_names(frame, names) == []


FEATURES = list(PersonaConfig().features)
NAMED = list(NAMED_FEATURES)  # what names speak of (clustered or not)


def _fit_names(frame: pd.DataFrame, **kw) -> pd.Series:
    features = [f for f in FEATURES if f in frame.columns]
    model = PersonaModel(features=features, stability_bootstraps=1, random_state=0, **kw).fit(frame)
    assert len(set(model.names_)) == len(model.names_)
    return model.predict_names(frame)


# -- tiny hand-made bases --------------------------------------------------------------------------
def _hand_made(rows: list[tuple], copies: int = 20, seed: int = 0) -> pd.DataFrame:
    """``copies`` jittered customers per archetype row (revenue, frequency, days, tenure, aov, ...)."""
    rng = np.random.default_rng(seed)
    out = []
    for r in rows:
        base = np.array(r, dtype=float)
        jitter = base * rng.uniform(0.95, 1.05, size=(copies, len(base)))
        out.append(jitter)
    cols = [
        "revenue_per_year",
        "frequency_per_year",
        "days_since_last_purchase",
        "tenure_days",
        "monetary_mean",
        "distinct_categories",
        "discount_share",
        "return_rate",
    ]
    return pd.DataFrame(np.vstack(out), columns=cols)


HAND_MADE = {
    "classic": [
        (4000, 20, 10, 700, 200, 6, 0.05, 0.02),
        (600, 8, 30, 600, 75, 4, 0.10, 0.05),
        (100, 0.5, 300, 700, 200, 1, 0.05, 0.03),
        (50, 1, 500, 900, 50, 1, 0.10, 0.05),
        (300, 2, 40, 40, 150, 2, 0.10, 0.04),
    ],
    "all alike but two": [
        (500, 5, 60, 400, 100, 3, 0.10, 0.05),
        (520, 5.2, 62, 410, 102, 3, 0.10, 0.05),
        (480, 4.8, 58, 390, 98, 3, 0.10, 0.05),
        (900, 9, 20, 800, 100, 5, 0.40, 0.30),
    ],
    "occasional only": [
        (100, 0, 300, 500, 100, 1, 0.0, 0.0),
        (60, 0, 500, 800, 60, 1, 0.0, 0.0),
        (200, 0, 100, 300, 200, 2, 0.0, 0.0),
        (30, 0, 700, 900, 30, 1, 0.0, 0.0),
    ],
}


@pytest.mark.parametrize("case", sorted(HAND_MADE))
def test_names_are_true_on_hand_made_bases(case):
    frame = _hand_made(HAND_MADE[case])
    k = len(HAND_MADE[case])
    _assert_truthful(frame, _fit_names(frame, k_min=k, k_max=k, min_share=0.0))


def test_names_on_profiles_that_differ_only_off_the_named_traits():
    """Personas alike on every named trait still get unique, true (comparative) names."""
    cols = [*NAMED, "weekend_share"]
    profile = pd.DataFrame(
        [[5, 500, 100, 60, 400, 3, 0.1, 0.05, w] for w in (0.1, 0.5, 0.9)], columns=cols
    )
    overall = profile.median()
    names = name_personas(profile, overall)
    assert len(set(names)) == 3 and not any(re.search(r"\d", n) for n in names)
    assert names[:2] == ["Occasional buyers", "Occasional buyers, recent"]  # a tie is not above
    # Every true qualifier is taken: the trait that sets the third apart, compared.
    assert names[2] == "Occasional buyers, more weekend share"


def test_a_kept_name_is_dropped_when_its_claims_no_longer_hold():
    cols = ["revenue_per_year", "frequency_per_year", "days_since_last_purchase", "tenure_days"]
    profile = pd.DataFrame([[400, 10, 20, 500], [50, 1, 400, 700]], columns=cols)
    overall = pd.Series([100, 4, 100, 400], index=cols)
    # Persona 1 was "Champions" last time, but now it lapsed: the name must go.
    names = name_personas(profile, overall, keep={0: "Hibernating", 1: "Champions"})
    assert names == ["Champions", "Hibernating"]
    assert name_personas(profile, overall, keep={0: "Loyal regulars"})[0] == "Loyal regulars"


# -- the simulated base and Online Retail ----------------------------------------------------------
@pytest.fixture(scope="module")
def simulated_features() -> pd.DataFrame:
    base = simulate_base(4000, seed=11)
    tables = ValidatedData(base.transactions, base.customers, base.interactions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_feature_set(tables, pd.Timestamp("2024-03-31"), FeatureConfig()).frame


def test_names_are_true_on_the_simulated_base(simulated_features):
    _assert_truthful(simulated_features[NAMED], _fit_names(simulated_features))


def test_names_are_true_on_online_retail(online_retail_path):
    path = online_retail_path
    cfg = load_config(REPO / "configs" / "online_retail.yaml", [f"data.transactions.path={path}"])
    tables = load_data(cfg).data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        frame = build_feature_set(tables, pd.Timestamp("2011-09-09"), cfg.features).frame
    features = [f for f in FEATURES if f in frame.columns]
    model = PersonaModel(features=features, stability_bootstraps=1, random_state=0).fit(frame)
    names = model.predict_names(frame)
    assert len(set(model.names_)) == model.k_
    _assert_truthful(frame[[c for c in NAMED if c in frame.columns]], names)
