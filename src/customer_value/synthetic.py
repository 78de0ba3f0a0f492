"""The simulated customer base: a retailer whose ground truth is known.

The generative model (documented in ``docs/simulation.md``):

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

Ground truth is written beside the data, never in it: per customer persona, latent parameters,
whether still alive at the observation end, and the transactions of the ``future_days`` after it (a
separate file, for evaluation only). Everything is vectorised: no Python loop per customer or
transaction, so 10 million rows take well under a minute.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, logit

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "ACQUISITION_CHANNELS",
    "PERSONAS",
    "Persona",
    "SimulatedBase",
    "simulate_base",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
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


def simulate_base(
    n_customers: int = 20_000,
    start_date: dt.date = dt.date(2022, 1, 1),
    end_date: dt.date = dt.date(2024, 6, 30),
    future_days: int = 365,
    initial_share: float = 0.3,
    seed: int = 42,
    personas: tuple[Persona, ...] = PERSONAS,
) -> SimulatedBase:
    """Simulate a customer base with known ground truth.

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
    P = {
        f: np.array([getattr(p, f) for p in personas])
        for f in (
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
    }
    pick = {k: v[persona_idx] for k, v in P.items()}

    # Latent individual parameters (BG/NBD and Gamma-Gamma heterogeneity).
    lam = rng.gamma(pick["r"], 1.0 / pick["alpha"])
    p_beta = np.clip(rng.beta(pick["a"], pick["b"]), 1e-4, 1 - 1e-4)
    satisfaction = rng.normal(pick["satisfaction_mean"], 1.0)
    p_drop = expit(logit(p_beta) - SATISFACTION_EFFECT * satisfaction)
    nu = rng.gamma(pick["q"], 1.0 / pick["gamma"])

    # First purchase: an existing base in the first 30 days, the rest acquired over the period.
    initial = rng.random(n) < initial_share
    t0 = np.where(initial, rng.uniform(0, min(30, obs_days), n), rng.uniform(0, obs_days, n))
    order = np.argsort(t0, kind="stable")  # ids follow acquisition order, as a real system's would
    width = max(6, len(str(n)))
    ids = np.empty(n, dtype=object)
    ids[order] = [f"C{i:0{width}d}" for i in range(1, n + 1)]

    # Repeat purchases: Poisson(lam) over (t0, horizon_end), stopped after the J-th, J ~ Geom(p).
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
    order_owner, order_time = order_owner[srt], order_time[srt]
    n_orders = len(order_owner)

    repeats_by_end = np.bincount(rep_owner[rep_time < obs_days], minlength=n)
    alive_at_end = lifetime_repeats > repeats_by_end
    died = k == lifetime_repeats  # dropped out within the simulated horizon
    last_rep = np.full(n, np.nan)
    if len(rep_owner):
        last_idx = np.cumsum(k)[k > 0] - 1
        last_rep[k > 0] = rep_time[last_idx]
    death_day = np.where(died & (k > 0), last_rep, np.nan)

    # Orders: value, channel, discount.
    order_value = rng.gamma(pick["p_spend"][order_owner], 1.0 / nu[order_owner])
    channel_mix = np.array([p.channel_mix for p in personas])
    order_channel = _categorical_rows(rng, channel_mix, persona_idx[order_owner])
    discounted = rng.random(n_orders) < pick["discount_prob"][order_owner]
    discount_rate = np.where(discounted, rng.uniform(0.1, 0.3, n_orders), 0.0)

    # Lines: split each order's list value over 1 + Poisson(lines) lines.
    n_lines = 1 + rng.poisson(pick["lines"][order_owner])
    line_order = np.repeat(np.arange(n_orders), n_lines)
    share = rng.standard_exponential(len(line_order))
    share /= np.bincount(line_order, weights=share)[line_order]
    list_amount = order_value[line_order] * share
    line_owner = order_owner[line_order]

    # Category preferences: Dirichlet per customer, concentrated for narrow buyers.
    conc = np.maximum(pick["breadth"], 0.05)[:, None] * np.ones(len(CATEGORIES))
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

    # Returns: a line comes back 1-30 days later as a negative row.
    returned = rng.random(len(line_order)) < pick["return_prob"][line_owner]
    ret_time = order_time[line_order][returned] + rng.uniform(1, 30, int(returned.sum()))

    order_ids = np.array([f"O{i:08d}" for i in range(1, n_orders + 1)], dtype=object)
    cat_names = np.array(CATEGORIES, dtype=object)
    product_ids = np.char.add(
        np.char.add(np.array([c[:3].upper() for c in CATEGORIES])[line_cat], "-"),
        np.char.zfill(product_rank.astype(str), 3),
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
    transactions = _frame(in_obs, ret_obs)
    future = _frame(in_future, ret_future)

    # Acquisition channel and cost; referrers among earlier customers, weighted by satisfaction.
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
    customers = (
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

    # Feedback: NPS after some orders, tickets (more when unhappy and on returns), CSAT after tickets.
    s_order = satisfaction[order_owner]
    nps_mask = rng.random(n_orders) < 0.08
    nps_time = order_time[nps_mask] + rng.uniform(1, 7, int(nps_mask.sum()))
    nps_score = np.clip(np.round(rng.normal(7.0 + 1.8 * s_order[nps_mask], 1.2)), 0, 10)
    ticket_p = expit(-3.0 - 0.8 * s_order)
    t_mask = rng.random(n_orders) < ticket_p
    t_owner = np.concatenate([order_owner[t_mask], line_owner[returned]])
    t_time = np.concatenate(
        [
            order_time[t_mask] + rng.uniform(0, 10, int(t_mask.sum())),
            ret_time + rng.uniform(0, 3, len(ret_time)),
        ]
    )
    keep_t = rng.random(len(t_owner)) < np.where(np.arange(len(t_owner)) < int(t_mask.sum()), 1.0, 0.3)
    t_owner, t_time = t_owner[keep_t], t_time[keep_t]
    csat_mask = rng.random(len(t_owner)) < 0.6
    csat_time = t_time[csat_mask] + rng.uniform(0.5, 3, int(csat_mask.sum()))
    csat_score = np.clip(np.round(rng.normal(3.5 + 0.8 * satisfaction[t_owner[csat_mask]], 0.8)), 1, 5)
    interactions = pd.DataFrame(
        {
            "customer_id": np.concatenate(
                [ids[order_owner[nps_mask]], ids[t_owner], ids[t_owner[csat_mask]]]
            ),
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
    interactions = interactions.reset_index(drop=True)

    fut = future.groupby("customer_id").agg(
        future_revenue=("amount", "sum"), future_orders=("order_id", "nunique")
    )
    sales_fut = future.loc[future["amount"] > 0, ["customer_id", "timestamp"]]
    fut_days = (
        sales_fut.assign(day=sales_fut["timestamp"].dt.normalize())
        .drop_duplicates(["customer_id", "day"])["customer_id"]
        .value_counts()
    )
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "persona": np.array([p.name for p in personas], dtype=object)[persona_idx],
            "purchase_rate_per_day": lam,
            "dropout_prob": p_drop,
            "dropout_prob_beta": p_beta,
            "spend_rate_nu": nu,
            "mean_order_value": pick["p_spend"] / nu,
            "satisfaction": satisfaction,
            "first_purchase": start + pd.to_timedelta(np.round(t0 * 86400), unit="s"),
            "lifetime_repeats": lifetime_repeats,
            "alive_at_end": alive_at_end,
            "death_date": start + pd.to_timedelta(death_day, unit="D"),
        }
    ).set_index("customer_id")
    truth["death_date"] = truth["death_date"].where(truth["death_date"] >= start)
    truth["future_revenue"] = fut["future_revenue"].reindex(truth.index).fillna(0.0)
    truth["future_orders"] = fut["future_orders"].reindex(truth.index).fillna(0).astype(int)
    truth["future_purchase_days"] = fut_days.reindex(truth.index).fillna(0).astype(int)
    truth = truth.reset_index().sort_values("customer_id").reset_index(drop=True)

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
