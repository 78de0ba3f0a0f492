"""Feedback: NPS, CSAT and support tickets up to ``as_of``; missing stays missing, never zero."""

from __future__ import annotations

import numpy as np
import pandas as pd

from customer_value.features.events import Events, per_customer, to_day

__all__ = ["feedback_features", "nps_class"]


def nps_class(score: pd.Series) -> pd.Series:
    """Classify NPS scores: promoter (9-10), passive (7-8), detractor (0-6); missing stays missing."""
    out = pd.Series(pd.NA, index=score.index, dtype="object")
    out[score >= 9] = "promoter"
    out[(score >= 7) & (score < 9)] = "passive"
    out[score < 7] = "detractor"
    return out.where(score.notna(), None)


def feedback_features(ev: Events, interactions: pd.DataFrame | None) -> pd.DataFrame:
    """Latest NPS and its class, mean CSAT, survey and ticket counts, days since last contact.

    Without an interactions table every column is missing. With one, counts are real zeros for
    customers who have none, while scores and days-since stay missing.
    """
    n = ev.n
    index = ev.customer_ids
    names = [
        "nps_last",
        "nps_mean",
        "nps_promoter",
        "nps_detractor",
        "csat_mean",
        "surveys",
        "tickets_total",
        "tickets_90d",
        "days_since_last_survey",
        "days_since_last_ticket",
    ]
    if interactions is None:
        frame = pd.DataFrame(np.nan, index=index, columns=names)
        frame["nps_class"] = None
        return frame
    day = to_day(interactions["timestamp"])
    inter = interactions[day <= ev.as_of_day]
    day = day[day <= ev.as_of_day]
    pos = index.get_indexer(inter["customer_id"])
    ok = pos >= 0
    inter, day, pos = inter[ok], day[ok], pos[ok]
    kind = inter["kind"].to_numpy()
    score = inter["score"].to_numpy(dtype=float)
    ts = inter["timestamp"].to_numpy()

    def _mean(sel):
        sel = sel & ~np.isnan(score)
        c = per_customer(pos[sel], n)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c > 0, per_customer(pos[sel], n, score[sel]) / c, np.nan)

    def _last(sel, values):
        out = np.full(n, np.nan)
        if sel.any():
            order = np.lexsort((ts[sel], pos[sel]))  # by customer, then time: last one wins
            out[pos[sel][order]] = values[sel][order]
        return out

    is_nps = (kind == "nps") & ~np.isnan(score)
    is_survey = np.isin(kind, ["nps", "csat"])
    is_ticket = kind == "support_ticket"
    nps_last = _last(is_nps, score)
    frame = pd.DataFrame(
        {
            "nps_last": nps_last,
            "nps_mean": _mean(kind == "nps"),
            "nps_promoter": np.where(np.isnan(nps_last), np.nan, (nps_last >= 9).astype(float)),
            "nps_detractor": np.where(np.isnan(nps_last), np.nan, (nps_last <= 6).astype(float)),
            "csat_mean": _mean(kind == "csat"),
            "surveys": per_customer(pos[is_survey], n),
            "tickets_total": per_customer(pos[is_ticket], n),
            "tickets_90d": per_customer(pos[is_ticket & (day > ev.as_of_day - 90)], n),
            "days_since_last_survey": ev.as_of_day - _last(is_survey, day.astype(float)),
            "days_since_last_ticket": ev.as_of_day - _last(is_ticket, day.astype(float)),
        },
        index=index,
    )
    frame["nps_class"] = nps_class(frame["nps_last"])
    return frame
