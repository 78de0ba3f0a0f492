"""The simulated customer bases: retailers whose ground truth is known.

Two generative models are available (both documented in ``docs/simulation.md``):

``btyd`` (:func:`simulate_base`, the default) is BG/NBD + Gamma-Gamma by construction:

* Each customer belongs to one latent **persona**, which sets the distributions of everything below.
* **Purchases follow BG/NBD**: after the first purchase at ``t0``, repeat purchases arrive as a Poisson
  process with rate ``lambda ~ Gamma(r, alpha)`` (per day); after each repeat purchase the customer
  drops out for good with probability ``p``. ``p`` starts from ``Beta(a, b)`` and is raised for
  customers whose latent **satisfaction** ``s ~ Normal(mu_persona, 1)`` is low:
  ``logit(p) = logit(p_beta) - satisfaction_effect * s``.
* **Order values follow Gamma-Gamma**: ``nu ~ Gamma(q, gamma)`` per customer, each order's list value
  ``z ~ Gamma(p_spend, nu)``; the customer's mean order value is ``p_spend / nu``.
* Each order has ``1 + Poisson(lines)`` lines; each line has a category (drawn from the customer's own
  Dirichlet category preferences, concentrated for narrow buyers), a product within that category,
  a quantity, the channel of the order, a discount when the order used one, and a cost of goods from
  the category's margin. A line is returned (a negative row 1-30 days later) with the persona's
  return probability.
* **Acquisition**: a channel (persona-dependent) with a cost; referral customers name a referrer who
  joined earlier, chosen with weight ``exp(2 s)``, so referrals come mostly from satisfied customers.
* **Feedback**: orders trigger NPS answers (score around ``7 + 1.8 s``) and support tickets
  (likelier when ``s`` is low and on returns); tickets are followed by CSAT answers.

``drift`` (:func:`simulate_drift`) keeps the personas, lines, channels, acquisition and feedback
but is deliberately *not* BG/NBD: purchase intensity follows an annual and a weekly cycle, customers
drop out through a daily hazard driven by a satisfaction that evolves with every order (returns and
support tickets make it worse), order values trend per customer and with price inflation, and later
acquisition cohorts buy less and leave sooner while acquisition itself grows. Its parameters are the
fields of :class:`DriftParams`.

Ground truth is written beside the data, never in it: per customer persona, latent parameters,
whether still alive at the observation end, and the transactions of the ``future_days`` after it (a
separate file, for evaluation only). Everything is vectorised over customers and transactions: no
Python loop per customer or transaction (the drift base loops over days, each step vectorised over
the customers alive that day), so 10 million rows take well under a minute.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "ACQUISITION_CHANNELS",
    "PERSONAS",
    "DriftParams",
    "Persona",
    "SimulatedBase",
    "simulate",
    "simulate_base",
    "simulate_drift",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
    "CampaignParams",
    "CAMPAIGN_EFFECTS",
    "add_campaign",
]
CATEGORIES = ("grocery", "home", "fashion", "electronics", "beauty", "toys", "garden", "sports")
#: Gross margin (share of list price) per category, in CATEGORIES order.
CATEGORY_MARGINS = (0.15, 0.35, 0.50, 0.12, 0.55, 0.40, 0.35, 0.30)
CHANNELS = ("web", "app", "store")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "referral", "affiliate")
#: Mean acquisition cost per channel (currency units), in ACQUISITION_CHANNELS order.
ACQUISITION_COSTS = (5.0, 45.0, 28.0, 15.0, 20.0)
PRODUCTS_PER_CATEGORY = 60


@dataclass(frozen=True)
class Persona:
    """Parameters of one latent persona (all rates per day)."""

    name: str
    weight: float
    r: float  # Gamma shape of the purchase rate
    alpha: float  # Gamma rate of the purchase rate (mean rate = r / alpha)
    a: float  # Beta dropout
    b: float
    p_spend: float  # Gamma-Gamma
    q: float
    gamma: float
    breadth: float  # Dirichlet concentration over categories: small = few categories
    lines: float  # mean extra lines per order
    channel_mix: tuple[float, float, float]  # web, app, store
    discount_prob: float
    return_prob: float
    satisfaction_mean: float
    acquisition_mix: tuple[float, float, float, float, float]

    @property
    def mean_rate(self) -> float:
        """Mean purchase rate per day, r / alpha."""
        return self.r / self.alpha

    @property
    def mean_order_value(self) -> float:
        """Population mean order value of the persona, p * gamma / (q - 1)."""
        return self.p_spend * self.gamma / (self.q - 1)


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "champions",
        0.10,
        r=4.0,
        alpha=80.0,
        a=1.0,
        b=30.0,
        p_spend=6.0,
        q=5.0,
        gamma=80.0,
        breadth=1.5,
        lines=2.5,
        channel_mix=(0.35, 0.55, 0.10),
        discount_prob=0.10,
        return_prob=0.04,
        satisfaction_mean=1.0,
        acquisition_mix=(0.4, 0.1, 0.1, 0.3, 0.1),
    ),
    Persona(
        "loyal_regulars",
        0.18,
        r=3.0,
        alpha=105.0,
        a=1.0,
        b=20.0,
        p_spend=5.0,
        q=6.0,
        gamma=60.0,
        breadth=0.8,
        lines=1.5,
        channel_mix=(0.50, 0.30, 0.20),
        discount_prob=0.15,
        return_prob=0.05,
        satisfaction_mean=0.5,
        acquisition_mix=(0.35, 0.2, 0.15, 0.2, 0.1),
    ),
    Persona(
        "big_ticket_occasionals",
        0.12,
        r=2.0,
        alpha=240.0,
        a=1.0,
        b=12.0,
        p_spend=4.0,
        q=4.0,
        gamma=225.0,
        breadth=0.3,
        lines=0.5,
        channel_mix=(0.30, 0.10, 0.60),
        discount_prob=0.05,
        return_prob=0.08,
        satisfaction_mean=0.2,
        acquisition_mix=(0.2, 0.45, 0.1, 0.1, 0.15),
    ),
    Persona(
        "bargain_hunters",
        0.20,
        r=2.0,
        alpha=90.0,
        a=2.0,
        b=14.0,
        p_spend=3.0,
        q=5.0,
        gamma=47.0,
        breadth=0.6,
        lines=1.0,
        channel_mix=(0.45, 0.45, 0.10),
        discount_prob=0.65,
        return_prob=0.06,
        satisfaction_mean=0.0,
        acquisition_mix=(0.1, 0.2, 0.3, 0.05, 0.35),
    ),
    Persona(
        "serial_returners",
        0.10,
        r=2.5,
        alpha=125.0,
        a=2.0,
        b=16.0,
        p_spend=4.0,
        q=5.0,
        gamma=80.0,
        breadth=0.5,
        lines=2.0,
        channel_mix=(0.65, 0.30, 0.05),
        discount_prob=0.20,
        return_prob=0.30,
        satisfaction_mean=-0.3,
        acquisition_mix=(0.15, 0.3, 0.35, 0.05, 0.15),
    ),
    Persona(
        "one_and_done",
        0.30,
        r=1.0,
        alpha=150.0,
        a=3.0,
        b=5.0,
        p_spend=3.0,
        q=5.0,
        gamma=60.0,
        breadth=0.3,
        lines=0.5,
        channel_mix=(0.55, 0.15, 0.30),
        discount_prob=0.30,
        return_prob=0.05,
        satisfaction_mean=-0.8,
        acquisition_mix=(0.15, 0.3, 0.3, 0.05, 0.2),
    ),
)

SATISFACTION_EFFECT = 0.6  # how strongly low satisfaction raises dropout (on the logit scale)


@dataclass
class SimulatedBase:
    """What :func:`simulate_base` returns: contract tables and the ground truth beside them."""

    transactions: pd.DataFrame
    customers: pd.DataFrame
    interactions: pd.DataFrame
    truth: pd.DataFrame
    future_transactions: pd.DataFrame
    observation_end: pd.Timestamp
    params: dict = field(default_factory=dict)
    campaigns: pd.DataFrame | None = None


def _exp_orderstats(rng: np.random.Generator, n_events: np.ndarray, k: np.ndarray) -> np.ndarray:
    """First ``k[i]`` of ``n_events[i]`` sorted Uniform(0, 1) draws, for every i, concatenated.

    Uses exponential spacings: the sorted uniforms are ``S_j / S_{n+1}`` with ``S`` the cumulative
    sums of n + 1 standard exponentials, and ``S_{n+1} = S_k + Gamma(n + 1 - k)``. Only ``k`` draws per
    customer are made, so the cost is the number of realised events, not of potential ones.
    """
    total = int(k.sum())
    owner = np.repeat(np.arange(len(k)), k)
    e = rng.standard_exponential(total)
    cs = np.cumsum(e)
    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    offset = np.where(starts > 0, cs[starts - 1], 0.0)
    s = cs - offset[owner]
    last = np.zeros(len(k))
    has = k > 0
    last[has] = s[np.cumsum(k)[has] - 1]
    tail = rng.standard_gamma(np.maximum(n_events + 1 - k, 1e-12).astype(float))
    s_total = last + tail
    return s / s_total[owner]


def _shop_hours(days: np.ndarray) -> np.ndarray:
    """Squeeze each time's fraction of a day into 07:00-23:00 (monotone, same day)."""
    day = np.floor(days)
    return day + (7 + 16 * (days - day)) / 24


def _categorical_rows(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Draw one category index per element of ``rows`` from ``probs[rows]`` (row-wise)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(rows))[:, None] * cum[rows, -1:]
    return (cum[rows] < u).sum(axis=1)


@dataclass(frozen=True)
class DriftParams:
    """Parameters of the ``drift`` base (:func:`simulate_drift`); every rate is per day or per year.

    Seasonality
        ``seasonal_amplitude`` A: purchase intensity is multiplied by ``1 + A cos(2 pi (doy - peak) /
        365.25)``, so the peak is ``(1 + A) / (1 - A)`` times the trough (1.74 for A = 0.27), the peak
        on day-of-year ``seasonal_peak_doy`` (335 = 1 December) and the trough half a year away (early
        June). ``weekly_pattern`` multiplies it by day of week, Monday first (normalised to mean 1).
    Satisfaction
        Starts at ``s0 ~ Normal(mu_persona + cohort_satisfaction_trend * years, 1)``. After every
        order it moves as an AR(1) around the customer's own starting level: ``s <- s0 +
        satisfaction_persistence (s - s0) + Normal(satisfaction_step_mean, satisfaction_step_sd) -
        return_penalty * returned lines - ticket_penalty * tickets``.
    Dropout
        A daily hazard ``h = hazard_scale * p_beta * persona_mean_rate * exp(cohort_hazard_trend *
        years) * exp(-satisfaction_hazard_effect * s) * (1 + early_hazard_boost * exp(
        cohort_early_hazard_trend * years) * exp(-tenure / early_hazard_days))`` with ``p_beta ~
        Beta(a, b)`` of the persona: dropout happens between purchases, likelier when unhappy and early.
    Spend
        Each customer's order values drift by ``exp(trend * years since first purchase)``, ``trend ~
        Normal(0, spend_trend_sd)`` per year, and prices rise by ``inflation_per_year`` (compounded).
    Cohorts
        ``years`` is the acquisition time in years after ``start_date``. The purchase rate is
        ``Gamma(r, alpha) * exp(cohort_rate_trend * years)``; the acquisition intensity grows as
        ``exp(acquisition_growth * t)`` (t in years) and follows the annual cycle with amplitude
        ``acquisition_seasonal_amplitude``.
    """

    seasonal_amplitude: float = 0.27
    seasonal_peak_doy: int = 335
    weekly_pattern: tuple[float, ...] = (0.95, 0.90, 0.92, 0.98, 1.05, 1.15, 1.05)
    satisfaction_persistence: float = 0.85
    satisfaction_step_mean: float = 0.05
    satisfaction_step_sd: float = 0.3
    return_penalty: float = 0.15
    ticket_penalty: float = 0.3
    hazard_scale: float = 0.7
    satisfaction_hazard_effect: float = 0.8
    early_hazard_boost: float = 2.0
    early_hazard_days: float = 60.0
    spend_trend_sd: float = 0.15
    inflation_per_year: float = 0.04
    cohort_rate_trend: float = -0.2
    cohort_hazard_trend: float = 0.25
    cohort_early_hazard_trend: float = 0.4
    cohort_satisfaction_trend: float = -0.15
    acquisition_growth: float = 0.4
    acquisition_seasonal_amplitude: float = 0.27

    def __post_init__(self) -> None:
        """Reject values the simulation cannot honour, naming the field."""
        for name in ("seasonal_amplitude", "acquisition_seasonal_amplitude"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1) so intensities stay positive")
        if not 1 <= self.seasonal_peak_doy <= 366:
            raise ValueError("seasonal_peak_doy must be a day of the year, 1..366")
        week = tuple(float(w) for w in self.weekly_pattern)
        if len(week) != 7 or min(week) <= 0:
            raise ValueError("weekly_pattern needs 7 positive weights, Monday first")
        object.__setattr__(self, "weekly_pattern", week)  # lists from YAML become a hashable tuple
        if not 0 <= self.satisfaction_persistence <= 1:
            raise ValueError("satisfaction_persistence must be in [0, 1]")
        for name in ("satisfaction_step_sd", "hazard_scale", "early_hazard_boost", "spend_trend_sd"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.early_hazard_days <= 0:
            raise ValueError("early_hazard_days must be > 0")
        if self.inflation_per_year <= -1:
            raise ValueError("inflation_per_year must be > -1")

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None) -> DriftParams:
        """The defaults with ``overrides`` (field name -> value) applied; unknown names are errors."""
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown drift parameter(s) {unknown}; valid: {sorted(known)}")
        return cls(**overrides)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (the weekly pattern as a list)."""
        out = dataclasses.asdict(self)
        out["weekly_pattern"] = list(self.weekly_pattern)
        return out


# --------------------------------------------------------------------------------------------------
# Steps shared by both bases. Each step draws its random numbers in a fixed order, so a base that
# calls the steps in the same order gives the same numbers for the same seed.

_PERSONA_FIELDS = (
    "r",
    "alpha",
    "a",
    "b",
    "p_spend",
    "q",
    "gamma",
    "breadth",
    "lines",
    "discount_prob",
    "return_prob",
    "satisfaction_mean",
)


def _persona_arrays(personas: tuple[Persona, ...], persona_idx: np.ndarray) -> dict[str, np.ndarray]:
    """Each persona parameter as one value per customer."""
    table = {f: np.array([getattr(p, f) for p in personas]) for f in _PERSONA_FIELDS}
    return {k: v[persona_idx] for k, v in table.items()}


def _customer_ids(t0: np.ndarray) -> np.ndarray:
    """Ids ``C000001``... in acquisition order, as a real system would number its customers."""
    n = len(t0)
    order = np.argsort(t0, kind="stable")
    width = max(6, len(str(n)))
    ids = np.empty(n, dtype=object)
    ids[order] = [f"C{i:0{width}d}" for i in range(1, n + 1)]
    return ids


def _order_attributes(
    rng: np.random.Generator,
    personas: tuple[Persona, ...],
    persona_idx: np.ndarray,
    order_owner: np.ndarray,
    discount_prob: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each order's channel (from the persona's mix) and discount rate (0 or 10-30 %)."""
    n_orders = len(order_owner)
    channel_mix = np.array([p.channel_mix for p in personas])
    order_channel = _categorical_rows(rng, channel_mix, persona_idx[order_owner])
    discounted = rng.random(n_orders) < discount_prob[order_owner]
    discount_rate = np.where(discounted, rng.uniform(0.1, 0.3, n_orders), 0.0)
    return order_channel, discount_rate


def _order_lines(
    rng: np.random.Generator,
    n_lines: np.ndarray,
    order_owner: np.ndarray,
    order_value: np.ndarray,
    discount_rate: np.ndarray,
    breadth: np.ndarray,
) -> dict[str, np.ndarray]:
    """Split each order's list value over its ``n_lines`` lines and give each line its attributes.

    Returns the per-line arrays ``line_order`` (index of the order), ``line_owner``, ``line_cat``,
    ``product_rank``, ``quantity``, ``amount`` (paid), ``discount`` and ``cost``.
    """
    line_order = np.repeat(np.arange(len(order_owner)), n_lines)
    share = rng.standard_exponential(len(line_order))
    share /= np.bincount(line_order, weights=share)[line_order]
    list_amount = order_value[line_order] * share
    line_owner = order_owner[line_order]

    # Category preferences: Dirichlet per customer, concentrated for narrow buyers.
    conc = np.maximum(breadth, 0.05)[:, None] * np.ones(len(CATEGORIES))
    cat_pref = rng.gamma(conc)
    cat_pref = np.maximum(cat_pref, 1e-12)
    cat_pref /= cat_pref.sum(axis=1, keepdims=True)
    line_cat = _categorical_rows(rng, cat_pref, line_owner)
    # Zipf-like popularity within a category.
    product_rank = np.minimum(rng.zipf(1.6, len(line_order)), PRODUCTS_PER_CATEGORY) - 1
    quantity = 1 + rng.poisson(0.6, len(line_order))
    margins = np.array(CATEGORY_MARGINS)
    amount = np.round(list_amount * (1 - discount_rate[line_order]), 2)
    discount = np.maximum(np.round(list_amount - amount, 2), 0.0) + 0.0  # no negative zeros
    cost = np.round(list_amount * (1 - margins[line_cat]) * rng.uniform(0.9, 1.1, len(line_cat)), 2)
    amount = np.maximum(amount, 0.01)
    return {
        "line_order": line_order,
        "line_owner": line_owner,
        "line_cat": line_cat,
        "product_rank": product_rank,
        "quantity": quantity,
        "amount": amount,
        "discount": discount,
        "cost": cost,
    }


def _return_times(
    rng: np.random.Generator, order_time: np.ndarray, line_order: np.ndarray, returned: np.ndarray
) -> np.ndarray:
    """When each returned line comes back: 1-30 days after its order."""
    return order_time[line_order][returned] + rng.uniform(1, 30, int(returned.sum()))


def _transaction_tables(
    ids: np.ndarray,
    order_time: np.ndarray,
    order_channel: np.ndarray,
    lines: dict[str, np.ndarray],
    returned: np.ndarray,
    ret_time: np.ndarray,
    start: pd.Timestamp,
    obs_days: int,
    horizon_end: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The observed transactions (before ``obs_days``) and the future ones (up to ``horizon_end``)."""
    line_order, line_owner, line_cat = lines["line_order"], lines["line_owner"], lines["line_cat"]
    quantity, amount, cost, discount = (lines[k] for k in ("quantity", "amount", "cost", "discount"))
    order_ids = np.array([f"O{i:08d}" for i in range(1, len(order_time) + 1)], dtype=object)
    cat_names = np.array(CATEGORIES, dtype=object)
    product_ids = np.char.add(
        np.char.add(np.array([c[:3].upper() for c in CATEGORIES])[line_cat], "-"),
        np.char.zfill(lines["product_rank"].astype(str), 3),
    ).astype(object)
    ch_names = np.array(CHANNELS, dtype=object)

    def _frame(mask_lines: np.ndarray, ret_mask: np.ndarray) -> pd.DataFrame:
        sale = pd.DataFrame(
            {
                "customer_id": ids[line_owner[mask_lines]],
                "order_id": order_ids[line_order[mask_lines]],
                "timestamp": order_time[line_order[mask_lines]],
                "product_id": product_ids[mask_lines],
                "category": cat_names[line_cat[mask_lines]],
                "channel": ch_names[order_channel[line_order[mask_lines]]],
                "quantity": quantity[mask_lines].astype(float),
                "amount": amount[mask_lines],
                "cost": cost[mask_lines],
                "discount": discount[mask_lines],
            }
        )
        ridx = np.flatnonzero(returned)[ret_mask]
        back = pd.DataFrame(
            {
                "customer_id": ids[line_owner[ridx]],
                "order_id": np.char.add("R", order_ids[line_order[ridx]].astype(str)).astype(object),
                "timestamp": ret_time[ret_mask],
                "product_id": product_ids[ridx],
                "category": cat_names[line_cat[ridx]],
                "channel": ch_names[order_channel[line_order[ridx]]],
                "quantity": -quantity[ridx].astype(float),
                "amount": -amount[ridx],
                "cost": -cost[ridx],
                "discount": -discount[ridx],
            }
        )
        out = pd.concat([sale, back], ignore_index=True)
        out["timestamp"] = start + pd.to_timedelta(np.round(out["timestamp"] * 86400), unit="s")
        return out.sort_values(["timestamp", "order_id", "product_id"], kind="stable").reset_index(
            drop=True
        )

    line_time = order_time[line_order]
    in_obs = line_time < obs_days
    in_future = (line_time >= obs_days) & (line_time < horizon_end)
    ret_obs = ret_time < obs_days
    ret_future = (ret_time >= obs_days) & (ret_time < horizon_end)
    return _frame(in_obs, ret_obs), _frame(in_future, ret_future)


def _customers_table(
    rng: np.random.Generator,
    personas: tuple[Persona, ...],
    persona_idx: np.ndarray,
    t0: np.ndarray,
    satisfaction: np.ndarray,
    ids: np.ndarray,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """Acquisition channel and cost; referrers among earlier customers, weighted by satisfaction."""
    n = len(t0)
    acq_mix = np.array([p.acquisition_mix for p in personas])
    acq = _categorical_rows(rng, acq_mix, persona_idx)
    acq_cost = np.round(np.array(ACQUISITION_COSTS)[acq] * rng.lognormal(0.0, 0.3, n), 2)
    referred_by = np.full(n, None, dtype=object)
    by_t0 = np.argsort(t0, kind="stable")
    ref_weight = np.exp(2.0 * satisfaction[by_t0])
    cum_w = np.cumsum(ref_weight)
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[by_t0] = np.arange(n)
    is_ref = (acq == ACQUISITION_CHANNELS.index("referral")) & (rank_of > 0)
    acq[(acq == ACQUISITION_CHANNELS.index("referral")) & (rank_of == 0)] = 0
    prefix_w = cum_w[rank_of[is_ref] - 1]
    u = rng.random(int(is_ref.sum())) * prefix_w
    referrer_rank = np.searchsorted(cum_w, u, side="right")
    referred_by[is_ref] = ids[by_t0[referrer_rank]]
    signup = start + pd.to_timedelta(np.floor(t0), unit="D")
    return (
        pd.DataFrame(
            {
                "customer_id": ids,
                "signup_date": signup,
                "acquisition_channel": np.array(ACQUISITION_CHANNELS, dtype=object)[acq],
                "acquisition_cost": acq_cost,
                "referred_by": referred_by,
            }
        )
        .sort_values("customer_id")
        .reset_index(drop=True)
    )


def _nps_answers(
    rng: np.random.Generator, order_time: np.ndarray, s_order: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8 % of orders get an NPS answer 1-7 days later, scored around ``7 + 1.8 s``.

    Returns the mask of surveyed orders, the answer times and the scores.
    """
    nps_mask = rng.random(len(order_time)) < 0.08
    nps_time = order_time[nps_mask] + rng.uniform(1, 7, int(nps_mask.sum()))
    nps_score = np.clip(np.round(rng.normal(7.0 + 1.8 * s_order[nps_mask], 1.2)), 0, 10)
    return nps_mask, nps_time, nps_score


def _interactions_table(
    rng: np.random.Generator,
    ids: np.ndarray,
    nps_owner: np.ndarray,
    nps_time: np.ndarray,
    nps_score: np.ndarray,
    t_owner: np.ndarray,
    t_time: np.ndarray,
    t_satisfaction: np.ndarray,
    start: pd.Timestamp,
    obs_days: int,
) -> pd.DataFrame:
    """NPS answers, support tickets and the CSAT answers 60 % of tickets get, up to ``obs_days``.

    ``t_satisfaction`` is the customer's satisfaction behind each ticket; CSAT is scored around
    ``3.5 + 0.8 s``.
    """
    csat_mask = rng.random(len(t_owner)) < 0.6
    csat_time = t_time[csat_mask] + rng.uniform(0.5, 3, int(csat_mask.sum()))
    csat_score = np.clip(np.round(rng.normal(3.5 + 0.8 * t_satisfaction[csat_mask], 0.8)), 1, 5)
    interactions = pd.DataFrame(
        {
            "customer_id": np.concatenate([ids[nps_owner], ids[t_owner], ids[t_owner[csat_mask]]]),
            "timestamp": np.concatenate([nps_time, t_time, csat_time]),
            "kind": np.concatenate(
                [
                    np.full(len(nps_time), "nps", dtype=object),
                    np.full(len(t_time), "support_ticket", dtype=object),
                    np.full(len(csat_time), "csat", dtype=object),
                ]
            ),
            "score": np.concatenate([nps_score, np.full(len(t_time), np.nan), csat_score]),
        }
    )
    interactions = interactions[interactions["timestamp"] < obs_days].copy()
    interactions["timestamp"] = start + pd.to_timedelta(
        np.round(interactions["timestamp"] * 86400), unit="s"
    )
    interactions = interactions.sort_values(["timestamp", "customer_id", "kind"], kind="stable")
    return interactions.reset_index(drop=True)


def _with_future(truth: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
    """Add the future window's revenue, orders and purchase days to a truth indexed by customer."""
    fut = future.groupby("customer_id").agg(
        future_revenue=("amount", "sum"), future_orders=("order_id", "nunique")
    )
    sales_fut = future.loc[future["amount"] > 0, ["customer_id", "timestamp"]]
    fut_days = (
        sales_fut.assign(day=sales_fut["timestamp"].dt.normalize())
        .drop_duplicates(["customer_id", "day"])["customer_id"]
        .value_counts()
    )
    truth["future_revenue"] = fut["future_revenue"].reindex(truth.index).fillna(0.0)
    truth["future_orders"] = fut["future_orders"].reindex(truth.index).fillna(0).astype(int)
    truth["future_purchase_days"] = fut_days.reindex(truth.index).fillna(0).astype(int)
    return truth.reset_index().sort_values("customer_id").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# The btyd base: BG/NBD + Gamma-Gamma by construction.


def _btyd_purchases(
    rng: np.random.Generator, lam: np.ndarray, p_drop: np.ndarray, t0: np.ndarray, horizon_end: int
) -> dict[str, np.ndarray]:
    """Repeat purchases: Poisson(lam) over (t0, horizon_end), stopped after the J-th, J ~ Geom(p).

    Returns the orders sorted by (customer, time) as ``order_owner`` and ``order_time`` (shop hours,
    first purchases included), the shop-hours ``t0``, and per customer ``lifetime_repeats``, the
    repeat times ``rep_owner``/``rep_time`` and ``death_day`` (the last repeat of those who dropped out
    within the horizon, else NaN).
    """
    n = len(t0)
    window = horizon_end - t0
    n_events = rng.poisson(lam * window)
    lifetime_repeats = rng.geometric(p_drop)
    k = np.minimum(n_events, lifetime_repeats)
    frac = _exp_orderstats(rng, n_events, k)
    rep_owner = np.repeat(np.arange(n), k)
    rep_time = t0[rep_owner] + frac * window[rep_owner]

    # Map the day fraction onto shop hours (07:00-23:00); the day and the order are unchanged.
    t0, rep_time = _shop_hours(t0), _shop_hours(rep_time)
    order_owner = np.concatenate([np.arange(n), rep_owner])
    order_time = np.concatenate([t0, rep_time])
    srt = np.lexsort((order_time, order_owner))

    died = k == lifetime_repeats  # dropped out within the simulated horizon
    last_rep = np.full(n, np.nan)
    if len(rep_owner):
        last_idx = np.cumsum(k)[k > 0] - 1
        last_rep[k > 0] = rep_time[last_idx]
    return {
        "order_owner": order_owner[srt],
        "order_time": order_time[srt],
        "t0": t0,
        "rep_owner": rep_owner,
        "rep_time": rep_time,
        "lifetime_repeats": lifetime_repeats,
        "death_day": np.where(died & (k > 0), last_rep, np.nan),
    }


def _btyd_tickets(
    rng: np.random.Generator,
    order_owner: np.ndarray,
    order_time: np.ndarray,
    s_order: np.ndarray,
    line_owner: np.ndarray,
    returned: np.ndarray,
    ret_time: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Support tickets: an order raises one with ``expit(-3 - 0.8 s)``, a returned line with 30 %."""
    ticket_p = expit(-3.0 - 0.8 * s_order)
    t_mask = rng.random(len(order_owner)) < ticket_p
    t_owner = np.concatenate([order_owner[t_mask], line_owner[returned]])
    t_time = np.concatenate(
        [
            order_time[t_mask] + rng.uniform(0, 10, int(t_mask.sum())),
            ret_time + rng.uniform(0, 3, len(ret_time)),
        ]
    )
    keep_t = rng.random(len(t_owner)) < np.where(np.arange(len(t_owner)) < int(t_mask.sum()), 1.0, 0.3)
    return t_owner[keep_t], t_time[keep_t]


def _btyd_truth(
    ids: np.ndarray,
    names: np.ndarray,
    lam: np.ndarray,
    p_drop: np.ndarray,
    p_beta: np.ndarray,
    nu: np.ndarray,
    pick: dict[str, np.ndarray],
    satisfaction: np.ndarray,
    pur: dict[str, np.ndarray],
    start: pd.Timestamp,
    obs_days: int,
) -> pd.DataFrame:
    """The btyd ground truth per customer (indexed by id): latent parameters and the alive state."""
    n = len(ids)
    t0 = pur["t0"]
    rep_owner, rep_time = pur["rep_owner"], pur["rep_time"]
    repeats_by_end = np.bincount(rep_owner[rep_time < obs_days], minlength=n)
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "persona": names,
            "purchase_rate_per_day": lam,
            "dropout_prob": p_drop,
            "dropout_prob_beta": p_beta,
            "spend_rate_nu": nu,
            "mean_order_value": pick["p_spend"] / nu,
            "satisfaction": satisfaction,
            "first_purchase": start + pd.to_timedelta(np.round(t0 * 86400), unit="s"),
            "lifetime_repeats": pur["lifetime_repeats"],
            "alive_at_end": pur["lifetime_repeats"] > repeats_by_end,
            "death_date": start + pd.to_timedelta(pur["death_day"], unit="D"),
        }
    ).set_index("customer_id")
    truth["death_date"] = truth["death_date"].where(truth["death_date"] >= start)
    return truth


def simulate_base(
    n_customers: int = 20_000,
    start_date: dt.date = dt.date(2022, 1, 1),
    end_date: dt.date = dt.date(2024, 6, 30),
    future_days: int = 365,
    initial_share: float = 0.3,
    seed: int = 42,
    personas: tuple[Persona, ...] = PERSONAS,
) -> SimulatedBase:
    """Simulate the ``btyd`` customer base (BG/NBD + Gamma-Gamma) with known ground truth.

    Parameters
    ----------
    n_customers : int
        Customers acquired over the observation period.
    start_date, end_date : date
        Observation period (both inclusive).
    future_days : int
        Length of the ground-truth window after ``end_date``.
    initial_share : float
        Share of customers whose first purchase falls in the first 30 days (an existing base).
    seed : int
        Seed; the same seed gives identical frames.
    personas : tuple of Persona
        The latent personas and their weights.

    Returns
    -------
    SimulatedBase

    Examples
    --------
    >>> base = simulate_base(200, seed=1)
    >>> base.truth["customer_id"].is_unique
    True
    """
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    start = pd.Timestamp(start_date)
    end = pd.Timestamp(end_date)
    obs_days = (end - start).days + 1  # end_date inclusive
    horizon_end = obs_days + future_days  # days since start; future window is [obs_days, +future)

    weights = np.array([p.weight for p in personas])
    persona_idx = rng.choice(len(personas), size=n, p=weights / weights.sum())
    pick = _persona_arrays(personas, persona_idx)

    # Latent individual parameters (BG/NBD and Gamma-Gamma heterogeneity).
    lam = rng.gamma(pick["r"], 1.0 / pick["alpha"])
    p_beta = np.clip(rng.beta(pick["a"], pick["b"]), 1e-4, 1 - 1e-4)
    satisfaction = rng.normal(pick["satisfaction_mean"], 1.0)
    p_drop = expit(logit(p_beta) - SATISFACTION_EFFECT * satisfaction)
    nu = rng.gamma(pick["q"], 1.0 / pick["gamma"])

    # First purchase: an existing base in the first 30 days, the rest acquired over the period.
    initial = rng.random(n) < initial_share
    t0 = np.where(initial, rng.uniform(0, min(30, obs_days), n), rng.uniform(0, obs_days, n))
    ids = _customer_ids(t0)

    pur = _btyd_purchases(rng, lam, p_drop, t0, horizon_end)
    order_owner, order_time, t0 = pur["order_owner"], pur["order_time"], pur["t0"]

    # Orders: value, channel, discount; then lines and returns.
    order_value = rng.gamma(pick["p_spend"][order_owner], 1.0 / nu[order_owner])
    order_channel, discount_rate = _order_attributes(
        rng, personas, persona_idx, order_owner, pick["discount_prob"]
    )
    n_lines = 1 + rng.poisson(pick["lines"][order_owner])
    lines = _order_lines(rng, n_lines, order_owner, order_value, discount_rate, pick["breadth"])
    line_owner = lines["line_owner"]
    returned = rng.random(len(line_owner)) < pick["return_prob"][line_owner]
    ret_time = _return_times(rng, order_time, lines["line_order"], returned)
    transactions, future = _transaction_tables(
        ids, order_time, order_channel, lines, returned, ret_time, start, obs_days, horizon_end
    )
    customers = _customers_table(rng, personas, persona_idx, t0, satisfaction, ids, start)

    # Feedback: NPS after some orders, tickets (more when unhappy and on returns), CSAT after tickets.
    s_order = satisfaction[order_owner]
    nps_mask, nps_time, nps_score = _nps_answers(rng, order_time, s_order)
    t_owner, t_time = _btyd_tickets(
        rng, order_owner, order_time, s_order, line_owner, returned, ret_time
    )
    interactions = _interactions_table(
        rng,
        ids,
        order_owner[nps_mask],
        nps_time,
        nps_score,
        t_owner,
        t_time,
        satisfaction[t_owner],
        start,
        obs_days,
    )

    names = np.array([p.name for p in personas], dtype=object)[persona_idx]
    truth = _btyd_truth(ids, names, lam, p_drop, p_beta, nu, pick, satisfaction, pur, start, obs_days)
    truth = _with_future(truth, future)

    return SimulatedBase(
        transactions=transactions,
        customers=customers,
        interactions=interactions,
        truth=truth,
        future_transactions=future,
        observation_end=end,
        params={
            "n_customers": n,
            "start_date": str(start.date()),
            "end_date": str(end.date()),
            "future_days": future_days,
            "initial_share": initial_share,
            "seed": seed,
        },
    )


# --------------------------------------------------------------------------------------------------
# The drift base: seasonality, satisfaction-driven dropout, spend trends and cohort drift.

_YEAR = 365.25
_SHOP_MIDDAY = 15 / 24  # mean time of day of an order once squeezed into shop hours (07:00-23:00)


def _annual_cycle(dates: pd.DatetimeIndex, amplitude: float, peak_doy: int) -> np.ndarray:
    """``1 + A cos(2 pi (doy - peak) / 365.25)``: mean 1 over a year, peak/trough ``(1+A)/(1-A)``."""
    doy = dates.day_of_year.to_numpy()
    return 1.0 + amplitude * np.cos(2 * np.pi * (doy - peak_doy) / _YEAR)


def _purchase_season(start: pd.Timestamp, n_days: int, params: DriftParams) -> np.ndarray:
    """Multiplier of the purchase intensity for each day since ``start``: annual times weekly cycle."""
    dates = pd.date_range(start, periods=n_days, freq="D")
    week = np.asarray(params.weekly_pattern)
    week = week / week.mean()  # the weekly pattern moves purchases between days, not their total
    annual = _annual_cycle(dates, params.seasonal_amplitude, params.seasonal_peak_doy)
    return annual * week[dates.day_of_week.to_numpy()]


def _drift_acquisition(
    rng: np.random.Generator,
    n: int,
    start: pd.Timestamp,
    obs_days: int,
    initial_share: float,
    params: DriftParams,
) -> np.ndarray:
    """First-purchase times (days since start): an existing base, then growing, seasonal acquisition.

    The acquisition intensity on day ``d`` is ``exp(acquisition_growth * d / 365.25)`` times the annual
    cycle; times are drawn by inverting its cumulative sum, so the cost is one search per customer.
    """
    initial = rng.random(n) < initial_share
    days = np.arange(obs_days)
    dates = pd.date_range(start, periods=obs_days, freq="D")
    weight = np.exp(params.acquisition_growth * (days + 0.5) / _YEAR) * _annual_cycle(
        dates, params.acquisition_seasonal_amplitude, params.seasonal_peak_doy
    )
    cdf = np.cumsum(weight) / weight.sum()
    day = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), obs_days - 1)
    later = day + rng.random(n)
    existing = rng.uniform(0, min(30, obs_days), n)
    return np.where(initial, existing, later)


def _drift_latents(
    rng: np.random.Generator, pick: dict[str, np.ndarray], t0: np.ndarray, params: DriftParams
) -> dict[str, np.ndarray]:
    """Each customer's latent parameters, shifted by the cohort (years from start to acquisition)."""
    n = len(t0)
    years = t0 / _YEAR
    lam = rng.gamma(pick["r"], 1.0 / pick["alpha"]) * np.exp(params.cohort_rate_trend * years)
    p_beta = np.clip(rng.beta(pick["a"], pick["b"]), 1e-4, 1 - 1e-4)
    s0 = rng.normal(pick["satisfaction_mean"] + params.cohort_satisfaction_trend * years, 1.0)
    nu = rng.gamma(pick["q"], 1.0 / pick["gamma"])
    trend = rng.normal(0.0, params.spend_trend_sd, n)
    # The persona's BG/NBD dropout per purchase times its mean rate is a dropout per day of the same
    # order of magnitude, so personas keep their relative lifetimes from the btyd base.
    mean_rate = pick["r"] / pick["alpha"]
    hazard_base = params.hazard_scale * p_beta * mean_rate * np.exp(params.cohort_hazard_trend * years)
    early = params.early_hazard_boost * np.exp(params.cohort_early_hazard_trend * years)
    return {
        "t0": t0,
        "years": years,
        "lam": lam,
        "p_beta": p_beta,
        "s0": s0,
        "nu": nu,
        "trend": trend,
        "hazard_base": hazard_base,
        "early": early,
    }


def _hazard(
    lat: dict[str, np.ndarray], who: np.ndarray, s: np.ndarray, t: float, params: DriftParams
) -> np.ndarray:
    """Daily dropout hazard of customers ``who`` with satisfaction ``s`` at time ``t`` (mid-day)."""
    tenure = t - lat["t0"][who]
    early = 1.0 + lat["early"][who] * np.exp(-tenure / params.early_hazard_days)
    return lat["hazard_base"][who] * np.exp(-params.satisfaction_hazard_effect * s) * early


def _order_experience(
    rng: np.random.Generator,
    buyers: np.ndarray,
    s: np.ndarray,
    lat: dict[str, np.ndarray],
    pick: dict[str, np.ndarray],
    params: DriftParams,
) -> dict[str, np.ndarray]:
    """What happens with today's orders: lines, returns, tickets, and the satisfaction they leave.

    Updates ``s`` in place: an AR(1) step around the customer's starting satisfaction, pulled down
    by each returned line and each support ticket.
    """
    k = len(buyers)
    s_before = s[buyers]
    n_lines = 1 + rng.poisson(pick["lines"][buyers])
    n_ret = rng.binomial(n_lines, pick["return_prob"][buyers])
    ticket = rng.random(k) < expit(-3.0 - 0.8 * s_before)  # as often as in the btyd base
    # A return raises a ticket 30 % of the time per line; one ticket per order covers them all.
    ret_ticket = (n_ret > 0) & (rng.random(k) < 1.0 - 0.7**n_ret)
    step = rng.normal(params.satisfaction_step_mean, params.satisfaction_step_sd, k)
    home = lat["s0"][buyers]
    s_after = (
        home
        + params.satisfaction_persistence * (s_before - home)
        + step
        - params.return_penalty * n_ret
        - params.ticket_penalty * (ticket.astype(float) + ret_ticket)
    )
    s[buyers] = s_after
    return {
        "owner": buyers,
        "s_before": s_before,
        "s_after": s_after,
        "n_lines": n_lines,
        "n_ret": n_ret,
        "ticket": ticket,
        "ret_ticket": ret_ticket,
    }


def _drift_paths(
    rng: np.random.Generator,
    lat: dict[str, np.ndarray],
    pick: dict[str, np.ndarray],
    season: np.ndarray,
    obs_days: int,
    params: DriftParams,
) -> dict[str, np.ndarray]:
    """Walk the calendar day by day, each step vectorised over the customers alive that day.

    Satisfaction depends on the history of orders and dropout on satisfaction, so the process is
    path-dependent; one step per day (not per customer) keeps it cheap. On a customer's first day the
    first purchase happens; on later days the customer may drop out (the hazard, with the death
    time uniform within the day) and, if still there, buys with probability ``1 - exp(-lam season)``:
    at most one order a day, so the intensity is in purchase days.
    """
    t0 = lat["t0"]
    n, horizon_end = len(t0), len(season)
    day0 = np.floor(t0).astype(np.int64)
    by_day = np.argsort(day0, kind="stable")
    bounds = np.searchsorted(day0[by_day], np.arange(horizon_end + 1))
    death_frac = rng.random(n)
    s = lat["s0"].copy()
    s_end = None
    death_time = np.full(n, np.nan)
    s_death = np.full(n, np.nan)
    act = np.empty(0, dtype=np.int64)  # acquired on an earlier day and not dropped out
    days, records = [], []
    for d in range(horizon_end):
        if d == obs_days:
            s_end = s.copy()
        # Dropout first: a customer who leaves today makes no purchase today.
        gone = rng.random(len(act)) < -np.expm1(-_hazard(lat, act, s[act], d + 0.5, params))
        dead = act[gone]
        death_time[dead] = d + death_frac[dead]
        s_death[dead] = s[dead]
        act = act[~gone]
        buy = act[rng.random(len(act)) < -np.expm1(-lat["lam"][act] * season[d])]
        new = by_day[bounds[d] : bounds[d + 1]]
        act = np.concatenate([act, new])
        rec = _order_experience(rng, np.concatenate([buy, new]), s, lat, pick, params)
        records.append(rec)
        days.append(np.full(len(rec["owner"]), d, dtype=np.int64))
    orders = {k: np.concatenate([r[k] for r in records]) for k in records[0]}
    orders["day"] = np.concatenate(days)
    return {
        "orders": orders,
        "death_time": death_time,
        "s_death": s_death,
        "s_end": s if s_end is None else s_end,
    }


def _drift_orders(
    rng: np.random.Generator,
    raw: dict[str, np.ndarray],
    lat: dict[str, np.ndarray],
    pick: dict[str, np.ndarray],
    params: DriftParams,
) -> dict[str, np.ndarray]:
    """Order times (shop hours), sorted by (customer, time), and list values with trend and inflation."""
    owner, day = raw["owner"], raw["day"]
    t0 = lat["t0"]
    first = day == np.floor(t0[owner])  # nobody buys twice on the first day: this is the first order
    time = _shop_hours(np.where(first, t0[owner], day + rng.random(len(day))))
    srt = np.lexsort((time, owner))
    out = {k: v[srt] for k, v in raw.items()}
    out["time"] = time[srt]
    owner, time = out["owner"], out["time"]
    t0s = _shop_hours(t0)
    trend = np.exp(lat["trend"][owner] * (time - t0s[owner]) / _YEAR)
    inflation = (1.0 + params.inflation_per_year) ** (time / _YEAR)
    out["value"] = rng.gamma(pick["p_spend"][owner], 1.0 / lat["nu"][owner]) * trend * inflation
    return out


def _drift_tickets(
    rng: np.random.Generator,
    orders: dict[str, np.ndarray],
    line_order: np.ndarray,
    returned: np.ndarray,
    ret_time: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tickets decided with each order: times, owners, and the satisfaction after the order."""
    t_mask, r_mask = orders["ticket"], orders["ret_ticket"]
    # A returns ticket follows the order's first returned line (lines of an order are contiguous and
    # its returned lines come first).
    line_ret = np.full(len(line_order), np.nan)
    line_ret[returned] = ret_time
    first_line = np.searchsorted(line_order, np.flatnonzero(r_mask))
    t_orders = np.concatenate([np.flatnonzero(t_mask), np.flatnonzero(r_mask)])
    t_time = np.concatenate(
        [
            orders["time"][t_mask] + rng.uniform(0, 10, int(t_mask.sum())),
            line_ret[first_line] + rng.uniform(0, 3, int(r_mask.sum())),
        ]
    )
    return orders["owner"][t_orders], t_time, orders["s_after"][t_orders]


def _future_expectations(
    lat: dict[str, np.ndarray],
    pick: dict[str, np.ndarray],
    s_end: np.ndarray,
    season: np.ndarray,
    obs_days: int,
    params: DriftParams,
) -> dict[str, np.ndarray]:
    """The oracle's view of the future window, given a customer is alive at the observation end.

    ``purchase_rate_per_day`` is the mean over the window of the daily purchase probability (so it
    includes the seasons the window covers), ``mean_order_value`` the mean list value of an order in
    the window (days weighted by their purchase probability, trend and inflation included), and
    ``dropout_prob`` the probability of dropping out in the window with satisfaction frozen at its
    value at the end (it moves with future orders, which this ignores).
    """
    n = len(s_end)
    everyone = np.arange(n)
    t0s = _shop_hours(lat["t0"])
    mov0 = pick["p_spend"] / lat["nu"]
    sum_q = np.zeros(n)
    sum_qv = np.zeros(n)
    sum_h = np.zeros(n)
    # One day at a time keeps the memory at a few vectors rather than customers x days matrices.
    for d in range(obs_days, len(season)):
        t = d + _SHOP_MIDDAY
        q = -np.expm1(-lat["lam"] * season[d])
        value = mov0 * np.exp(lat["trend"] * (t - t0s) / _YEAR)
        value *= (1.0 + params.inflation_per_year) ** (t / _YEAR)
        sum_q += q
        sum_qv += q * value
        sum_h += _hazard(lat, everyone, s_end, d + 0.5, params)
    n_future = max(len(season) - obs_days, 1)
    return {
        "purchase_rate_per_day": sum_q / n_future,
        "mean_order_value": sum_qv / np.maximum(sum_q, 1e-300),
        "dropout_prob": -np.expm1(-sum_h),
    }


def _drift_truth(
    ids: np.ndarray,
    names: np.ndarray,
    lat: dict[str, np.ndarray],
    pick: dict[str, np.ndarray],
    paths: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    expect: dict[str, np.ndarray],
    start: pd.Timestamp,
    obs_days: int,
) -> pd.DataFrame:
    """The ground truth: the btyd base's columns with the drift semantics, plus the drift latents."""
    death_time = paths["death_time"]
    alive_at_end = ~(death_time < obs_days)  # NaN (never dropped out) compares False
    n_orders = np.bincount(orders["owner"], minlength=len(ids))
    t0s = _shop_hours(lat["t0"])
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "persona": names,
            "purchase_rate_per_day": expect["purchase_rate_per_day"],
            "dropout_prob": np.where(alive_at_end, expect["dropout_prob"], 1.0),
            "dropout_prob_beta": lat["p_beta"],
            "spend_rate_nu": lat["nu"],
            "mean_order_value": expect["mean_order_value"],
            # At the observation end, or at dropout for those who left before it.
            "satisfaction": paths["s_end"],
            "first_purchase": start + pd.to_timedelta(np.round(t0s * 86400), unit="s"),
            "lifetime_repeats": n_orders - 1,  # repeat orders over the whole simulated horizon
            "alive_at_end": alive_at_end,
            "death_date": start + pd.to_timedelta(death_time, unit="D"),
            "base_purchase_rate_per_day": lat["lam"],
            "base_mean_order_value": pick["p_spend"] / lat["nu"],
            "spend_trend_per_year": lat["trend"],
            "satisfaction_initial": lat["s0"],
            "satisfaction_at_dropout": paths["s_death"],
            "dropout_hazard_base": lat["hazard_base"],
            "acquisition_years": lat["years"],
        }
    ).set_index("customer_id")
    truth["death_date"] = truth["death_date"].where(truth["death_date"] >= start)
    return truth


def simulate_drift(
    n_customers: int = 20_000,
    start_date: dt.date = dt.date(2022, 1, 1),
    end_date: dt.date = dt.date(2024, 6, 30),
    future_days: int = 365,
    initial_share: float = 0.3,
    seed: int = 42,
    personas: tuple[Persona, ...] = PERSONAS,
    params: DriftParams | None = None,
) -> SimulatedBase:
    """Simulate the ``drift`` customer base: a retailer that is *not* BG/NBD by construction.

    Same tables, columns and truth columns as :func:`simulate_base`, with seasonality, dropout driven
    by an evolving satisfaction, spend trends with inflation, and cohort drift (see
    :class:`DriftParams` and ``docs/simulation.md``). The truth adds ``base_purchase_rate_per_day``,
    ``base_mean_order_value``, ``spend_trend_per_year``, ``satisfaction_initial``,
    ``satisfaction_at_dropout``, ``dropout_hazard_base`` and ``acquisition_years``.

    Parameters
    ----------
    n_customers, start_date, end_date, future_days, initial_share, seed, personas
        As in :func:`simulate_base`.
    params : DriftParams, optional
        The drift mechanisms' parameters; None uses the defaults.

    Returns
    -------
    SimulatedBase

    Examples
    --------
    >>> base = simulate_drift(200, seed=1)
    >>> base.truth["customer_id"].is_unique
    True
    """
    params = params or DriftParams()
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    start, end = pd.Timestamp(start_date), pd.Timestamp(end_date)
    obs_days = (end - start).days + 1  # end_date inclusive
    horizon_end = obs_days + future_days  # days since start; future window is [obs_days, +future)

    weights = np.array([p.weight for p in personas])
    persona_idx = rng.choice(len(personas), size=n, p=weights / weights.sum())
    pick = _persona_arrays(personas, persona_idx)
    t0 = _drift_acquisition(rng, n, start, obs_days, initial_share, params)
    ids = _customer_ids(t0)
    lat = _drift_latents(rng, pick, t0, params)
    season = _purchase_season(start, horizon_end, params)

    paths = _drift_paths(rng, lat, pick, season, obs_days, params)
    orders = _drift_orders(rng, paths["orders"], lat, pick, params)
    owner, order_time = orders["owner"], orders["time"]
    order_channel, discount_rate = _order_attributes(
        rng, personas, persona_idx, owner, pick["discount_prob"]
    )
    lines = _order_lines(rng, orders["n_lines"], owner, orders["value"], discount_rate, pick["breadth"])
    line_order = lines["line_order"]
    # The returns were decided with the order (they moved satisfaction); its first lines come back.
    line_rank = np.arange(len(line_order)) - np.searchsorted(line_order, line_order)
    returned = line_rank < orders["n_ret"][line_order]
    ret_time = _return_times(rng, order_time, line_order, returned)
    transactions, future = _transaction_tables(
        ids, order_time, order_channel, lines, returned, ret_time, start, obs_days, horizon_end
    )
    customers = _customers_table(rng, personas, persona_idx, _shop_hours(t0), lat["s0"], ids, start)

    # Feedback reflects the satisfaction an order left behind, so it leads dropout.
    nps_mask, nps_time, nps_score = _nps_answers(rng, order_time, orders["s_after"])
    t_owner, t_time, t_sat = _drift_tickets(rng, orders, line_order, returned, ret_time)
    interactions = _interactions_table(
        rng, ids, owner[nps_mask], nps_time, nps_score, t_owner, t_time, t_sat, start, obs_days
    )

    expect = _future_expectations(lat, pick, paths["s_end"], season, obs_days, params)
    names = np.array([p.name for p in personas], dtype=object)[persona_idx]
    truth = _drift_truth(ids, names, lat, pick, paths, orders, expect, start, obs_days)
    truth = _with_future(truth, future)
    return SimulatedBase(
        transactions=transactions,
        customers=customers,
        interactions=interactions,
        truth=truth,
        future_transactions=future,
        observation_end=end,
        params={
            "kind": "drift",
            "n_customers": n,
            "start_date": str(start.date()),
            "end_date": str(end.date()),
            "future_days": future_days,
            "initial_share": initial_share,
            "seed": seed,
            "drift": params.as_dict(),
        },
    )


def simulate(
    kind: str = "btyd", drift: DriftParams | Mapping[str, Any] | None = None, **kwargs: Any
) -> SimulatedBase:
    """Simulate the base of the given ``kind``: ``btyd`` (:func:`simulate_base`) or ``drift``.

    Parameters
    ----------
    kind : {"btyd", "drift"}
        Which generative model.
    drift : DriftParams or mapping, optional
        The drift parameters, or overrides of :class:`DriftParams` fields; only read when ``kind``
        is ``drift``.
    **kwargs
        The common arguments (``n_customers``, ``start_date``, ``end_date``, ``future_days``,
        ``initial_share``, ``seed``, ``personas``).

    Returns
    -------
    SimulatedBase
    """
    if kind == "btyd":
        return simulate_base(**kwargs)
    if kind == "drift":
        params = drift if isinstance(drift, DriftParams) else DriftParams.from_overrides(drift)
        return simulate_drift(**kwargs, params=params)
    raise ValueError(f"unknown simulation kind {kind!r}; use 'btyd' or 'drift'")


def simulate_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, T: float | np.ndarray, seed: int = 0
) -> pd.DataFrame:
    """Simulate pure BG/NBD customers and return their (frequency, recency, T) summary.

    Every customer makes a first purchase at time 0 and is observed for ``T`` time units.

    Parameters
    ----------
    n : int
        Number of customers.
    r, alpha, a, b : float
        BG/NBD parameters (Fader, Hardie & Lee 2005).
    T : float or array
        Observation length(s).
    seed : int
        Random seed.

    Returns
    -------
    DataFrame
        Columns ``frequency``, ``recency``, ``T``, ``alive`` (true state at T) and ``lam``, ``p``.
    """
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = np.clip(rng.beta(a, b, n), 1e-12, 1.0)
    n_events = rng.poisson(lam * T)
    j = rng.geometric(p)
    k = np.minimum(n_events, j)
    frac = _exp_orderstats(rng, n_events, k)
    owner = np.repeat(np.arange(n), k)
    recency = np.zeros(n)
    if len(owner):
        last = np.cumsum(k)[k > 0] - 1
        recency[k > 0] = (frac * T[owner])[last]
    return pd.DataFrame({"frequency": k, "recency": recency, "T": T, "alive": j > k, "lam": lam, "p": p})


def simulate_gamma_gamma(
    frequency: np.ndarray, p: float, q: float, gamma: float, seed: int = 0
) -> pd.DataFrame:
    """Simulate mean order values under Gamma-Gamma for customers with given repeat counts.

    Returns a frame with ``frequency``, ``monetary_value`` (mean of ``frequency`` order values) and the
    latent ``nu``; customers with ``frequency == 0`` get NaN.
    """
    rng = np.random.default_rng(seed)
    frequency = np.asarray(frequency, dtype=int)
    nu = rng.gamma(q, 1.0 / gamma, len(frequency))
    # The sum of x Gamma(p, nu) draws is Gamma(p x, nu).
    total = rng.gamma(np.maximum(p * frequency, 1e-12), 1.0 / nu)
    mean = np.where(frequency > 0, total / np.maximum(frequency, 1), np.nan)
    return pd.DataFrame({"frequency": frequency, "monetary_value": mean, "nu": nu})


# --------------------------------------------------------------------------------------------------
# A randomized retention campaign with a known effect per persona.

#: Probability that one contact makes a customer who would not have bought in the response window
#: buy once in it, per persona. Deal seekers answer an offer; one-time buyers and champions (who buy
#: anyway) barely move. The effect on the response rate is this times the persona's share of
#: would-be non-buyers, so the ranking of personas by effect is not the ranking by these numbers.
CAMPAIGN_EFFECTS = {
    "champions": 0.05,
    "loyal_regulars": 0.15,
    "big_ticket_occasionals": 0.30,
    "bargain_hunters": 0.45,
    "serial_returners": 0.10,
    "one_and_done": 0.02,
}


@dataclass(frozen=True)
class CampaignParams:
    """A retention campaign sent on one day to a random half of the customers acquired before it.

    Attributes
    ----------
    date : date, optional
        The contact day; None: ``window_days`` before the observation end, so the response window
        is fully observed.
    window_days : int
        The response window: a purchase day in ``[date, date + window_days)``, which is the churn
        label's window ``(as_of, as_of + window_days]`` with ``as_of`` the day before the contact.
    treat_share : float
        Share of eligible customers contacted; the rest are the control group.
    effects : mapping
        Persona name -> probability that a contact turns a would-be non-buyer into a buyer;
        personas not named get 0.
    contact_cost : float
        Cost of one contact, written in the campaigns table's ``cost`` column.
    """

    date: dt.date | None = None
    window_days: int = 90
    treat_share: float = 0.5
    effects: Mapping[str, float] = field(default_factory=lambda: dict(CAMPAIGN_EFFECTS))
    contact_cost: float = 1.0


def _response_days(transactions: pd.DataFrame, first: pd.Timestamp, days: int) -> pd.Series:
    """Customers with a purchase day (net amount > 0, METRICS.md) in ``[first, first + days)``."""
    tx = transactions[
        (transactions["timestamp"] >= first)
        & (transactions["timestamp"] < first + pd.Timedelta(days=days))
    ]
    net = tx.groupby(["customer_id", tx["timestamp"].dt.normalize()])["amount"].sum().round(6)
    return net[net > 0].index.get_level_values(0).unique()


def _repeat_orders(
    rng: np.random.Generator, tx: pd.DataFrame, buyers: np.ndarray, first: pd.Timestamp, days: int
) -> pd.DataFrame:
    """One new order per buyer, on a random moment of the window.

    The order copies the buyer's last basket before ``first``, so it keeps the persona's spend and
    categories.
    """
    sales = tx[(tx["amount"] > 0) & (tx["timestamp"] < first) & tx["customer_id"].isin(buyers)]
    last = sales.groupby("customer_id")["order_id"].last()
    lines = sales[sales["order_id"].isin(last.to_numpy())].copy()
    # Hours 07:00-23:00 like every simulated order, on a uniform day of the window.
    offset = rng.integers(0, days, len(last)) * 86400 + rng.integers(7 * 3600, 23 * 3600, len(last))
    when = pd.Series(first + pd.to_timedelta(offset, unit="s"), index=last.index)
    lines["timestamp"] = lines["customer_id"].map(when)
    lines["order_id"] = "C" + lines["order_id"].astype(str)
    return lines


def add_campaign(base: SimulatedBase, params: CampaignParams, seed: int = 0) -> SimulatedBase:
    """Send a randomized campaign to ``base`` and add the purchases it causes.

    Both potential outcomes are known: ``campaign_y0`` (bought in the window without the contact,
    read from the untouched log) and ``campaign_y1`` (with it). The expected individual effect on
    the response rate is ``campaign_effect = effect[persona] * (1 - y0)``: a contact only matters
    for a customer who would not have bought anyway.

    Parameters
    ----------
    base : SimulatedBase
        A simulated base; it is not modified.
    params : CampaignParams
        The campaign.
    seed : int
        Seed of the assignment and the responses (a stream of its own, so the base is unchanged).

    Returns
    -------
    SimulatedBase
        With ``campaigns`` (customer_id, date, treated, channel, cost), the caused orders added to
        ``transactions``, and the truth columns ``campaign_eligible``, ``campaign_treated``,
        ``campaign_y0``, ``campaign_y1`` and ``campaign_effect``.

    Examples
    --------
    >>> base = add_campaign(simulate_base(300, seed=1), CampaignParams(), seed=1)
    >>> set(base.campaigns["treated"].unique()) <= {True, False}
    True
    """
    rng = np.random.default_rng([seed, 0xCA4])
    end = base.observation_end
    first = (
        pd.Timestamp(params.date)
        if params.date is not None
        else end - pd.Timedelta(days=params.window_days - 1)
    )
    if first - pd.Timedelta(days=1) < pd.Timestamp(base.params["start_date"]) or first > end:
        raise ValueError(f"campaign date {first.date()} is outside the observed period")
    tx = base.transactions
    acquired = tx.loc[tx["timestamp"] < first.normalize()].groupby("customer_id").size().index
    truth = base.truth.set_index("customer_id")
    ids = truth.index[truth.index.isin(acquired)].to_numpy()
    treated = rng.random(len(ids)) < params.treat_share
    y0 = np.isin(ids, _response_days(tx, first, params.window_days))
    effect = truth.loc[ids, "persona"].map(dict(params.effects)).fillna(0.0).to_numpy(dtype=float)
    saved = treated & ~y0 & (rng.random(len(ids)) < effect)
    added = _repeat_orders(rng, tx, ids[saved], first, params.window_days)
    transactions = (
        pd.concat([tx, added], ignore_index=True)
        .sort_values(["timestamp", "order_id", "product_id"], kind="stable")
        .reset_index(drop=True)
    )
    campaigns = pd.DataFrame(
        {
            "customer_id": ids,
            "date": first.normalize(),
            "treated": treated,
            "channel": "email",
            "cost": np.where(treated, params.contact_cost, 0.0),
        }
    )
    truth["campaign_eligible"] = truth.index.isin(ids)
    columns = {
        "campaign_treated": treated,
        "campaign_y0": y0,
        "campaign_y1": y0 | saved,
        "campaign_effect": effect * ~y0,
    }
    for name, values in columns.items():
        truth[name] = pd.Series(values, index=ids).reindex(truth.index)
    return dataclasses.replace(
        base,
        transactions=transactions,
        truth=truth.reset_index(),
        campaigns=campaigns,
        params={
            **base.params,
            "campaign": {
                **dataclasses.asdict(params),
                "date": str(first.date()),  # the day used, as text: params are written as JSON
                "effects": dict(params.effects),
                "seed": seed,
            },
        },
    )
