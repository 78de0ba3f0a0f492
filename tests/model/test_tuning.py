"""The Optuna study: the trial count alone stops it by default; a timeout that cuts it says so."""

import time

import pytest

from customer_value.config import TuningConfig
from customer_value.modeling.tuning import tune


def test_trial_count_alone_stops_the_study_by_default():
    assert TuningConfig().timeout_s is None
    _, study = tune("churn", lambda p: p, lambda p: -p["learning_rate"], 7, None, seed=3)
    assert len(study.trials) == 7
    again, _ = tune("churn", lambda p: p, lambda p: -p["learning_rate"], 7, None, seed=3)
    assert again == study.best_params  # seeded TPE: same trials, same best


def test_a_timeout_that_cuts_the_study_warns():
    def slow_fit(params):
        time.sleep(0.05)
        return params

    # 0.01 s cannot hold 50 trials of 0.05 s each on any machine: the cut is certain.
    with pytest.warns(UserWarning, match=r"stopped tuning after \d+ of 50 trials"):
        tune("churn", slow_fit, lambda p: 0.0, 50, 0.01, seed=0)
