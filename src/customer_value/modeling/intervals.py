"""Split-conformal prediction intervals for CLV, per customer and for totals over groups.

CLV (future revenue or margin per customer) is non-negative, zero-inflated and right-skewed: most
customers spend nothing in the window, a few spend a lot. A single absolute-residual quantile
(plain split conformal) gives every customer the same width, far too wide for the many near-zero
predictions and too narrow for the big spenders, so coverage is right on average and wrong in
every slice. Here the calibration customers are split into bins by their prediction (Mondrian
conformal, Vovk et al. 2005): each bin gets its own conformal quantile of ``|y - p|``, so the width
follows the prediction's level and coverage holds within each bin, not only overall.

Calibration must be out-of-sample: predictions of a model that did not see those labels, such as
the out-of-time window training judges its model on. Coverage is then guaranteed (at least the
level, in expectation over calibration sets) when the next window's customers are exchangeable
with the calibration ones; drift between windows is what the backtest measures.

One drift matters more than the others for a zero-inflated target. In a bin where most calibration
customers bought nothing, the conformal quantile reaches the level by leaving 0 out of the
intervals of the bin's larger predictions (``p > q``). When the served base fills that bin with
still smaller predictions (an ageing base: more customers who stopped buying, scored by a model
refitted on later windows), nearly every interval holds 0 and the bin is covered far above the
level. So a customer's place in its bin is taken by rank against a *reference*: the served model's
predictions for the base it serves (every customer's features at the training date), given to
:meth:`ConformalCLV.fit`. Within each bin a prediction's mid-rank among the reference is matched
to the same quantile of the calibration predictions, and the interval is centred on the larger of
the customer's own prediction and its matched one. The share of the served base whose intervals
hold 0 in each bin is then the calibration's, whatever the served model's predictions do inside
the bin; and each customer's interval is still a function of its own prediction alone (the same
whether it is scored alone, in chunks or on Spark). Without drift the matched prediction is the
customer's own and the intervals are plain Mondrian ones.

Totals (a persona, the whole base) are not a conformal object: one window gives one realised
total. Their interval adds up per-customer errors resampled from the calibration residuals of each
customer's prediction bin (signed, so the calibration window's bias is carried along); that keeps
the skew of small groups but assumes errors are independent across customers, so a shock common to
every customer (a market-wide change in spend) is not in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["ConformalCLV", "check_level", "conformal_quantile"]

#: Above this many customers of one bin in a group, the sum of their resampled errors is drawn
#: from its normal limit (their skew is gone by then) instead of summing that many draws.
_NORMAL_ABOVE = 2000


def check_level(level: float) -> float:
    """``level`` as a float, refused unless strictly between 0 and 1.

    Examples
    --------
    >>> check_level(0.8)
    0.8
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level {level!r} must be strictly between 0 and 1, e.g. 0.8 or 0.95")
    return level


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The finite-sample conformal quantile: the ``ceil((n + 1) level)``-th smallest score.

    With ``n`` exchangeable calibration scores and a new one, the new score is at most this value
    with probability at least ``level``. When ``(n + 1) level > n`` no calibration score is large
    enough and the quantile is infinite (the honest answer with too few points).

    Parameters
    ----------
    scores : array-like
        Calibration nonconformity scores.
    level : float
        Coverage level, strictly between 0 and 1.

    Examples
    --------
    >>> conformal_quantile(np.arange(1.0, 10.0), 0.8)  # n = 9: the 8th smallest
    8.0
    >>> conformal_quantile(np.arange(1.0, 10.0), 0.95)  # ceil(9.5) = 10 > 9
    inf
    """
    level = check_level(level)
    s = np.sort(np.asarray(scores, dtype=float))
    k = int(np.ceil((len(s) + 1) * level - 1e-9))  # the tolerance keeps 10 * 0.8 from being 8.0001
    return float(s[k - 1]) if 1 <= k <= len(s) else float("inf")


def _bin_edges(p: np.ndarray, n_bins: int, min_bin_size: int) -> np.ndarray:
    """Interior edges splitting ``p`` into up to ``n_bins`` quantile bins of ``min_bin_size`` or more.

    Ties never straddle an edge (a customer's bin depends only on its prediction), so an edge that
    would leave a bin too small is dropped and its neighbours merge.
    """
    s = np.sort(p)
    n = len(s)
    candidates = np.unique(np.quantile(s, np.linspace(0, 1, n_bins + 1)[1:-1]))
    edges, start = [], 0
    for e in candidates:
        k = int(np.searchsorted(s, e, side="left"))  # customers below e close the current bin
        if k - start >= min_bin_size and n - k >= min_bin_size:
            edges.append(e)
            start = k
    return np.asarray(edges, dtype=float)


class ConformalCLV:
    """Mondrian split-conformal intervals for a non-negative target, binned by prediction.

    Parameters
    ----------
    levels : sequence of float, default (0.8, 0.95)
        The levels reported by default (each strictly between 0 and 1); :meth:`interval` takes any.
    n_bins : int, default 10
        Prediction bins (quantiles of the calibration predictions); 1 is plain split conformal.
    min_bin_size : int, default 100
        Fewest calibration customers per bin: fewer bins are made when the set is small, since a
        bin of ``n`` has a finite 95 % quantile only from ``n = 19`` and a stable one much later.

    Attributes
    ----------
    edges_ : ndarray
        Interior bin edges on the prediction scale.
    scores_ : list of ndarray
        Per bin, the sorted calibration scores ``|y - p|``.
    residuals_ : list of ndarray
        Per bin, the signed calibration residuals ``y - p`` (for totals).
    predictions_ : list of ndarray
        Per bin, the sorted calibration predictions (for the rank matching).
    reference_ : list of ndarray or None
        Per bin, the sorted reference predictions (None: fitted without one, plain Mondrian).
    zero_share_ : ndarray
        Per bin, the share of calibration customers who bought nothing (see :meth:`point_mass`).
    n_ : int
        Calibration customers.

    Examples
    --------
    >>> y = np.array([0, 0, 0, 0, 10, 0, 20, 0, 30.0])
    >>> cal = ConformalCLV(n_bins=1, min_bin_size=1).fit(y, np.full(9, 5.0))
    >>> cal.interval(np.array([5.0]), 0.8)  # 8th smallest |y - 5| is 15
    (array([0.]), array([20.]))
    """

    def __init__(self, levels: Sequence[float] = (0.8, 0.95), n_bins: int = 10, min_bin_size: int = 100):
        self.levels = levels
        self.n_bins = n_bins
        self.min_bin_size = min_bin_size

    def fit(self, y_cal, p_cal, p_ref=None) -> ConformalCLV:
        """Learn the bins and their scores from out-of-sample predictions ``p_cal`` of ``y_cal``.

        ``p_ref`` (optional): the served model's predictions for the base it will serve, the
        reference each prediction is ranked against (see the module docstring); without it the
        intervals are plain Mondrian ones.
        """
        for level in self.levels:
            check_level(level)
        y = np.asarray(y_cal, dtype=float)
        p = np.asarray(p_cal, dtype=float)
        if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
            raise ValueError(f"y_cal and p_cal must be 1-d of one length; got {y.shape} and {p.shape}")
        if not (np.isfinite(y).all() and np.isfinite(p).all()):
            raise ValueError("y_cal and p_cal must be finite")
        self.edges_ = _bin_edges(p, max(int(self.n_bins), 1), max(int(self.min_bin_size), 1))
        bins = self._bins(p)
        r = y - p
        self.residuals_ = [r[bins == b] for b in range(len(self.edges_) + 1)]
        self.scores_ = [np.sort(np.abs(rb)) for rb in self.residuals_]
        self.predictions_ = [np.sort(p[bins == b]) for b in range(len(self.edges_) + 1)]
        self.reference_ = None
        if p_ref is not None:
            ref = np.asarray(p_ref, dtype=float)
            if ref.ndim != 1 or not np.isfinite(ref).all():
                raise ValueError(f"p_ref must be 1-d and finite; got shape {ref.shape}")
            at = self._bins(ref)
            self.reference_ = [np.sort(ref[at == b]) for b in range(len(self.edges_) + 1)]
        self.zero_share_ = np.array(
            [float(np.mean(y[bins == b] == 0)) for b in range(len(self.edges_) + 1)]
        )
        self.n_ = len(y)
        return self

    def point_mass(self, p, level: float) -> np.ndarray:
        """Customers whose bin bought nothing at least ``level`` of the time in calibration.

        Such a bin reaches the level only by leaving 0 out of the intervals of some of its
        customers, those with the larger predictions (or, matched by rank, the higher ranks). By
        the prediction alone, a served base that fills the bin with still tinier predictions (an
        ageing base) puts 0 in nearly every interval and over-covers the bin; rank matching against
        the served base keeps the calibration's share. The backtest reports coverage without these
        customers too, to show which part of the base any gap comes from. Decided from calibration
        data only.
        """
        self._check_fitted()
        level = check_level(level)
        zero = getattr(self, "zero_share_", None)  # absent on calibrators saved before it existed
        if zero is None:
            return np.zeros(len(np.asarray(p)), dtype=bool)
        return zero[self._bins(np.asarray(p, dtype=float))] >= level

    def _bins(self, p: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges_, p, side="right")

    def _check_fitted(self) -> None:
        if not hasattr(self, "scores_"):
            raise RuntimeError("ConformalCLV is not fitted: call fit(y_cal, p_cal) first")

    def interval(self, p, level: float) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` per customer: ``c ∓ q`` of its bin, the low end clipped at 0.

        ``c`` is the larger of the customer's prediction and its rank-matched calibration
        prediction (:meth:`matched`); fitted without a reference, the prediction itself. The low
        end never exceeds the prediction, so every interval holds its own point prediction.
        """
        self._check_fitted()
        level = check_level(level)
        p = np.asarray(p, dtype=float)
        q = np.array([conformal_quantile(s, level) for s in self.scores_])[self._bins(p)]
        c = np.maximum(p, self.matched(p))
        return np.minimum(np.clip(c - q, 0.0, None), p), c + q

    def matched(self, p) -> np.ndarray:
        """Each prediction's counterpart in calibration: the same quantile of the same bin.

        A prediction at mid-rank ``(below + ties / 2) / n`` among the ``n`` reference predictions
        of its bin gets the calibration bin's predictions' quantile at that level, on Hazen's
        plotting positions (the same mid-ranks), so a reference equal to the calibration
        predictions matches every one of them to itself. Fitted without a reference (or in a bin
        the reference left empty), the prediction itself. Each prediction is matched on its own:
        the result does not depend on what else is scored with it.

        Examples
        --------
        >>> ref = np.array([0.01, 0.02, 0.03, 0.04, 0.05])  # the served model: a fifth of the scale
        >>> cal = ConformalCLV(n_bins=1, min_bin_size=1).fit(np.zeros(5), np.arange(1.0, 6.0), ref)
        >>> cal.matched(np.array([0.01, 0.05]))  # the same ranks, on the calibration's scale
        array([1., 5.])
        >>> cal.matched(np.array([0.025, 0.0]))  # mid-rank 2/5 (Hazen: 2.5); below all: the lowest
        array([2.5, 1. ])
        """
        self._check_fitted()
        p = np.asarray(p, dtype=float)
        reference = getattr(self, "reference_", None)  # absent on calibrators saved before it
        if reference is None:
            return p.copy()
        bins = self._bins(p)
        out = p.copy()
        for b, (cal, ref) in enumerate(zip(self.predictions_, reference, strict=True)):
            at = bins == b
            if not at.any() or len(ref) == 0:
                continue
            below = np.searchsorted(ref, p[at], side="left")
            upto = np.searchsorted(ref, p[at], side="right")
            share = np.clip((below + upto) / (2 * len(ref)), 0.5 / len(ref), 1 - 0.5 / len(ref))
            out[at] = np.quantile(cal, share, method="hazen")
        return out

    def total_interval(self, p, level: float, n_draws: int = 2000, seed: int = 0) -> tuple[float, float]:
        """Equal-tailed interval of the total ``Σ y`` over the customers with predictions ``p``.

        Each customer's error is drawn from its bin's calibration residuals, with replacement,
        and the draws are summed (see the module docstring for what this leaves out).
        """
        self._check_fitted()
        level = check_level(level)
        p = np.asarray(p, dtype=float)
        rng = np.random.default_rng(seed)
        totals = np.full(n_draws, p.sum())
        counts = np.bincount(self._bins(p), minlength=len(self.residuals_))
        for r, k in zip(self.residuals_, counts, strict=True):
            if k == 0:
                continue
            if k > _NORMAL_ABOVE:
                totals += rng.normal(k * r.mean(), np.sqrt(k) * r.std(), n_draws)
            else:
                totals += rng.choice(r, size=(n_draws, k)).sum(axis=1)
        tail = (1.0 - level) / 2
        low, high = np.quantile(totals, [tail, 1.0 - tail])
        return max(float(low), 0.0), float(high)

    def group_intervals(
        self, p, groups, level: float, n_draws: int = 2000, seed: int = 0
    ) -> pd.DataFrame:
        """Per group (a persona): ``predicted`` total, ``low`` and ``high``, indexed by group."""
        frame = pd.DataFrame({"p": np.asarray(p, dtype=float), "g": np.asarray(groups)})
        out = {}
        for g, part in frame.groupby("g", sort=True):
            low, high = self.total_interval(part["p"].to_numpy(), level, n_draws, seed)
            out[g] = {"predicted": float(part["p"].sum()), "low": low, "high": high}
        return pd.DataFrame.from_dict(out, orient="index")
