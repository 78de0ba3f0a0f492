"""Persona quality by numbers: stability between refits and recovery of the simulated personas.

The simulated base knows each customer's true persona. A supervised classifier on the same
features, out of sample, gives the ceiling of what those features can tell apart; the persona
model (no labels) is judged against it. ``benchmarks/bench_personas.py`` compares spaces and
algorithms on the full default base; this test pins the shipped defaults on a smaller one.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from conftest import simulated_features
from customer_value.config import PersonaConfig
from customer_value.modeling.personas import PersonaModel


@pytest.fixture(scope="module")
def base():
    sim, (frame,) = simulated_features(6000, 31, "2024-03-31")
    truth = sim.truth.set_index("customer_id")["persona"].reindex(frame.index)
    return frame, truth


def _model(cfg: PersonaConfig, seed: int) -> PersonaModel:
    return PersonaModel(
        features=cfg.features,
        k_min=cfg.k_min,
        k_max=cfg.k_max,
        stability_bootstraps=2,
        silhouette_sample=2000,
        min_share=cfg.min_share,
        k_tolerance=cfg.k_tolerance,
        min_stability=cfg.min_stability,
        random_state=seed,
    )


def test_shipped_personas_recover_the_truth_against_a_ceiling_and_are_stable(base):
    frame, truth = base
    cfg = PersonaConfig()
    model = _model(cfg, 0).fit(frame)
    ari = adjusted_rand_score(truth, model.predict(frame))
    # The ceiling: what the same inputs (the features and the purchase days that weigh the
    # shrinkage) can tell apart with the labels, out of sample.
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    clf = HistGradientBoostingClassifier(max_iter=150, random_state=0)
    inputs = frame[model.features_]
    ceiling = adjusted_rand_score(truth, cross_val_predict(clf, inputs, truth, cv=folds))
    # Before this issue (RFM + tenure + recency, best silhouette + stability): ARI 0.20, 40 % of
    # its ceiling on the default base. The goal is 80 % of the ceiling.
    assert ari >= 0.40 and ari / ceiling >= 0.80, (ari, ceiling)
    # Stability: a refit on a bootstrap sample with another seed labels customers alike.
    rng = np.random.default_rng(1)
    boot = frame.iloc[rng.choice(len(frame), size=len(frame), replace=True)]
    refit = _model(cfg, 1).fit(boot)
    assert adjusted_rand_score(model.predict(frame), refit.predict(frame)) >= 0.8
