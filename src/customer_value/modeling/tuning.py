"""Optuna (TPE, seeded) search over xgboost parameters, scored on the validation split.

The search never sees the out-of-time snapshot: the caller passes a training part and a validation
part carved from the training snapshots (by customer), and the objective scores the validation part.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import optuna
import pandas as pd

__all__ = ["tune", "suggest_params", "split_by_customer"]


def split_by_customer(customer_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """Boolean mask of the validation rows: a seeded random share of customers, all their rows.

    Splitting by customer keeps one customer's snapshots on one side, so validation scores are not
    flattered by the same person appearing in both.
    """
    uniq = np.sort(customer_ids.unique())
    rng = np.random.default_rng(seed)
    chosen = set(uniq[rng.random(len(uniq)) < share])
    return customer_ids.isin(chosen).to_numpy()


def suggest_params(trial: optuna.Trial, task: str) -> dict:
    """The search space (shared by churn and CLV; Tweedie power for the CLV regressor)."""
    params = {
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
    }
    if task == "clv_tweedie":
        params["tweedie_variance_power"] = trial.suggest_float("tweedie_variance_power", 1.1, 1.9)
    return params


def tune(
    task: str,
    fit: Callable[[dict], object],
    score: Callable[[object], float],
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    callbacks: Sequence = (),
) -> tuple[dict, optuna.Study]:
    """Maximise ``score(fit(params))`` over the search space with a seeded TPE sampler.

    Parameters
    ----------
    task : {"churn", "clv_tweedie", "clv_two_part"}
        Names the study and picks the search space.
    fit : callable
        Params -> fitted model.
    score : callable
        Fitted model -> validation score (higher is better).
    n_trials, timeout_s : int, float or None
        Budget. A timeout makes runs machine-dependent (the study stops at a trial that depends on
        speed and load), so reproducibility rests on ``n_trials``; a study the timeout cuts short
        says so with a warning.
    seed : int
        Seed of the TPE sampler.
    callbacks : sequence
        Optuna callbacks (e.g. the MLflow one that logs a nested run per trial).

    Returns
    -------
    (best params, study)
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", study_name=task, sampler=optuna.samplers.TPESampler(seed=seed)
    )

    def objective(trial):
        model = fit(suggest_params(trial, task))
        trial.set_user_attr("best_iteration", int(getattr(model, "best_iteration_", -1)))
        return score(model)

    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=list(callbacks))
    if len(study.trials) < n_trials:
        warnings.warn(
            f"{task}: the {timeout_s:g} s timeout stopped tuning after {len(study.trials)} of "
            f"{n_trials} trials; another run (or machine) may stop elsewhere and give other models",
            UserWarning,
            stacklevel=2,
        )
    return dict(study.best_params), study
