"""BG/NBD, MBG/NBD and Gamma-Gamma, fitted by maximum likelihood, as scikit-learn style estimators.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") models repeat purchases
as Poisson(λ) with λ ~ Gamma(r, α), and dropout after each repeat purchase with probability
p ~ Beta(a, b). MBG/NBD (Batislam, Denizel & Filiztekin 2007; Wagner & Hoppe 2008) adds a dropout
chance at the first purchase too, so customers with no repeat purchase can be dead. Gamma-Gamma
(Fader, Hardie & Lee 2005, "RFM and CLV") models each customer's order values as Gamma(p, ν) with
ν ~ Gamma(q, γ).

Numerics: the likelihoods are computed in log space (``gammaln``, ``betaln``, ``logaddexp``); the
fit runs on unique (x, t_x, T) triples with counts as weights, on log-parameters, with time (and
money) rescaled so that the optimiser sees values near 1; a small penalty on the log-parameters
(``penalizer``) keeps them finite when the data cannot identify them, and a warning says what to do
when a fit looks poor. Inputs use the vocabulary of METRICS.md: ``frequency`` = repeat purchase
days, ``recency`` = last − first purchase day, ``T`` = as_of − first purchase day (all in days).
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["BetaGeoModel", "GammaGammaModel", "ModifiedBetaGeoModel", "PoorFitWarning"]


class PoorFitWarning(UserWarning):
    """The maximum-likelihood fit converged badly or hit the edge of the parameter space."""


def _as_arrays(X, names):
    if isinstance(X, pd.DataFrame):
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise ValueError(f"X lacks column(s) {missing}; expected {names}")
        # Series.to_numpy, not np.asarray(Series): numpy's probe for array attributes goes through
        # pandas' __getattr__, which hashes the whole index (customer ids) to look for a column.
        return [X[n].to_numpy(dtype=float) for n in names]
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(f"X must have {len(names)} columns: {names}")
    return [arr[:, i] for i in range(len(names))]


class _Tabulated:
    """Each element's position among the unique values of a fixed input, for table lookups.

    The fits evaluate the likelihood tens of times on the same data. Every term that depends on one
    input only (``gammaln(r + x)``, ``digamma(b + x)``, ``log(alpha + T)`` …) is computed once per
    unique value (a few hundred: frequencies and day counts) and gathered, instead of once per
    customer; each element gets exactly the value the per-element expression gives (the same
    operations on the same operands), so the fits are unchanged to the last bit.
    """

    __slots__ = ("values", "index")

    def __init__(self, values: np.ndarray):
        self.values, index = np.unique(values, return_inverse=True)
        self.index = index.reshape(-1)


def _integer_table(values: np.ndarray, limit: int = 1_000_000) -> _Tabulated | None:
    """:class:`_Tabulated` without a sort, for whole numbers in ``[0, limit]``; else None.

    Day and purchase counts: the table is ``0, 1, …, max`` and each element's position is its value.
    """
    if values.dtype.kind != "f" or len(values) == 0:
        return None
    top = values.max()
    if not (values.min() >= 0 and top <= limit):  # also False with NaN
        return None
    index = values.astype(np.intp)
    if not np.array_equal(index, values):
        return None
    tab = _Tabulated.__new__(_Tabulated)
    tab.values = np.arange(int(top) + 1, dtype=float)
    tab.index = index
    return tab


def _scaled_table(values: np.ndarray, scale: float) -> _Tabulated:
    """:class:`_Tabulated` of ``values / scale``: each element gets ``value / scale`` as before."""
    tab = _integer_table(values)
    if tab is None:
        return _Tabulated(values / scale)
    tab.values = tab.values / scale
    return tab


def _single_threaded_blas():
    """BLAS limited to one thread, for the fits.

    L-BFGS-B's BLAS calls work on vectors of 3 or 4 numbers; idle BLAS worker threads would
    otherwise spin for CPU that the rest of the process could use (same results: vectors this
    small are never split between threads).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _minimize(objective, starts, n_params, jac=False):
    """L-BFGS-B from the first start; the other starts are tried only when that one fails."""
    best = None
    for x0 in starts:
        with _single_threaded_blas():
            res = minimize(
                objective,
                np.asarray(x0, dtype=float),
                method="L-BFGS-B",
                jac=jac,
                bounds=[(-12.0, 12.0)] * n_params,
            )
        if best is None or (np.isfinite(res.fun) and res.fun < best.fun):
            best = res
        if best.success and np.all(np.abs(best.x) < 11.5):
            break
    return best


class BetaGeoModel(BaseEstimator):
    """BG/NBD model of repeat purchasing and dropout.

    Parameters
    ----------
    penalizer : float, default 0.0001
        Weight of the L2 penalty on the log-parameters, added to the mean negative log-likelihood.
        Raise it (e.g. 0.01-0.1) when a fit warns that parameters ran off to extremes.

    Attributes
    ----------
    r_, alpha_, a_, b_ : float
        Fitted parameters (``alpha_`` in days).
    log_likelihood_ : float
        Total log-likelihood of the training data at the fitted parameters (no penalty).
    n_customers_ : int

    Examples
    --------
    >>> from customer_value.synthetic import simulate_bgnbd
    >>> X = simulate_bgnbd(2000, r=0.5, alpha=20, a=0.8, b=2.5, T=365, seed=0)
    >>> model = BetaGeoModel().fit(X)
    >>> bool(model.p_alive(X).between(0, 1).all())
    True
    """

    _names = ("frequency", "recency", "T")
    # The model's name in errors and warnings (subclasses fit other models with the same machinery).
    _label = "BG/NBD"

    def __init__(self, penalizer: float = 0.0001):
        self.penalizer = penalizer

    # -- likelihood -------------------------------------------------------------------------------

    @staticmethod
    def _log_parts(params, x, t_x, T, t=0.0):
        """Return (common, log A(t), log D) of METRICS.md's split of the individual likelihood."""
        r, alpha, a, b = params
        x, t_x, T = np.asarray(x), np.asarray(t_x), np.asarray(T)
        if x.ndim == 1 and x.shape == t_x.shape == T.shape and len(x) > 1000:
            tables = [_integer_table(v) for v in (x, t_x, T)]
            if all(tab is not None for tab in tables):
                return BetaGeoModel._log_parts_tabulated(params, x > 0, *tables, t=t)
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        log_a = betaln(a, b + x) - (r + x) * np.log(alpha + T + t)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_d = np.where(
                x > 0,
                betaln(a + 1, np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
        return common, log_a, log_d

    @classmethod
    def _ll_and_grad(cls, params, x, t_x, T):
        """Per-customer log-likelihood and its gradient with respect to (r, alpha, a, b)."""
        r, alpha, a, b = params
        common, log_a, log_d = cls._log_parts(params, x, t_x, T)
        lse = np.logaddexp(log_a, log_d)
        w_a = np.exp(log_a - lse)
        w_d = np.exp(log_d - lse)  # 0 where x == 0
        log_at, log_tx = np.log(alpha + T), np.log(alpha + np.where(x > 0, t_x, T))
        d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w_a * log_at - w_d * log_tx
        d_alpha = r / alpha - (r + x) * (w_a / (alpha + T) + w_d / (alpha + np.where(x > 0, t_x, T)))
        psi_abx = digamma(a + b + x)
        d_a = (
            -(digamma(a) - digamma(a + b))
            + w_a * (digamma(a) - psi_abx)
            + w_d * (digamma(a + 1) - psi_abx)
        )
        d_b = (
            -(digamma(b) - digamma(a + b))
            + w_a * (digamma(b + x) - psi_abx)
            + w_d * (digamma(np.maximum(b + x - 1, 1e-300)) - psi_abx)
        )
        return common + lse, np.stack([d_r, d_alpha, d_a, d_b])

    @staticmethod
    def _log_parts_tabulated(params, pos, tx_, tt_, tT_, t=0.0):
        """:meth:`_log_parts` with the terms of one input computed per unique value (same values)."""
        r, alpha, a, b = params
        ux, ut, uT = tx_.values, tt_.values, tT_.values
        xi = tx_.index
        rx = (r + ux)[xi]
        common = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha) - betaln(a, b))[xi]
        log_a = betaln(a, b + ux)[xi]
        log_a -= rx * np.log(alpha + uT + t)[tT_.index]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_d = betaln(a + 1, np.maximum(b + ux - 1, 1e-300))[xi]
            log_d -= rx * np.log(alpha + ut)[tt_.index]
        log_d[~pos] = -np.inf
        return common, log_a, log_d

    @staticmethod
    def _tables(x, t_x, T, scale: float = 1.0) -> dict:
        """Lookup tables and work buffers of :meth:`_ll_and_grad_tabulated`.

        For the inputs ``x``, ``t_x / scale`` and ``T / scale``, fixed during a fit.
        """
        n = len(x)
        return {
            "x": _Tabulated(x),
            "t": _scaled_table(t_x, scale),
            "T": _scaled_table(T, scale),
            "eff": _scaled_table(np.where(x > 0, t_x, T), scale),
            "no_d": ~(x > 0),
            # Reused by every evaluation: fresh 1e5-1e6-row temporaries cost page faults.
            "buf": np.empty((6, n)),
            "grad": np.empty((4, n)),
        }

    @staticmethod
    def _ll_and_grad_tabulated(params, tab):
        """:meth:`_ll_and_grad` on fixed inputs: the same values, to the last bit, much faster.

        Terms of one input are computed per unique value and gathered; the per-element arithmetic
        runs in reused buffers. Each step is the operation of ``_log_parts`` / ``_ll_and_grad`` it
        replaces, on the same operands in the same order. The returned arrays are views of the work
        buffers, valid until the next call.
        """
        r, alpha, a, b = params
        tx_, tt_, tT_, te_ = tab["x"], tab["t"], tab["T"], tab["eff"]
        ux, ut, uT, ue = tx_.values, tt_.values, tT_.values, te_.values
        rx, log_a, log_d, lse, tmp, tmp2 = tab["buf"]
        grad = tab["grad"]
        d_r, d_alpha, d_a, d_b = grad

        def take(table, idx, out):
            # mode="clip": the positions are valid, and "raise" would copy through a buffer.
            return np.take(table, idx.index, out=out, mode="clip")

        take(r + ux, tx_, rx)
        # _log_parts (t = 0): log A = betaln(a, b + x) - (r + x) * log(alpha + T + t)
        take(betaln(a, b + ux), tx_, log_a)
        np.multiply(rx, take(np.log(alpha + uT + 0.0), tT_, tmp), out=tmp)
        np.subtract(log_a, tmp, out=log_a)
        # log D = betaln(a + 1, max(b + x - 1, tiny)) - (r + x) * log(alpha + t_x); -inf where x = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            take(betaln(a + 1, np.maximum(b + ux - 1, 1e-300)), tx_, log_d)
            np.multiply(rx, take(np.log(alpha + ut), tt_, tmp), out=tmp)
            np.subtract(log_d, tmp, out=log_d)
        np.copyto(log_d, -np.inf, where=tab["no_d"])
        # _ll_and_grad
        np.logaddexp(log_a, log_d, out=lse)
        w_a = np.exp(np.subtract(log_a, lse, out=log_a), out=log_a)
        w_d = np.exp(np.subtract(log_d, lse, out=log_d), out=log_d)  # 0 where x == 0
        # d_r = digamma(r + x) - digamma(r) + log(alpha) - w_a * log(alpha + T) - w_d * log(alpha + eff)
        take(digamma(r + ux) - digamma(r) + np.log(alpha), tx_, d_r)
        np.subtract(d_r, np.multiply(w_a, take(np.log(alpha + uT), tT_, tmp), out=tmp), out=d_r)
        np.subtract(d_r, np.multiply(w_d, take(np.log(alpha + ue), te_, tmp), out=tmp), out=d_r)
        # d_alpha = r / alpha - (r + x) * (w_a / (alpha + T) + w_d / (alpha + eff))
        np.divide(w_a, take(alpha + uT, tT_, tmp), out=tmp)
        np.divide(w_d, take(alpha + ue, te_, tmp2), out=tmp2)
        np.multiply(rx, np.add(tmp, tmp2, out=tmp), out=tmp)
        np.subtract(r / alpha, tmp, out=d_alpha)
        psi_abx = digamma(a + b + ux)
        # d_a = -(digamma(a) - digamma(a + b)) + w_a * (...) + w_d * (...)
        np.add(
            -(digamma(a) - digamma(a + b)),
            np.multiply(w_a, take(digamma(a) - psi_abx, tx_, tmp), out=tmp),
            out=d_a,
        )
        np.add(d_a, np.multiply(w_d, take(digamma(a + 1) - psi_abx, tx_, tmp), out=tmp), out=d_a)
        # d_b = -(digamma(b) - digamma(a + b)) + w_a * (...) + w_d * (...)
        np.add(
            -(digamma(b) - digamma(a + b)),
            np.multiply(w_a, take(digamma(b + ux) - psi_abx, tx_, tmp), out=tmp),
            out=d_b,
        )
        dig_d = digamma(np.maximum(b + ux - 1, 1e-300)) - psi_abx
        np.add(d_b, np.multiply(w_d, take(dig_d, tx_, tmp), out=tmp), out=d_b)
        # log-likelihood = common + lse
        take(gammaln(r + ux) - gammaln(r) + r * np.log(alpha) - betaln(a, b), tx_, tmp)
        return np.add(tmp, lse, out=tmp), grad

    @classmethod
    def individual_log_likelihood(cls, params, frequency, recency, T) -> np.ndarray:
        """Log-likelihood of each customer's (x, t_x, T) under ``params = (r, alpha, a, b)``."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        common, log_a, log_d = cls._log_parts(params, x, t_x, T)
        return common + np.logaddexp(log_a, log_d)

    def fit(self, X, y=None, sample_weight=None):
        """Fit by maximum likelihood.

        Parameters
        ----------
        X : DataFrame
            Columns ``frequency``, ``recency``, ``T`` (or an array of those three columns).
        y : None
            Ignored.
        sample_weight : array, optional
            Counts per row (e.g. when rows are already unique triples).
        """
        x, t_x, T = _as_arrays(X, self._names)
        if len(x) == 0:
            raise ValueError(f"{self._label} needs at least one customer")
        if np.any(x < 0) or np.any(t_x < 0) or np.any(T < t_x) or np.any(x % 1 != 0):
            raise ValueError("need integer frequency >= 0 and 0 <= recency <= T")
        w = np.ones_like(x) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        # Fit on unique triples: real bases repeat the same (x, t_x, T) many times.
        triples = (
            pd.DataFrame({"x": x, "t": t_x, "T": T, "w": w})
            .groupby(["x", "t", "T"], sort=True, as_index=False)["w"]
            .sum()
        )
        scale = max(float(np.average(triples["T"].to_numpy(), weights=triples["w"].to_numpy())), 1e-9)
        xs = triples["x"].to_numpy()
        Ts = triples["T"].to_numpy() / scale
        ws = triples["w"].to_numpy()
        total = ws.sum()
        tables = self._tables(xs, triples["t"].to_numpy(), triples["T"].to_numpy(), scale)
        weighted = np.empty((4, len(ws)))

        def objective(log_params):
            params = np.exp(log_params)
            with np.errstate(over="ignore", invalid="ignore"):
                ll, grad = self._ll_and_grad_tabulated(params, tables)
            value = -np.multiply(ws, ll, out=ll).sum() / total + self.penalizer * np.sum(log_params**2)
            # Chain rule to log-parameters: d/d(log θ) = θ · d/dθ.
            g = (
                -np.multiply(grad, ws, out=weighted).sum(axis=1) / total * params
                + 2 * self.penalizer * log_params
            )
            if not (np.isfinite(value) and np.all(np.isfinite(g))):
                return 1e100, np.zeros(4)
            return value, g

        mean_rate = max(np.average(xs / np.maximum(Ts, 1e-9), weights=ws), 1e-3)
        starts = [
            np.log([1.0, 1.0 / mean_rate, 1.0, 1.0]),
            np.log([0.5, 0.5 / mean_rate, 0.8, 2.5]),
            np.zeros(4),
        ]
        res = _minimize(objective, starts, 4, jac=True)
        r, alpha, a, b = np.exp(res.x)
        self.r_, self.alpha_, self.a_, self.b_ = float(r), float(alpha * scale), float(a), float(b)
        self.n_customers_ = int(total)
        self.log_likelihood_ = float(
            (w * self.individual_log_likelihood(self.params_tuple, x, t_x, T)).sum()
        )
        self.converged_ = bool(res.success)
        self._warn_if_poor(res, repeaters=float(ws[xs > 0].sum()))
        return self

    def _warn_if_poor(self, res, repeaters: float) -> None:
        problems = []
        if repeaters < 10:
            problems.append(
                f"only {repeaters:.0f} customer(s) made a repeat purchase, too few to identify dropout"
            )
        if not res.success:
            problems.append(f"the optimiser did not converge ({res.message})")
        edge = {k: v for k, v in zip(("r", "alpha", "a", "b"), res.x, strict=True) if abs(v) > 11.5}
        if edge:
            problems.append(f"parameter(s) {sorted(edge)} ran to the edge of the search space")
        if problems:
            warnings.warn(
                f"{self._label} fit looks poor: " + "; ".join(problems) + ". Check that the data has "
                "repeat purchases and enough history, or raise features.btyd_penalizer "
                "(e.g. to 0.01).",
                PoorFitWarning,
                stacklevel=3,
            )

    @property
    def params_tuple(self) -> tuple[float, float, float, float]:
        """(r, alpha, a, b)."""
        check_is_fitted(self, "r_")
        return (self.r_, self.alpha_, self.a_, self.b_)

    @property
    def params_(self) -> dict[str, float]:
        """Fitted parameters as a dict."""
        r, alpha, a, b = self.params_tuple
        return {"r": r, "alpha": alpha, "a": a, "b": b}

    # -- predictions ------------------------------------------------------------------------------

    def _xs(self, X):
        return [np.asarray(v, dtype=float) for v in _as_arrays(X, self._names)]

    def p_alive(self, X) -> pd.Series:
        """P(alive at T | x, t_x, T) = A(0) / (A(0) + D); 1 for customers with x = 0."""
        x, t_x, T = self._xs(X)
        _, log_a, log_d = self._log_parts(self.params_tuple, x, t_x, T)
        return self._series(np.exp(log_a - np.logaddexp(log_a, log_d)), X)

    def p_no_purchase(self, X, t: float) -> pd.Series:
        """P(no purchase in (T, T + t] | x, t_x, T) = (A(t) + D) / (A(0) + D) (METRICS.md)."""
        x, t_x, T = self._xs(X)
        _, log_a0, log_d = self._log_parts(self.params_tuple, x, t_x, T)
        _, log_at, _ = self._log_parts(self.params_tuple, x, t_x, T, t=float(t))
        return self._series(np.exp(np.logaddexp(log_at, log_d) - np.logaddexp(log_a0, log_d)), X)

    def expected_transactions(self, X, t: float) -> pd.Series:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in the next ``t`` days (FHL 2005, eq. 10)."""
        r, alpha, a, b = self.params_tuple
        x, t_x, T = self._xs(X)
        t = float(t)
        z = t / (alpha + T + t)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # decay · 2F1(r+x, b+x; a+b+x−1; z) with decay = (1 − z)^(r+x), in Euler's transformed
            # form (1 − z)^(a−1) · 2F1(a−1, a+b−r−1; a+b+x−1; z): the original is 0 · inf = nan
            # for frequent buyers over long windows (x = 2000 over a year gave 0 purchases).
            log_decay = np.log(alpha + T) - np.log(alpha + T + t)
            decay_term = np.exp((a - 1) * log_decay) * hyp2f1(a - 1, a + b - r - 1, a + b + x - 1, z)
            term = 1 - decay_term
            num = (a + b + x - 1) / (a - 1) * term
            log_ratio = np.where(
                x > 0,
                np.log(a)
                - np.log(np.maximum(b + x - 1, 1e-300))
                + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
                -np.inf,
            )
            # num / (1 + exp(log_ratio)), stable when the ratio is huge (long-dead customers).
            value = num * np.exp(-np.logaddexp(0.0, log_ratio))
        return self._series(np.maximum(np.nan_to_num(value, nan=0.0), 0.0), X)

    def expected_transactions_new(self, t) -> np.ndarray:
        """E[X(t)] for a customer just acquired: expected repeat purchases in ``t`` days (eq. 9)."""
        r, alpha, a, b = self.params_tuple
        t = np.asarray(t, dtype=float)
        z = t / (alpha + t)
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))

    @staticmethod
    def _series(values, X) -> pd.Series:
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.Series(values, index=index, dtype="float64")


def _mbg_decay_term(a, b, r, n, log_decay, z):
    """``(1 − z)^(a − 1) · 2F1(a − 1, a + b − r; a + b + n; z)``, the decay term of MBG/NBD's E[Y(t)].

    That is ``((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x+1; a+b+x; z)`` with ``n = x`` and
    ``log_decay = log(1 − z) = log((α+T)/(α+T+t))``, in Euler's transformed form
    2F1(A, B; C; z) = (1 − z)^(C−A−B) 2F1(C−A, C−B; C; z). The original multiplies a vanishing power
    by a huge 2F1, which gives 0 · inf = nan for frequent buyers over long windows (x = 2000 over
    365 days already); this one has small upper parameters, so its series converges fast.
    """
    return np.exp((a - 1) * log_decay) * hyp2f1(a - 1, a + b - r, a + b + n, z)


class ModifiedBetaGeoModel(BetaGeoModel):
    """MBG/NBD model: BG/NBD with a chance of dropping out at the first purchase as well.

    Batislam, Denizel & Filiztekin (2007), with the conditional expectation of Wagner & Hoppe (2008);
    the same model as lifetimes' ``ModifiedBetaGeoFitter``. Purchases are Poisson(λ), λ ~ Gamma(r, α);
    at the first purchase and after each repeat purchase the customer drops out with probability
    p ~ Beta(a, b). Unlike BG/NBD, a customer with no repeat purchase (x = 0) may be dead, so
    :meth:`p_alive` is below 1 for them and falls as T grows.

    The fit, penalty, warnings and prediction API are those of :class:`BetaGeoModel` (a subclass, so
    ``isinstance(model, BetaGeoModel)`` holds); only the likelihood and the expectations differ.

    Parameters
    ----------
    penalizer : float, default 0.0001
        Weight of the L2 penalty on the log-parameters, added to the mean negative log-likelihood.
        Raise it (e.g. 0.01-0.1) when a fit warns that parameters ran off to extremes. (lifetimes'
        ``penalizer_coef`` penalises the parameters themselves; at 0 both give the plain MLE.)

    Attributes
    ----------
    r_, alpha_, a_, b_ : float
        Fitted parameters (``alpha_`` in days).
    log_likelihood_ : float
        Total log-likelihood of the training data at the fitted parameters (no penalty).
    n_customers_ : int

    Examples
    --------
    >>> from customer_value.synthetic import simulate_bgnbd
    >>> X = simulate_bgnbd(2000, r=0.5, alpha=20, a=0.8, b=2.5, T=365, seed=0)
    >>> model = ModifiedBetaGeoModel().fit(X)
    >>> bool(model.p_alive(X).between(0, 1).all())
    True
    """

    _label = "MBG/NBD"

    # -- likelihood -------------------------------------------------------------------------------
    # The individual likelihood, with the common factor Γ(r + x) α^r / (Γ(r) B(a, b)) taken out, is
    # A(t) + D with A(t) = B(a, b + x + 1) (α + T + t)^-(r+x) (alive at T, no purchase up to T + t)
    # and D = B(a + 1, b + x) (α + t_x)^-(r+x) (dropped out at the last purchase, or at the first
    # when x = 0). D is present for every customer, so no x > 0 masks are needed.

    @staticmethod
    def _log_parts(params, x, t_x, T, t=0.0):
        """Return (common, log A(t), log D) of the MBG/NBD likelihood split (see the class notes)."""
        r, alpha, a, b = params
        x, t_x, T = np.asarray(x), np.asarray(t_x), np.asarray(T)
        if x.ndim == 1 and x.shape == t_x.shape == T.shape and len(x) > 1000:
            tables = [_integer_table(v) for v in (x, t_x, T)]
            if all(tab is not None for tab in tables):
                return ModifiedBetaGeoModel._log_parts_tabulated(params, *tables, t=t)
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        log_a = betaln(a, b + x + 1) - (r + x) * np.log(alpha + T + t)
        log_d = betaln(a + 1, b + x) - (r + x) * np.log(alpha + t_x)
        return common, log_a, log_d

    @classmethod
    def _ll_and_grad(cls, params, x, t_x, T):
        """Per-customer log-likelihood and its gradient with respect to (r, alpha, a, b)."""
        r, alpha, a, b = params
        common, log_a, log_d = cls._log_parts(params, x, t_x, T)
        lse = np.logaddexp(log_a, log_d)
        # Posterior weights of "alive at T" and "dropped out": each part's share of the likelihood.
        w_a = np.exp(log_a - lse)
        w_d = np.exp(log_d - lse)
        d_r = (
            digamma(r + x)
            - digamma(r)
            + np.log(alpha)
            - w_a * np.log(alpha + T)
            - w_d * np.log(alpha + t_x)
        )
        d_alpha = r / alpha - (r + x) * (w_a / (alpha + T) + w_d / (alpha + t_x))
        psi_abx = digamma(a + b + x + 1)
        d_a = (
            -(digamma(a) - digamma(a + b))
            + w_a * (digamma(a) - psi_abx)
            + w_d * (digamma(a + 1) - psi_abx)
        )
        d_b = (
            -(digamma(b) - digamma(a + b))
            + w_a * (digamma(b + x + 1) - psi_abx)
            + w_d * (digamma(b + x) - psi_abx)
        )
        return common + lse, np.stack([d_r, d_alpha, d_a, d_b])

    @staticmethod
    def _log_parts_tabulated(params, tx_, tt_, tT_, t=0.0):
        """:meth:`_log_parts` with the terms of one input computed per unique value (same values)."""
        r, alpha, a, b = params
        ux, ut, uT = tx_.values, tt_.values, tT_.values
        xi = tx_.index
        rx = (r + ux)[xi]
        common = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha) - betaln(a, b))[xi]
        log_a = betaln(a, b + ux + 1)[xi]
        log_a -= rx * np.log(alpha + uT + t)[tT_.index]
        log_d = betaln(a + 1, b + ux)[xi]
        log_d -= rx * np.log(alpha + ut)[tt_.index]
        return common, log_a, log_d

    @staticmethod
    def _tables(x, t_x, T, scale: float = 1.0) -> dict:
        """Lookup tables and work buffers of :meth:`_ll_and_grad_tabulated`.

        For the inputs ``x``, ``t_x / scale`` and ``T / scale``, fixed during a fit.
        """
        n = len(x)
        return {
            "x": _Tabulated(x),
            "t": _scaled_table(t_x, scale),
            "T": _scaled_table(T, scale),
            # Reused by every evaluation: fresh 1e5-1e6-row temporaries cost page faults.
            "buf": np.empty((6, n)),
            "grad": np.empty((4, n)),
        }

    @staticmethod
    def _ll_and_grad_tabulated(params, tab):
        """:meth:`_ll_and_grad` on fixed inputs: the same values, to the last bit, much faster.

        Terms of one input are computed per unique value and gathered; the per-element arithmetic
        runs in reused buffers, on the same operands in the same order as :meth:`_ll_and_grad`.
        The returned arrays are views of the work buffers, valid until the next call.
        """
        r, alpha, a, b = params
        tx_, tt_, tT_ = tab["x"], tab["t"], tab["T"]
        ux, ut, uT = tx_.values, tt_.values, tT_.values
        rx, log_a, log_d, lse, tmp, tmp2 = tab["buf"]
        grad = tab["grad"]
        d_r, d_alpha, d_a, d_b = grad

        def take(table, idx, out):
            # mode="clip": the positions are valid, and "raise" would copy through a buffer.
            return np.take(table, idx.index, out=out, mode="clip")

        log_aT, log_at = np.log(alpha + uT + 0.0), np.log(alpha + ut)
        take(r + ux, tx_, rx)
        # log A = betaln(a, b + x + 1) - (r + x) * log(alpha + T)
        take(betaln(a, b + ux + 1), tx_, log_a)
        np.subtract(log_a, np.multiply(rx, take(log_aT, tT_, tmp), out=tmp), out=log_a)
        # log D = betaln(a + 1, b + x) - (r + x) * log(alpha + t_x)
        take(betaln(a + 1, b + ux), tx_, log_d)
        np.subtract(log_d, np.multiply(rx, take(log_at, tt_, tmp), out=tmp), out=log_d)
        np.logaddexp(log_a, log_d, out=lse)
        w_a = np.exp(np.subtract(log_a, lse, out=log_a), out=log_a)
        w_d = np.exp(np.subtract(log_d, lse, out=log_d), out=log_d)
        # d_r = digamma(r + x) - digamma(r) + log(alpha) - w_a log(alpha + T) - w_d log(alpha + t_x)
        take(digamma(r + ux) - digamma(r) + np.log(alpha), tx_, d_r)
        np.subtract(d_r, np.multiply(w_a, take(log_aT, tT_, tmp), out=tmp), out=d_r)
        np.subtract(d_r, np.multiply(w_d, take(log_at, tt_, tmp), out=tmp), out=d_r)
        # d_alpha = r / alpha - (r + x) * (w_a / (alpha + T) + w_d / (alpha + t_x))
        np.divide(w_a, take(alpha + uT, tT_, tmp), out=tmp)
        np.divide(w_d, take(alpha + ut, tt_, tmp2), out=tmp2)
        np.multiply(rx, np.add(tmp, tmp2, out=tmp), out=tmp)
        np.subtract(r / alpha, tmp, out=d_alpha)
        psi_abx = digamma(a + b + ux + 1)
        # d_a = -(digamma(a) - digamma(a + b)) + w_a * (...) + w_d * (...)
        np.add(
            -(digamma(a) - digamma(a + b)),
            np.multiply(w_a, take(digamma(a) - psi_abx, tx_, tmp), out=tmp),
            out=d_a,
        )
        np.add(d_a, np.multiply(w_d, take(digamma(a + 1) - psi_abx, tx_, tmp), out=tmp), out=d_a)
        # d_b = -(digamma(b) - digamma(a + b)) + w_a * (...) + w_d * (...)
        np.add(
            -(digamma(b) - digamma(a + b)),
            np.multiply(w_a, take(digamma(b + ux + 1) - psi_abx, tx_, tmp), out=tmp),
            out=d_b,
        )
        np.add(d_b, np.multiply(w_d, take(digamma(b + ux) - psi_abx, tx_, tmp), out=tmp), out=d_b)
        # log-likelihood = common + lse
        take(gammaln(r + ux) - gammaln(r) + r * np.log(alpha) - betaln(a, b), tx_, tmp)
        return np.add(tmp, lse, out=tmp), grad

    # -- predictions ------------------------------------------------------------------------------

    def p_alive(self, X) -> pd.Series:
        """P(alive at T | x, t_x, T) = 1 / (1 + a / (b + x) · ((α + T) / (α + t_x))^(r + x)).

        That is A(0) / (A(0) + D); below 1 for customers with x = 0 too, unlike BG/NBD.
        """
        return super().p_alive(X)

    def p_no_purchase(self, X, t: float) -> pd.Series:
        """P(no purchase in (T, T + t] | x, t_x, T) = (A(t) + D) / (A(0) + D) (METRICS.md's split).

        A customer alive at T who buys nothing in the window is still alive, so the probability is
        the likelihood of the history extended by a silent window over that of the history.
        """
        return super().p_no_purchase(X, t)

    def expected_transactions(self, X, t: float) -> pd.Series:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in the next ``t`` days.

        Wagner & Hoppe (2008), as lifetimes' ``ModifiedBetaGeoFitter``:
        ``(a + b + x) / (a − 1) · [1 − ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; z)]``
        ``/ (1 + a / (b + x) · ((α+T)/(α+t_x))^(r+x))`` with ``z = t / (α + T + t)``; the bracket
        is evaluated in Euler's transformed form (:func:`_mbg_decay_term`), finite for any x.
        """
        r, alpha, a, b = self.params_tuple
        x, t_x, T = self._xs(X)
        t = float(t)
        z = t / (alpha + T + t)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_decay = np.log(alpha + T) - np.log(alpha + T + t)
            term = 1 - _mbg_decay_term(a, b, r, x, log_decay, z)
            num = (a + b + x) / (a - 1) * term
            log_ratio = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
            # num / (1 + exp(log_ratio)), stable when the ratio is huge (long-dead customers).
            value = num * np.exp(-np.logaddexp(0.0, log_ratio))
        return self._series(np.maximum(np.nan_to_num(value, nan=0.0), 0.0), X)

    def expected_transactions_new(self, t) -> np.ndarray:
        """E[X(t)] for a customer just acquired: ``b / (a − 1) · [1 − (α/(α+t))^r 2F1(r, b+1; a+b; z)]``.

        With ``z = t / (α + t)``; the bracket in Euler's transformed form, as in
        :meth:`expected_transactions` (which this equals at x = t_x = T = 0).
        """
        r, alpha, a, b = self.params_tuple
        t = np.asarray(t, dtype=float)
        z = t / (alpha + t)
        log_decay = np.log(alpha) - np.log(alpha + t)
        return b / (a - 1) * (1 - _mbg_decay_term(a, b, r, 0.0, log_decay, z))


class GammaGammaModel(BaseEstimator):
    """Gamma-Gamma model of order values, fitted on customers with at least one repeat purchase.

    Parameters
    ----------
    penalizer : float, default 0.0001
        L2 penalty weight on the log-parameters.

    Attributes
    ----------
    p_, q_, gamma_ : float
        Fitted parameters (``gamma_`` in currency units).
    """

    _names = ("frequency", "monetary_value")

    def __init__(self, penalizer: float = 0.0001):
        self.penalizer = penalizer

    @staticmethod
    def individual_log_likelihood(params, frequency, monetary_value) -> np.ndarray:
        """Log-likelihood of (x, m̄) for customers with x > 0 under ``params = (p, q, gamma)``."""
        p, q, g = params
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary_value, dtype=float)
        return (
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(g)
            + (p * x - 1) * np.log(m)
            + p * x * np.log(x)
            - (p * x + q) * np.log(g + m * x)
        )

    def fit(self, X, y=None):
        """Fit on rows with ``frequency > 0`` and ``monetary_value > 0`` (others are ignored)."""
        x, m = _as_arrays(X, self._names)
        keep = (x > 0) & (m > 0) & np.isfinite(m)
        if keep.sum() < 2:
            raise ValueError("Gamma-Gamma needs at least two customers with repeat purchases")
        x, m = x[keep], m[keep]
        scale = float(np.mean(m))
        ms = m / scale
        # Parameter-free parts, computed once; terms of x alone are evaluated per unique x and
        # gathered (see _Tabulated): the same values as individual_log_likelihood and the
        # expressions it replaced, operation for operation.
        tx_ = _Tabulated(x)
        ux = tx_.values
        log_ms = np.log(ms)
        ms_x = ms * x
        log_ux = np.log(ux)
        # Reused by every evaluation (fresh temporaries of this size cost page faults).
        ll, g_mx, log_gmx, tmp, tmp2 = np.empty((5, len(x)))

        def take(table, out):
            return np.take(table, tx_.index, out=out, mode="clip")

        def objective(log_params):
            params = np.exp(log_params)
            p, q, g = params
            px = p * ux
            np.add(g, ms_x, out=g_mx)
            np.log(g_mx, out=log_gmx)
            # individual_log_likelihood(params, x, ms), term by term, left to right:
            # gammaln(px + q) - gammaln(px) - gammaln(q) + q log g + (px - 1) log m + px log x
            # - (px + q) log(g + m x)
            take(gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g), ll)
            np.add(ll, np.multiply(take(px - 1, tmp), log_ms, out=tmp), out=ll)
            np.add(ll, take(px * log_ux, tmp), out=ll)
            np.subtract(ll, np.multiply(take(px + q, tmp), log_gmx, out=tmp), out=ll)
            psi_pxq = digamma(px + q)
            # x * (psi(px + q) - psi(px) + log m + log x - log(g + m x))
            take(psi_pxq - digamma(px), tmp)
            np.add(tmp, log_ms, out=tmp)
            np.add(tmp, take(log_ux, tmp2), out=tmp)
            np.subtract(tmp, log_gmx, out=tmp)
            g0 = np.multiply(x, tmp, out=tmp).mean()
            # psi(px + q) - psi(q) + log g - log(g + m x)
            g1 = np.subtract(take(psi_pxq - digamma(q) + np.log(g), tmp), log_gmx, out=tmp).mean()
            # q / g - (px + q) / (g + m x)
            np.divide(take(px + q, tmp), g_mx, out=tmp)
            g2 = np.subtract(q / g, tmp, out=tmp).mean()
            grad = np.array([g0, g1, g2])
            value = -ll.mean() + self.penalizer * np.sum(log_params**2)
            g_log = -grad * params + 2 * self.penalizer * log_params
            if not (np.isfinite(value) and np.all(np.isfinite(g_log))):
                return 1e100, np.zeros(3)
            return value, g_log

        res = _minimize(objective, [np.log([1.0, 2.0, 1.0]), np.log([4.0, 4.0, 3.0])], 3, jac=True)
        p, q, g = np.exp(res.x)
        self.p_, self.q_, self.gamma_ = float(p), float(q), float(g * scale)
        self.n_customers_ = int(keep.sum())
        self.converged_ = bool(res.success)
        if not res.success or self.q_ <= 1:
            warnings.warn(
                "Gamma-Gamma fit looks poor"
                + (
                    f": q = {self.q_:.3g} <= 1 makes the mean order value infinite"
                    if self.q_ <= 1
                    else f": {res.message}"
                )
                + ". Check for extreme order values (wholesale lines, unremoved fees) or raise "
                "features.btyd_penalizer.",
                PoorFitWarning,
                stacklevel=2,
            )
        return self

    @property
    def params_(self) -> dict[str, float]:
        """Fitted parameters as a dict."""
        check_is_fitted(self, "p_")
        return {"p": self.p_, "q": self.q_, "gamma": self.gamma_}

    @property
    def population_mean(self) -> float:
        """Mean order value of the population, p γ / (q − 1)."""
        check_is_fitted(self, "p_")
        return self.p_ * self.gamma_ / (self.q_ - 1) if self.q_ > 1 else float("nan")

    def conditional_expected_value(self, X) -> pd.Series:
        """E[order value | x, m̄] = p (γ + m̄ x) / (p x + q − 1); the population mean when x = 0."""
        check_is_fitted(self, "p_")
        x, m = _as_arrays(X, self._names)
        m = np.where(np.isfinite(m) & (m > 0), m, 0.0)
        value = self.p_ * (self.gamma_ + m * x) / (self.p_ * x + self.q_ - 1)
        value = np.where(x > 0, value, self.population_mean)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.Series(value, index=index, dtype="float64")
