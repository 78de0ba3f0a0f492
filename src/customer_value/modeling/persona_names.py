"""Persona names that claim only what their profiles show against the whole base.

A name is an archetype ("Loyal regulars") plus, when another persona already holds it, qualifiers
("Occasional buyers, lapsed"). Each archetype and qualifier stands for *claims*: facts about the
persona's profile (medians per persona; means for mostly-zero shares) compared with the base's
(medians; means for shares). A name is given only when all its claims hold, so a name can't lie:

=====================  ===========================================================================
claim                  holds when (persona vs base)
=====================  ===========================================================================
``new``                median tenure ≤ 0.5 × the base's median tenure
``frequent``           median repeat purchases a year > the base's median
``infrequent``         median repeat purchases a year ≤ the base's median
``recent``             median days since the last purchase ≤ the base's median
``lapsed``             median days since the last purchase ≥ 1.5 × the base's median
``high_spend``         median revenue a year > the base's median
``low_spend``          median revenue a year < the base's median
``big_baskets``        median order value > the base's median
``big_ticket``         median order value ≥ 1.5 × the base's median
``small_baskets``      median order value < the base's median
``discounts``          mean discount share ≥ 1.5 × the base's mean (and > 0)
``returns``            mean return rate ≥ 2 × the base's mean (and > 0)
``long_standing``      median tenure > the base's median
``broad_range``        median distinct categories > the base's median
``leads_value``        the highest median revenue a year of all personas
``leads_recency``      the fewest median days since the last purchase of the personas not ``new``
=====================  ===========================================================================

Archetypes, in the order they are handed out (each to the persona meeting it most strongly):
New customers (new); Champions (leads_value, leads_recency, frequent, high_spend); Loyal regulars
(frequent, recent); Big-ticket occasionals (big_ticket, infrequent); Bargain hunters (discounts);
Serial returners (returns); At risk (high_spend, lapsed); Hibernating (lapsed); Occasional buyers
(infrequent); Regular buyers (frequent). Every persona meets one of the last two, so every persona
gets an archetype; when its archetype is taken, true qualifiers are added (strongest first) until
the name is unique — never a number.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["ARCHETYPES", "QUALIFIERS", "persona_facts", "name_personas", "claims_of", "holds"]

#: Archetype -> its claims, in the order names are handed out.
ARCHETYPES: dict[str, tuple[str, ...]] = {
    "New customers": ("new",),
    "Champions": ("leads_value", "leads_recency", "frequent", "high_spend"),
    "Loyal regulars": ("frequent", "recent"),
    "Big-ticket occasionals": ("big_ticket", "infrequent"),
    "Bargain hunters": ("discounts",),
    "Serial returners": ("returns",),
    "At risk": ("high_spend", "lapsed"),
    "Hibernating": ("lapsed",),
    "Occasional buyers": ("infrequent",),
    "Regular buyers": ("frequent",),
}

#: Qualifier text -> its claim (a qualifier is added only when its claim holds).
QUALIFIERS: dict[str, str] = {
    "high spend": "high_spend",
    "low spend": "low_spend",
    "frequent": "frequent",
    "lapsed": "lapsed",
    "recent": "recent",
    "big baskets": "big_baskets",
    "small baskets": "small_baskets",
    "discount-driven": "discounts",
    "returns a lot": "returns",
    "new": "new",
    "long-standing": "long_standing",
    "broad range": "broad_range",
}

# claim -> (column, direction, multiple of the base value, strict); margins are in units of the
# base's spread so the strongest claims can be ranked across columns.
_RULES: dict[str, tuple[str, str, float, bool]] = {
    "new": ("tenure_days", "le", 0.5, False),
    "frequent": ("frequency_per_year", "gt", 1.0, True),
    "infrequent": ("frequency_per_year", "le", 1.0, False),
    "recent": ("days_since_last_purchase", "le", 1.0, False),
    "lapsed": ("days_since_last_purchase", "ge", 1.5, False),
    "high_spend": ("revenue_per_year", "gt", 1.0, True),
    "low_spend": ("revenue_per_year", "lt", 1.0, True),
    "big_baskets": ("monetary_mean", "gt", 1.0, True),
    "big_ticket": ("monetary_mean", "ge", 1.5, False),
    "small_baskets": ("monetary_mean", "lt", 1.0, True),
    "discounts": ("discount_share", "ge", 1.5, False),
    "returns": ("return_rate", "ge", 2.0, False),
    "long_standing": ("tenure_days", "gt", 1.0, True),
    "broad_range": ("distinct_categories", "gt", 1.0, True),
}


def persona_facts(profile: pd.DataFrame, overall: pd.Series, spread: pd.Series) -> pd.DataFrame:
    """Per persona and claim: the margin by which the claim holds (>= 0 holds, NaN: no data).

    Parameters
    ----------
    profile : DataFrame
        One row per persona: medians (means for shares) of the persona features.
    overall : Series
        The base's medians (means for shares).
    spread : Series
        The base's spread per feature (e.g. the 10-90 % range), only to rank margins.
    """
    out = {}
    for claim, (col, how, mult, strict) in _RULES.items():
        if col not in profile.columns or not np.isfinite(overall.get(col, np.nan)):
            out[claim] = pd.Series(np.nan, index=profile.index)
            continue
        ref = mult * float(overall[col])
        scale = float(spread.get(col, np.nan))
        scale = scale if np.isfinite(scale) and scale > 0 else max(abs(ref), 1.0)
        diff = (profile[col] - ref) / scale if how in ("gt", "ge") else (ref - profile[col]) / scale
        if claim in ("discounts", "returns"):
            diff = diff.where(profile[col] > 0, -np.inf)  # "1.5 × a mean of 0" claims nothing
        # A strict claim that only ties does not hold: shift ties just below zero.
        out[claim] = diff.where(~(strict & (diff == 0)), -1e-12)
    facts = pd.DataFrame(out, index=profile.index)
    facts["leads_value"] = _leader(profile.get("revenue_per_year"), profile.index, largest=True)
    not_new = ~(facts["new"] >= 0)
    facts["leads_recency"] = _leader(
        profile.get("days_since_last_purchase"), profile.index, largest=False, among=not_new
    )
    return facts


def _leader(values, index, largest: bool, among=None) -> pd.Series:
    """0 for the (first) persona that leads ``values``, the negative gap to it for the others."""
    if values is None or values.isna().all():
        return pd.Series(np.nan, index=index)
    v = values.astype(float) if largest else -values.astype(float)
    pool = v[among] if among is not None else v
    if pool.dropna().empty:
        return pd.Series(-np.inf, index=index)
    best = pool.idxmax()
    out = (v - v[best]).where(v.index != best, 0.0)
    out[out.index != best] = out[out.index != best].clip(upper=-1e-12)
    if among is not None:
        out[~among] = -np.inf
    return out


def holds(facts: pd.DataFrame, label, claims) -> bool:
    """Whether every claim in ``claims`` holds for persona ``label`` (missing data: it does not)."""
    return all(bool(facts.loc[label, c] >= 0) for c in claims)


def claims_of(name: str) -> tuple[str, ...]:
    """The claims a name makes: its archetype's and its qualifiers'.

    Examples
    --------
    >>> claims_of("Occasional buyers, lapsed and big baskets")
    ('infrequent', 'lapsed', 'big_baskets')
    """
    archetype, _, rest = name.partition(", ")
    claims = list(ARCHETYPES[archetype])
    for q in rest.split(" and ") if rest else []:
        if not q.startswith(("more ", "less ")):  # comparatives hold by construction
            claims.append(QUALIFIERS[q])
    return tuple(claims)


def _strength(facts: pd.DataFrame, claims) -> pd.Series:
    return facts[list(claims)].min(axis=1, skipna=False)


def name_personas(
    profile: pd.DataFrame,
    overall: pd.Series,
    spread: pd.Series | None = None,
    keep: Mapping | None = None,
) -> list[str]:
    """Unique names whose every claim holds, one per row of ``profile`` (see the module docstring).

    Parameters
    ----------
    profile, overall, spread
        As in :func:`persona_facts` (``spread`` defaults to 1 per feature).
    keep : dict, optional
        Label -> a name to keep (a matched persona of the previous model): kept when all its
        claims still hold for the label's new profile, given out afresh otherwise.
    """
    spread = spread if spread is not None else pd.Series(dtype=float)
    facts = persona_facts(profile, overall, spread)
    names: dict = {}
    for label, name in (keep or {}).items():
        archetype = name.partition(", ")[0]
        if archetype in ARCHETYPES and name not in names.values():
            try:
                ok = holds(facts, label, claims_of(name))
            except KeyError:  # a qualifier this version no longer knows
                ok = False
            if ok:
                names[label] = name
    taken = {n.partition(", ")[0] for n in names.values()}
    for archetype, claims in ARCHETYPES.items():
        if archetype in taken:
            continue
        cand = _strength(facts, claims).drop(index=list(names), errors="ignore")
        cand = cand[cand >= 0]
        if not cand.empty:
            names[cand.idxmax()] = archetype
    for label in profile.index:
        if label not in names:
            names[label] = _qualified(facts, label, names, profile, spread)
    return [names[label] for label in profile.index]


def _qualified(facts: pd.DataFrame, label, names: dict, profile: pd.DataFrame, spread: pd.Series) -> str:
    """The persona's archetype with true qualifiers, strongest first, until the name is unique."""
    row = facts.loc[label]
    base = "Occasional buyers" if row["infrequent"] >= 0 else "Regular buyers"
    implied = set(ARCHETYPES[base])
    opposite = {"frequent": "infrequent", "infrequent": "frequent"}
    options = [
        (float(row[c]), q)
        for q, c in QUALIFIERS.items()
        if c not in implied and opposite.get(c) not in implied and row[c] >= 0
    ]
    options.sort(key=lambda t: -t[0])
    used = set(names.values())
    if base not in used:
        return base
    chosen: list[str] = []
    for _, q in options:
        chosen.append(q)
        name = f"{base}, {' and '.join(chosen)}"
        if name not in used:
            return name
        if len(chosen) == 3:
            chosen.pop()  # try another third qualifier instead of a fourth
    # Every true qualifier is already taken in this combination: single qualifiers, then pairs.
    for _, q in options:
        if f"{base}, {q}" not in used:
            return f"{base}, {q}"
    for i, (_, a) in enumerate(options):
        for _, b in options[i + 1 :]:
            if f"{base}, {a} and {b}" not in used:
                return f"{base}, {a} and {b}"
    return _comparative(base, label, names, profile, spread)


def _comparative(base: str, label, names: dict, profile: pd.DataFrame, spread: pd.Series) -> str:
    """Last resort, when every true qualifier is taken: the feature that sets it apart, compared.

    "Occasional buyers, more weekend share" claims only that this persona's value of that feature
    is above the value of every persona already named ``base...`` (true by construction).
    """
    rivals = [k for k, n in names.items() if n.startswith(base)]
    cols = [c for c in profile.columns if c != "share" and profile[c].notna().all()]
    best, text = -1.0, ""
    for c in cols:
        scale = float(spread.get(c, np.nan))
        scale = scale if np.isfinite(scale) and scale > 0 else 1.0
        v, others = profile.loc[label, c], profile.loc[rivals, c]
        for word, gap in (("more", v - others.max()), ("less", others.min() - v)):
            cand = f"{base}, {word} {c.replace('_', ' ')}"
            if gap / scale > best and gap > 0 and cand not in names.values():
                best, text = gap / scale, cand
    if not text:
        raise ValueError("two personas have the same profile; lower personas.k_max")
    return text
