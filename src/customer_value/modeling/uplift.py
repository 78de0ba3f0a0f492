"""Uplift: who responds *because of* a retention campaign, estimated from a randomized test.

The quantity is the conditional average treatment effect (CATE) of the campaign on a binary
outcome ``y`` (say, "still active at the end of the window"),

    τ(x) = P(y = 1 | x, treated) − P(y = 1 | x, control),   τ(x) ∈ [−1, 1],

learned by :class:`UpliftModel` with xgboost as a T-learner (two outcome models) or an X-learner
(Künzel, Sekhon, Bickel and Yu 2019, "Metalearners for estimating heterogeneous treatment effects
using machine learning", PNAS 116(10)). The campaign is randomized, so the propensity is a constant
(the treated share) rather than a model.

Individual effects are never observed, so rankings are judged on held-out experiment data with
the Qini curve (Radcliffe 2007): :func:`qini_curve`, :func:`qini_coefficient` (normalised as
scikit-uplift's ``qini_auc_score`` with ``negative_effect=True``), :func:`uplift_at_k`; and the
effect per group (persona, score decile) with a Neyman interval by :func:`group_effects`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["UpliftModel", "qini_curve", "qini_coefficient", "uplift_at_k", "group_effects"]

LEARNERS = ("two_model", "x")

#: Two-sided 95 % standard-normal quantile, Φ⁻¹(0.975).
_Z95 = 1.959963984540054


def _binary(name: str, values) -> np.ndarray:
    """``values`` as a 1-d int array of 0/1 (bools accepted); anything else is an error."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    if arr.dtype == bool:
        return arr.astype(int)
    try:
        num = arr.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold only 0/1 (or False/True) values.") from None
    if not np.isin(num, (0.0, 1.0)).all():
        bad = pd.unique(arr[~np.isin(num, (0.0, 1.0))])[:5]
        raise ValueError(f"{name} must hold only 0/1 (or False/True) values; found {list(bad)}.")
    return num.astype(int)


def _metric_inputs(y, treated, score=None) -> tuple[np.ndarray, ...]:
    """Validated (y, treated[, score]) for the metric functions."""
    y, treated = _binary("y", y), _binary("treated", treated)
    arrays = [y, treated]
    if score is not None:
        score = np.asarray(score, dtype=float)
        if score.ndim != 1:
            raise ValueError(f"score must be one-dimensional, got shape {score.shape}.")
        if not np.isfinite(score).all():
            # A NaN has no place in a ranking; silently sorting it first or last would move the curve.
            raise ValueError("score must be finite (no NaN or inf); drop or impute those rows first.")
        arrays.append(score)
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(
            f"y, treated and score must have equal lengths, got {[len(a) for a in arrays]}."
        )
    return tuple(arrays)


def _check_arms(treated: np.ndarray, where: str) -> None:
    if treated.sum() == 0 or treated.sum() == len(treated):
        missing = "treated" if treated.sum() == 0 else "control"
        raise ValueError(f"{where} has no {missing} customers; both arms are needed to measure uplift.")


def qini_curve(y, treated, score) -> pd.DataFrame:
    """The Qini curve of a ranking by ``score`` (highest first) on randomized-experiment data.

    For the top ``n`` customers,

        Q(n) = Y_T(n) − Y_C(n) · N_T(n) / N_C(n),

    where ``Y_T``/``Y_C`` count responders and ``N_T``/``N_C`` customers among the treated/control
    part of the top ``n``; the ratio term is 0 while ``N_C(n) = 0``. Q(n) is the incremental number
    of responders had all top-``n`` treated customers been compared with a control group scaled to
    their size.

    Tied scores have no order between them, so a tied group is entered at once: points are emitted
    only at the end of each group of equal scores (as scikit-learn's ``roc_curve`` and
    scikit-uplift's ``qini_curve`` do), plus the origin. The curve then does not depend on the order
    of the input rows.

    Parameters
    ----------
    y : array-like of 0/1
        Observed outcome.
    treated : array-like of bool or 0/1
        Arm of each customer.
    score : array-like of float
        The ranking score (predicted uplift); must be finite.

    Returns
    -------
    DataFrame
        ``n`` (int, customers targeted, from 0 to N) and ``qini`` (float), one row per point.

    Raises
    ------
    ValueError
        On unequal lengths, non-0/1 ``y`` or ``treated``, non-finite scores, or an empty arm.

    Examples
    --------
    >>> qini_curve([1, 0, 1, 0], [1, 0, 0, 1], [0.9, 0.5, 0.5, 0.1])
       n  qini
    0  0   0.0
    1  1   1.0
    2  3   0.5
    3  4   0.0
    """
    y, treated, score = _metric_inputs(y, treated, score)
    _check_arms(treated, "the data")
    order = np.argsort(-score, kind="stable")
    y, treated, score = y[order], treated[order], score[order]
    # Last index of each run of equal scores; cumulative sums there do not depend on the order
    # inside the run.
    ends = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    n = ends + 1
    n_t = np.cumsum(treated)[ends]
    n_c = n - n_t
    y_t = np.cumsum(y * treated)[ends]
    y_c = np.cumsum(y * (1 - treated))[ends]
    ratio = np.divide(n_t, n_c, out=np.zeros(len(ends)), where=n_c > 0)
    qini = y_t - y_c * ratio
    return pd.DataFrame({"n": np.r_[0, n].astype(int), "qini": np.r_[0.0, qini].astype(float)})


def _area(curve: pd.DataFrame) -> float:
    return float(np.trapezoid(curve["qini"].to_numpy(), curve["n"].to_numpy()))


def qini_coefficient(y, treated, score) -> float:
    """Area between the Qini curve and random targeting, as a share of the perfect ranking's.

    With ``A(c)`` the trapezoidal area under curve ``c`` and the random-targeting line running
    straight from (0, 0) to (N, Q(N)),

        qini_coefficient = (A(model) − A(random)) / (A(perfect) − A(random)).

    The perfect curve is scikit-uplift's ``perfect_qini_curve`` for a binary outcome with
    ``negative_effect=True``: the Qini curve of the oracle score ``y·t − y·(1 − t)``, i.e. treated
    responders first (score 1), then all non-responders of both arms as one tied group (score 0),
    control responders last (score −1). Q is flat at the treated responders' count across the
    non-responders whatever their order, so this is also the curve of "treated responders, treated
    non-responders, control non-responders, control responders". Hence this function equals
    ``sklift.metrics.qini_auc_score(y, score, treated)``.

    A perfect ranking scores 1, a random one about 0, a reversed one below 0 (not −1 in general:
    the curve is not symmetric under reversal because of the N_T/N_C scaling). Areas are signed: a
    curve that dips under the random line counts against the model.

    Parameters
    ----------
    y, treated, score
        As for :func:`qini_curve`.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`qini_curve`; also when the perfect ranking has no area over the random line
        (no treated responder and no control responder), where the ratio is undefined.

    Examples
    --------
    >>> y, t = [1, 0, 0, 1], [1, 1, 0, 0]
    >>> qini_coefficient(y, t, [4, 3, 2, 1])
    1.0
    >>> round(qini_coefficient(y, t, [1, 2, 3, 4]), 4)
    -0.1667
    """
    y, treated, score = _metric_inputs(y, treated, score)
    model = qini_curve(y, treated, score)
    perfect = qini_curve(y, treated, y * treated - y * (1 - treated))
    n_all, q_all = float(model["n"].iloc[-1]), float(model["qini"].iloc[-1])
    random_area = 0.5 * n_all * q_all
    best = _area(perfect) - random_area
    if best <= 0:
        raise ValueError(
            "the perfect ranking has no area above random targeting (no treated responders and no "
            "control responders?); the Qini coefficient is undefined."
        )
    return (_area(model) - random_area) / best


def uplift_at_k(y, treated, score, k: float) -> float:
    """Treated minus control response rate among the top ``ceil(k·N)`` customers by score.

    This is scikit-uplift's ``uplift_at_k`` with ``strategy="overall"``: the top group is cut from
    both arms together. Ties in the score are broken by input order (a stable sort), so the result
    is reproducible; break ties yourself if another order matters.

    Parameters
    ----------
    y, treated, score
        As for :func:`qini_curve`.
    k : float
        Share of customers to target, in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`qini_curve`; when ``k`` is outside (0, 1]; when either arm is empty in the top
        group (the rate difference would be undefined).

    Examples
    --------
    >>> uplift_at_k([1, 0, 1, 0], [1, 0, 0, 1], [0.9, 0.5, 0.5, 0.1], k=0.5)
    1.0
    """
    y, treated, score = _metric_inputs(y, treated, score)
    if not 0 < k <= 1:
        raise ValueError(f"k must be a share in (0, 1], got {k}.")
    # Rounding first keeps float noise from adding a customer: (0.1 + 0.2) * 10 = 3.0000000000000004.
    n_top = math.ceil(round(k * len(y), 9))
    top = np.argsort(-score, kind="stable")[:n_top]
    y_top, t_top = y[top], treated[top]
    if t_top.all() or not t_top.any():
        missing = "control" if t_top.all() else "treated"
        raise ValueError(
            f"the top {n_top} customers (k={k}) hold no {missing} customers; use a larger k."
        )
    return float(y_top[t_top == 1].mean() - y_top[t_top == 0].mean())


def group_effects(y, treated, groups) -> pd.DataFrame:
    """Difference in response rates (treated − control) per group, with a 95 % Neyman interval.

    The standard error is Neyman's conservative one for a randomized experiment,
    ``sqrt(p1(1 − p1)/n1 + p0(1 − p0)/n0)``, and the interval is ``effect ± 1.96·se`` (normal
    approximation; poor for small arms or rates near 0 or 1, where ``se`` can be 0). There is no
    total row; add one with ``groups`` set to a constant.

    Parameters
    ----------
    y, treated
        As for :func:`qini_curve`.
    groups : array-like
        The group of each customer (persona, decile, ...); NaN is not a group.

    Returns
    -------
    DataFrame
        Indexed by group (sorted), with ``customers``, ``treated``, ``control`` (counts), ``effect``,
        ``se``, ``low`` and ``high``.

    Raises
    ------
    ValueError
        On unequal lengths, non-0/1 ``y`` or ``treated``, missing groups, or a group without one of
        the two arms (its effect would be undefined).

    Examples
    --------
    >>> group_effects([1, 0, 1, 1], [1, 0, 1, 0], ["a", "a", "b", "b"])[["treated", "effect"]]
       treated  effect
    a        1     1.0
    b        1     0.0
    """
    y, treated = _metric_inputs(y, treated)
    _check_arms(treated, "the data")
    groups = pd.Series(np.asarray(groups, dtype=object)) if not isinstance(groups, pd.Series) else groups
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} values, y has {len(y)}.")
    if groups.isna().any():
        raise ValueError("groups has missing values; give them a group of their own first.")
    frame = pd.DataFrame({"g": groups.to_numpy(), "y": y, "t": treated})
    arms = frame.groupby(["g", "t"])["y"].agg(["size", "mean"]).unstack("t")
    # A group without one arm shows up as NaN after unstacking.
    empty = arms[arms.isna().any(axis=1)].index.tolist()
    if empty:
        raise ValueError(f"groups {empty[:5]} lack a treated or a control customer; merge or drop them.")
    n1, n0 = arms[("size", 1)].astype(int), arms[("size", 0)].astype(int)
    p1, p0 = arms[("mean", 1)], arms[("mean", 0)]
    effect = p1 - p0
    se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    out = pd.DataFrame(
        {
            "customers": n1 + n0,
            "treated": n1,
            "control": n0,
            "effect": effect,
            "se": se,
            "low": effect - _Z95 * se,
            "high": effect + _Z95 * se,
        }
    )
    out.index.name = None
    out.columns.name = None
    return out


class UpliftModel(BaseEstimator):
    """Conditional average treatment effect of a randomized campaign on a binary outcome.

    ``predict`` gives τ(x) = P(y=1 | x, treated) − P(y=1 | x, control), clipped to [−1, 1].

    * ``learner="two_model"`` (T-learner): one xgboost classifier per arm, μ1 and μ0;
      τ = μ1(x) − μ0(x).
    * ``learner="x"`` (X-learner, Künzel et al. 2019): the same stage-1 classifiers; imputed effects
      D1 = y − μ0(x) on the treated and D0 = μ1(x) − y on the control; a squared-error xgboost
      regressor per arm fits τ1 on D1 and τ0 on D0; τ = g·τ0(x) + (1 − g)·τ1(x). With g the
      propensity, the larger arm's outcome model (the better one) does more of the imputing. The
      campaign is randomized, so g is the treated share seen in ``fit`` (``propensity_``).

    Missing feature values (NaN) are allowed: xgboost learns a default direction at each split.

    Parameters
    ----------
    learner : {"x", "two_model"}
    n_estimators, max_depth, learning_rate, min_child_weight, subsample, colsample_bytree
        xgboost parameters shared by every sub-model.
    seed : int
        ``random_state`` of every sub-model; a fixed seed gives identical predictions.
    n_jobs : int
        Threads per sub-model.

    Attributes
    ----------
    features_ : list of str
        Feature columns seen in ``fit``, in order; ``predict`` selects them by name.
    propensity_ : float
        Share of treated customers in the training data.
    control_model_, treated_model_ : XGBClassifier
        Stage-1 outcome models μ0 and μ1.
    control_effect_model_, treated_effect_model_ : XGBRegressor or None
        Stage-2 effect models τ0 and τ1 (``None`` for the T-learner).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"tenure": rng.normal(size=400)})
    >>> t = rng.random(400) < 0.5
    >>> y = (rng.random(400) < 0.3 + 0.2 * t * (X["tenure"] > 0)).astype(int)
    >>> tau = UpliftModel(learner="x", n_estimators=50).fit(X, t, y).predict(X)
    >>> tau.shape, bool(np.abs(tau).max() <= 1)
    ((400,), True)
    """

    def __init__(
        self,
        learner="x",
        n_estimators=300,
        max_depth=3,
        learning_rate=0.05,
        min_child_weight=5.0,
        subsample=0.8,
        colsample_bytree=0.8,
        seed=0,
        n_jobs=1,
    ):
        self.learner = learner
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.seed = seed
        self.n_jobs = n_jobs

    def _xgb_params(self) -> dict:
        return {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "random_state": self.seed,
            "n_jobs": self.n_jobs,
            "tree_method": "hist",
            "verbosity": 0,
        }

    def _classifier(self, X: pd.DataFrame, y: np.ndarray) -> xgb.XGBClassifier:
        model = xgb.XGBClassifier(
            objective="binary:logistic", eval_metric="logloss", **self._xgb_params()
        )
        return model.fit(X, y)

    def _regressor(self, X: pd.DataFrame, target: np.ndarray) -> xgb.XGBRegressor:
        model = xgb.XGBRegressor(objective="reg:squarederror", **self._xgb_params())
        return model.fit(X, target)

    def fit(self, X: pd.DataFrame, treated, y) -> UpliftModel:
        """Fit the outcome models (and, for the X-learner, the effect models).

        Parameters
        ----------
        X : DataFrame
            Numeric or boolean features, one row per customer; NaN allowed.
        treated : array-like of bool or 0/1
            Whether the customer was in the campaign's treated arm.
        y : array-like of 0/1
            The outcome.

        Returns
        -------
        UpliftModel
            ``self``.

        Raises
        ------
        ValueError
            For an unknown ``learner``, unequal lengths, non-0/1 ``y`` or ``treated``, non-numeric
            features, or an arm that is empty or has only one outcome value.
        """
        if self.learner not in LEARNERS:
            raise ValueError(f"learner must be one of {LEARNERS}, got {self.learner!r}.")
        X = self._check_frame(X, list(X.columns) if isinstance(X, pd.DataFrame) else None)
        treated, y = _binary("treated", treated), _binary("y", y)
        if not len(X) == len(treated) == len(y):
            raise ValueError(
                f"X, treated and y have unequal lengths: {len(X)}, {len(treated)}, {len(y)}."
            )
        for arm, name in ((1, "treated"), (0, "control")):
            seen = np.unique(y[treated == arm])
            if len(seen) < 2:
                raise ValueError(
                    f"the {name} arm needs both outcome values (0 and 1) to fit its outcome model; "
                    f"it has {len(y[treated == arm])} customers with outcomes {seen.tolist()}."
                )
        self.features_ = list(X.columns)
        self.propensity_ = float(treated.mean())
        on_t, on_c = treated == 1, treated == 0
        self.treated_model_ = self._classifier(X[on_t], y[on_t])
        self.control_model_ = self._classifier(X[on_c], y[on_c])
        self.treated_effect_model_ = self.control_effect_model_ = None
        if self.learner == "x":
            d1 = y[on_t] - self.control_model_.predict_proba(X[on_t])[:, 1]
            d0 = self.treated_model_.predict_proba(X[on_c])[:, 1] - y[on_c]
            self.treated_effect_model_ = self._regressor(X[on_t], d1)
            self.control_effect_model_ = self._regressor(X[on_c], d0)
        return self

    @staticmethod
    def _check_frame(X, features: list[str] | None) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame with named features, got {type(X).__name__}.")
        missing = [f for f in features if f not in X.columns]
        if missing:
            raise ValueError(f"X lacks the features the model was fitted on: {missing[:10]}.")
        X = X[features]
        bad = [c for c in features if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise ValueError(f"features must be numeric or boolean; encode these first: {bad[:10]}.")
        return X

    def predict_arms(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Stage-1 outcome probabilities ``(p0, p1)``: P(y=1 | x) under control and under treatment.

        Parameters
        ----------
        X : DataFrame
            Must hold the columns in ``features_`` (others are ignored).

        Returns
        -------
        tuple of ndarray
            ``(p0, p1)``.
        """
        check_is_fitted(self, "features_")
        X = self._check_frame(X, self.features_)
        p0 = self.control_model_.predict_proba(X)[:, 1]
        p1 = self.treated_model_.predict_proba(X)[:, 1]
        return p0.astype(float), p1.astype(float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Estimated CATE τ(x) per row, in [−1, 1].

        Parameters
        ----------
        X : DataFrame
            Must hold the columns in ``features_`` (others are ignored).

        Returns
        -------
        ndarray
        """
        check_is_fitted(self, "features_")
        if self.learner == "two_model":
            p0, p1 = self.predict_arms(X)
            tau = p1 - p0
        else:
            X = self._check_frame(X, self.features_)
            tau0 = self.control_effect_model_.predict(X)
            tau1 = self.treated_effect_model_.predict(X)
            tau = self.propensity_ * tau0 + (1 - self.propensity_) * tau1
        return np.clip(np.asarray(tau, dtype=float), -1.0, 1.0)
