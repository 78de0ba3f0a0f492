"""The churn classifier and the CLV regressor: xgboost models with the scikit-learn contract.

Both keep the fitted booster for exact TreeSHAP contributions (``contributions``), take monotone
constraints so that behaviour stays sensible (a more recent purchase never raises churn risk; more
spend never lowers CLV), and stop early on a validation split that the caller carves from the
training snapshots, never on the out-of-time set.

* :class:`ChurnModel` calibrates its probabilities (isotonic or Platt) on a calibration split when
  the validation expected calibration error exceeds a tolerance.
* :class:`CLVModel` predicts future value over the label window with a Tweedie objective (one model
  for zero-inflated, heavy-tailed spend), or as a two-part model ``P(buy) × E[value | buy]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "ChurnModel",
    "CLVModel",
    "expected_calibration_error",
    "CHURN_MONOTONE",
    "CLV_MONOTONE",
]

#: +1: churn risk may only rise with the feature; -1: only fall.
CHURN_MONOTONE = {
    "days_since_last_purchase": 1,
    "overdue_ratio": 1,
    "recency_days": -1,
    "recency_share": -1,
    "p_alive": -1,
    "bgnbd_p_no_purchase": 1,
}
#: CLV may only rise with past spend.
CLV_MONOTONE = {
    "monetary_mean": 1,
    "monetary_total": 1,
    "revenue_per_year": 1,
    "monetary_repeat_mean": 1,
    "gg_expected_order_value": 1,
    "btyd_expected_spend": 1,
    "gross_margin_total": 1,
}


def expected_calibration_error(y, q, bins: int = 10) -> float:
    """Share-weighted mean |observed rate − mean prediction| over equal-width probability bins."""
    y = np.asarray(y, dtype=float)
    q = np.asarray(q, dtype=float)
    idx = np.minimum((q * bins).astype(int), bins - 1)
    err = 0.0
    for b in np.unique(idx):
        sel = idx == b
        err += sel.mean() * abs(y[sel].mean() - q[sel].mean())
    return float(err)


def _monotone(features: list[str], spec: dict[str, int]) -> tuple[int, ...]:
    return tuple(int(spec.get(f, 0)) for f in features)


def _base_params(params: dict, seed: int) -> dict:
    out = {"tree_method": "hist", "n_jobs": 2, "random_state": seed, "verbosity": 0}
    out.update(params)
    return out


class _BoosterMixin:
    def contributions(self, X: pd.DataFrame, approx: bool = False) -> pd.DataFrame:
        """TreeSHAP contributions in the model's margin space (log-odds or log-value).

        Columns are the features plus ``bias``; rows sum to the raw margin of the trees the model
        predicts with (up to the early-stopping round). ``approx=True`` uses xgboost's fast
        approximation (Saabas) instead of exact TreeSHAP. For the two-part CLV model these are the
        contributions of the P(buy) part (log-odds).
        """
        check_is_fitted(self, "features_")
        booster = self.explained_booster_
        dm = xgb.DMatrix(X[self.features_], feature_names=self.features_)
        values = booster.predict(
            dm, pred_contribs=True, approx_contribs=approx, iteration_range=(0, self.best_iteration_ + 1)
        )
        return pd.DataFrame(values, index=X.index, columns=[*self.features_, "bias"])


class ChurnModel(ClassifierMixin, _BoosterMixin, BaseEstimator):
    """Gradient-boosted churn probability with optional calibration.

    Parameters
    ----------
    params : dict
        xgboost parameters (depth, learning rate, regularisation, ...).
    n_estimators : int
        Upper bound on boosting rounds (early stopping picks the number).
    early_stopping_rounds : int
    monotone : dict
        Feature -> +1/-1 monotone constraints.
    calibration : {"isotonic", "sigmoid", "none"}
    calibration_tolerance : float
        Calibrate only when the expected calibration error on the calibration split exceeds it.
    random_state : int
    """

    def __init__(
        self,
        params=None,
        n_estimators=600,
        early_stopping_rounds=30,
        monotone=None,
        calibration="isotonic",
        calibration_tolerance=0.02,
        random_state=0,
    ):
        self.params = params
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.monotone = monotone
        self.calibration = calibration
        self.calibration_tolerance = calibration_tolerance
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y, X_val=None, y_val=None, X_cal=None, y_cal=None):
        """Fit with early stopping on (X_val, y_val); calibrate on (X_cal, y_cal) if needed.

        Without a validation set all ``n_estimators`` rounds are fitted (a refit with a round
        count chosen earlier).
        """
        self.features_ = list(X.columns)
        self.classes_ = np.array([0, 1])
        params = _base_params(dict(self.params or {}), self.random_state)
        stop = X_val is not None
        self.model_ = xgb.XGBClassifier(
            n_estimators=self.n_estimators,
            early_stopping_rounds=self.early_stopping_rounds if stop else None,
            objective="binary:logistic",
            eval_metric="logloss",
            monotone_constraints=_monotone(self.features_, self.monotone or {}),
            **params,
        )
        eval_set = [(X_val, np.asarray(y_val, dtype=int))] if stop else None
        self.model_.fit(X, np.asarray(y, dtype=int), eval_set=eval_set, verbose=False)
        self.best_iteration_ = int(self.model_.best_iteration) if stop else self.n_estimators - 1
        self.explained_booster_ = self.model_.get_booster()
        self.calibrator_ = None
        if X_cal is not None and self.calibration != "none":
            raw = self._raw(X_cal)
            self.ece_before_ = expected_calibration_error(y_cal, raw)
            if self.ece_before_ > self.calibration_tolerance:
                y_cal = np.asarray(y_cal, dtype=int)
                if self.calibration == "isotonic":
                    self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
                    self.calibrator_.fit(raw, y_cal)
                else:
                    self.calibrator_ = LogisticRegression().fit(_logit(raw)[:, None], y_cal)
            self.ece_after_ = expected_calibration_error(y_cal, self.predict_proba(X_cal)[:, 1])
        return self

    def _raw(self, X) -> np.ndarray:
        return self.model_.predict_proba(X[self.features_])[:, 1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns: P(stays), P(churns)."""
        check_is_fitted(self, "model_")
        q = self._raw(X)
        if self.calibrator_ is not None:
            if isinstance(self.calibrator_, IsotonicRegression):
                q = self.calibrator_.predict(q)
            else:
                q = self.calibrator_.predict_proba(_logit(q)[:, None])[:, 1]
        q = np.clip(q, 0.0, 1.0)
        return np.column_stack([1 - q, q])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the churn probability is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _logit(q):
    q = np.clip(q, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


class CLVModel(RegressorMixin, _BoosterMixin, BaseEstimator):
    """Future value over the label window (revenue or margin), never negative.

    Parameters
    ----------
    params : dict
        xgboost parameters; for ``tweedie`` it may hold ``tweedie_variance_power``.
    objective : {"tweedie", "two_part", "poisson"}
        ``poisson`` is for counts (expected purchase days).
    n_estimators, early_stopping_rounds, monotone, random_state
        As for :class:`ChurnModel`.
    """

    def __init__(
        self,
        params=None,
        objective="tweedie",
        n_estimators=600,
        early_stopping_rounds=30,
        monotone=None,
        random_state=0,
    ):
        self.params = params
        self.objective = objective
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.monotone = monotone
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y, X_val=None, y_val=None):
        """Fit with early stopping on the validation split (all rounds without one)."""
        self.features_ = list(X.columns)
        y = np.clip(np.asarray(y, dtype=float), 0, None)
        stop = X_val is not None
        y_val = np.clip(np.asarray(y_val, dtype=float), 0, None) if stop else None
        params = _base_params(dict(self.params or {}), self.random_state)
        mono = _monotone(self.features_, self.monotone or {})
        common = dict(
            n_estimators=self.n_estimators,
            early_stopping_rounds=self.early_stopping_rounds if stop else None,
            monotone_constraints=mono,
        )
        if self.objective in ("tweedie", "poisson"):
            self._fit_single(X, y, X_val, y_val, params, common)
        else:
            self._fit_two_part(X, y, X_val, y_val, params, common)
        return self

    def _fit_single(self, X, y, X_val, y_val, params, common) -> None:
        if self.objective == "poisson":
            params.pop("tweedie_variance_power", None)
            objective, metric = "count:poisson", "poisson-nloglik"
        else:
            params.setdefault("tweedie_variance_power", 1.5)
            objective = "reg:tweedie"
            metric = f"tweedie-nloglik@{params['tweedie_variance_power']}"
        self.model_ = xgb.XGBRegressor(objective=objective, eval_metric=metric, **common, **params)
        eval_set = None if X_val is None else [(X_val, y_val)]
        self.model_.fit(X, y, eval_set=eval_set, verbose=False)
        self.best_iteration_ = (
            self.n_estimators - 1 if X_val is None else int(self.model_.best_iteration)
        )
        self.explained_booster_ = self.model_.get_booster()

    def _fit_two_part(self, X, y, X_val, y_val, params, common) -> None:
        if X_val is None:  # no validation split: every round, both parts
            X_val, y_val = X, y
            common = dict(common, early_stopping_rounds=None)
        params.pop("tweedie_variance_power", None)
        self.buy_ = xgb.XGBClassifier(
            objective="binary:logistic", eval_metric="logloss", **common, **params
        )
        self.buy_.fit(X, (y > 0).astype(int), eval_set=[(X_val, (y_val > 0).astype(int))], verbose=False)
        pos, pos_val = y > 0, y_val > 0
        self.spend_ = xgb.XGBRegressor(
            objective="reg:gamma", eval_metric="gamma-nloglik", **common, **params
        )
        self.spend_.fit(X[pos], y[pos], eval_set=[(X_val[pos_val], y_val[pos_val])], verbose=False)
        stopped = common["early_stopping_rounds"] is not None
        self.best_iteration_ = int(self.buy_.best_iteration) if stopped else self.n_estimators - 1
        self.explained_booster_ = self.buy_.get_booster()

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected value over the label window."""
        check_is_fitted(self, "features_")
        X = X[self.features_]
        if self.objective in ("tweedie", "poisson"):
            return np.clip(self.model_.predict(X), 0, None)
        return np.clip(self.buy_.predict_proba(X)[:, 1] * self.spend_.predict(X), 0, None)
