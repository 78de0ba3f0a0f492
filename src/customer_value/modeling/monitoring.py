"""Drift and label-free performance: is the latest scoring still like the data the models saw.

Pure functions on frames. Drift compares one column's distribution at two dates by the population
stability index (PSI, on the reference's deciles) and the two-sample Kolmogorov-Smirnov statistic.
Thresholds act on the sizes of the shifts (PSI, KS D), not on the KS p-value: with tens of thousands
of customers every harmless shift is "significant", so a p-value alarm would ring on every run.

The label-free churn estimate reads the calibrated probabilities as the truth they claim to be
(as confidence-based performance estimation does): if each customer churns with probability
``p_i``, the expected churn rate is the mean of ``p``, the expected Brier score is the mean of
``p(1 - p)``, and the expected ROC AUC is the expected share of (churner, stayer) pairs the score
orders correctly. It says how well the models *should* do on today's base before any label exists;
it is only as good as the calibration, which the realised metrics check once a window matures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["psi", "ks_statistic", "column_drift", "expected_churn_performance", "persona_shares"]

_EPS = 1e-4  # floor of a bin's share, so an empty bin does not make the PSI infinite


def _bins(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges at the reference's quantiles (repeated values collapse into one bin)."""
    qs = np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(qs)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share per bin, plus a last bin for missing values."""
    finite = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    counts = np.append(counts, np.isnan(values).sum()).astype(float)
    return counts / max(len(values), 1)


def psi(reference, current, n_bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are the reference's deciles (``n_bins`` quantile bins; ties merge bins) plus one for
    missing values; each share is floored at 1e-4. PSI = sum (c - r) * ln(c / r). Rules of thumb:
    < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a major one.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    finite = ref[~np.isnan(ref)]
    edges = _bins(finite, n_bins) if len(finite) else np.array([])
    r = np.maximum(_shares(ref, edges), _EPS)
    c = np.maximum(_shares(cur, edges), _EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_statistic(reference, current) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov D and its p-value on the non-missing values."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    res = ks_2samp(ref, cur)
    return float(res.statistic), float(res.pvalue)


def _values(frame: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(frame[col], errors="coerce").astype(float).to_numpy()


def column_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    psi_threshold: float,
    ks_threshold: float,
    n_bins: int = 10,
    earlier: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """PSI and KS per column; ``drifted`` when the shift beyond the usual passes a threshold.

    The usual shift is the one the same span of time produced just before the reference
    (``earlier`` -> ``reference``, zero without ``earlier``). A base that ages moves
    ``tenure_days`` every quarter, and a refitted Gamma-Gamma prior moves every one-time buyer's
    expected order value at once: real shifts, but no sign the process changed, and an alarm on
    them would ring on every run. ``drifted`` is ``psi - psi_usual >= psi_threshold`` or
    ``ks - ks_usual >= ks_threshold``.

    Returns
    -------
    DataFrame
        ``column``, ``psi``, ``psi_usual``, ``ks_statistic``, ``ks_usual``, ``ks_pvalue``,
        ``reference_mean``, ``current_mean``, ``reference_missing``, ``current_missing``,
        ``drifted``; largest excess PSI first.
    """
    rows = []
    for col in columns:
        ref, cur = _values(reference, col), _values(current, col)
        d, pvalue = ks_statistic(ref, cur)
        value = psi(ref, cur, n_bins)
        usual_psi = usual_ks = 0.0
        if earlier is not None:
            before = _values(earlier, col)
            usual_psi, usual_ks = psi(before, ref, n_bins), ks_statistic(before, ref)[0]
            usual_psi = 0.0 if usual_psi != usual_psi else usual_psi
            usual_ks = 0.0 if usual_ks != usual_ks else usual_ks
        excess_ks = d - usual_ks if d == d else float("nan")
        rows.append(
            {
                "column": col,
                "psi": value,
                "psi_usual": usual_psi,
                "ks_statistic": d,
                "ks_usual": usual_ks,
                "ks_pvalue": pvalue,
                "reference_mean": float(np.nanmean(ref)) if np.isfinite(ref).any() else np.nan,
                "current_mean": float(np.nanmean(cur)) if np.isfinite(cur).any() else np.nan,
                "reference_missing": float(np.isnan(ref).mean()) if len(ref) else np.nan,
                "current_missing": float(np.isnan(cur).mean()) if len(cur) else np.nan,
                "drifted": bool(
                    value - usual_psi >= psi_threshold
                    or (excess_ks == excess_ks and excess_ks >= ks_threshold)
                ),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_excess"] = out["psi"] - out["psi_usual"]
    out = out.sort_values(["_excess", "column"], ascending=[False, True], kind="stable")
    return out.drop(columns="_excess").reset_index(drop=True)


def expected_churn_performance(p) -> dict[str, float]:
    """Churn rate, Brier score and ROC AUC to expect if the probabilities are calibrated.

    The expected AUC is the ratio of the expected number of correctly ordered (churner, stayer)
    pairs (ties count half) to the expected number of such pairs, over pairs of distinct
    customers: sum_{i != j} p_i (1 - p_j) [s_i > s_j] / sum_{i != j} p_i (1 - p_j), in
    O(n log n) by sorting.
    """
    p = np.asarray(p, dtype=float)
    p = p[~np.isnan(p)]
    if len(p) < 2:
        return {"churn_rate": float("nan"), "brier": float("nan"), "roc_auc": float("nan")}
    order = np.argsort(p, kind="stable")
    s = p[order]
    q = 1.0 - s
    # For each distinct score: the stayers' expected mass strictly below it and tied with it.
    _, start = np.unique(s, return_index=True)
    q_group = np.add.reduceat(q, start)
    p_group = np.add.reduceat(s, start)
    below = np.concatenate([[0.0], np.cumsum(q_group)[:-1]])
    # Within a tie group, pairs are ordered half right; a customer never pairs with itself.
    self_pairs = np.add.reduceat(s * q, start)
    correct = np.sum(p_group * below) + 0.5 * (np.sum(p_group * q_group) - np.sum(self_pairs))
    pairs = p.sum() * (1.0 - p).sum() - np.sum(p * (1.0 - p))
    return {
        "churn_rate": float(p.mean()),
        "brier": float(np.mean(p * (1.0 - p))),
        "roc_auc": float(correct / pairs) if pairs > 0 else float("nan"),
    }


def persona_shares(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Share of customers per persona at two scorings, and the change in points."""
    ref = reference["persona"].astype(str).value_counts(normalize=True)
    cur = current["persona"].astype(str).value_counts(normalize=True)
    out = pd.DataFrame({"reference_share": ref, "current_share": cur}).fillna(0.0)
    out["change_points"] = 100.0 * (out["current_share"] - out["reference_share"])
    out.index.name = "persona"
    return out.reset_index().sort_values("persona", kind="stable").reset_index(drop=True)
