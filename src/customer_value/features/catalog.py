"""The feature catalog: name, family, unit and definition of every column ``build_features`` makes.

``feature_catalog(columns)`` documents a concrete table (pattern entries cover the per-window and
per-category columns); ``catalog_markdown()`` renders ``docs/features.md``, which a test keeps in
sync with the code.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["CATALOG", "feature_catalog", "catalog_markdown"]

# (name or regex pattern, family, unit, definition)
CATALOG: list[tuple[str, str, str, str]] = [
    ("recency_days", "rfm", "days", "Last purchase day − first purchase day (BTYD recency t_x)."),
    (
        "frequency",
        "rfm",
        "purchase days",
        "Repeat purchase days: purchase days − 1 (same-day orders count once).",
    ),
    (
        "tenure_days",
        "rfm",
        "days",
        "as_of − first purchase day (BTYD T); from the first row when there is no purchase day.",
    ),
    ("days_since_last_purchase", "rfm", "days", "as_of − last purchase day."),
    ("purchase_days", "rfm", "days", "Customer-days with a net amount > 0."),
    ("monetary_mean", "rfm", "currency", "Mean net amount per purchase day."),
    (
        "monetary_repeat_mean",
        "rfm",
        "currency",
        "Mean net amount per repeat purchase day (first excluded; Gamma-Gamma input); missing when frequency = 0.",
    ),
    ("monetary_total", "rfm", "currency", "Net revenue up to as_of (returns subtracted)."),
    (
        "order_count",
        "rfm",
        "orders",
        "Distinct order ids with a positive line (purchase days without order ids).",
    ),
    (
        "items_per_order",
        "rfm",
        "units/order",
        "Units bought on positive lines / order_count; missing without quantities.",
    ),
    (
        "frequency_per_year",
        "rfm (rate)",
        "1/year",
        "frequency / max(tenure_days, rate_floor_days) × 365.",
    ),
    (
        "orders_per_year",
        "rfm (rate)",
        "1/year",
        "order_count / max(tenure_days, rate_floor_days) × 365.",
    ),
    (
        "revenue_per_year",
        "rfm (rate)",
        "currency/year",
        "monetary_total / max(tenure_days, rate_floor_days) × 365.",
    ),
    (
        "recency_share",
        "rfm (rate)",
        "ratio",
        "recency_days / tenure_days (0 = bought once long ago, 1 = bought on as_of); missing when tenure is 0.",
    ),
    (
        "gap_mean_days",
        "behaviour",
        "days",
        "Mean gap between consecutive purchase days; missing with < 2 purchase days.",
    ),
    (
        "gap_std_days",
        "behaviour",
        "days",
        "Sample standard deviation of those gaps; missing with < 2 gaps.",
    ),
    ("gap_cv", "behaviour", "ratio", "gap_std_days / gap_mean_days (regularity)."),
    (
        "overdue_ratio",
        "behaviour",
        "ratio",
        "days_since_last_purchase / gap_mean_days: how many usual gaps have passed.",
    ),
    (r"spend_(\d+)d", "behaviour", "currency", "Net spend in the last N days, (as_of − N, as_of]."),
    (r"purchase_days_(\d+)d", "behaviour", "days", "Purchase days in the last N days."),
    (
        r"spend_trend_(\d+)d",
        "behaviour",
        "ratio in [-1, 1]",
        "(spend last N days − spend the N days before) / (|both| summed); missing when both are 0.",
    ),
    (r"purchase_days_trend_(\d+)d", "behaviour", "ratio in [-1, 1]", "Same trend on purchase days."),
    ("active_months", "behaviour", "months", "Calendar months with a purchase day."),
    (
        "active_month_share",
        "behaviour (rate)",
        "ratio",
        "active_months / months from the first purchase month to the as_of month.",
    ),
    ("distinct_categories", "behaviour", "categories", "Distinct categories bought (cross-buy)."),
    ("distinct_products", "behaviour", "products", "Distinct products bought."),
    (
        r"cat_share_(.+)",
        "behaviour",
        "share",
        "Share of the customer's sales amount in this category (top categories by sales at the training cutoff).",
    ),
    (
        r"channel_share_(.+)",
        "behaviour",
        "share",
        "Share of the customer's sales amount through this channel.",
    ),
    ("discount_share", "behaviour", "share", "Discount / (paid + discount) on positive lines."),
    ("return_rate", "behaviour", "share", "Returned amount / sales amount."),
    ("weekend_share", "behaviour", "share", "Share of purchase days on a Saturday or Sunday."),
    (
        "gross_margin_total",
        "value",
        "currency",
        "Σ (amount − cost) up to as_of (returns reverse their margin); only when the log has costs.",
    ),
    ("margin_rate", "value", "share", "gross_margin_total / sales amount."),
    ("acquisition_cost", "value", "currency", "From the customers table; missing without one."),
    (
        "cost_to_serve",
        "value",
        "currency",
        "Support tickets up to as_of × features.cost_per_ticket; missing without interactions.",
    ),
    (
        "referrals_made",
        "value",
        "customers",
        "Customers first seen by as_of whose referred_by is this customer.",
    ),
    (
        "referred_revenue",
        "value",
        "currency",
        "Net revenue up to as_of of the customers this customer referred.",
    ),
    (
        "customer_value_to_date",
        "value",
        "currency",
        "Benefit (margin, or revenue without costs) − acquisition cost − cost to serve + referred customers' benefit; missing parts count 0.",
    ),
    ("nps_last", "feedback", "score 0-10", "Latest NPS answer; missing when none."),
    ("nps_mean", "feedback", "score 0-10", "Mean NPS answer."),
    ("nps_promoter", "feedback", "0/1", "1 when the latest NPS is 9-10."),
    ("nps_detractor", "feedback", "0/1", "1 when the latest NPS is 0-6."),
    (
        "nps_class",
        "feedback",
        "label",
        "promoter / passive / detractor from the latest NPS (descriptive, not a model input).",
    ),
    ("csat_mean", "feedback", "score 1-5", "Mean CSAT answer."),
    (
        "surveys",
        "feedback",
        "answers",
        "NPS and CSAT answers up to as_of (0 when none; missing without interactions).",
    ),
    ("tickets_total", "feedback", "tickets", "Support tickets up to as_of."),
    ("tickets_90d", "feedback", "tickets", "Support tickets in the last 90 days."),
    ("days_since_last_survey", "feedback", "days", "as_of − day of the latest NPS/CSAT answer."),
    ("days_since_last_ticket", "feedback", "days", "as_of − day of the latest ticket."),
    (
        "p_alive",
        "btyd",
        "probability",
        "BG/NBD P(alive at as_of | frequency, recency, T), fitted at as_of.",
    ),
    (
        "bgnbd_p_no_purchase",
        "btyd",
        "probability",
        "BG/NBD P(no purchase in the churn window) (METRICS.md), the BTYD churn score.",
    ),
    (
        "bgnbd_expected_transactions",
        "btyd",
        "purchase days",
        "BG/NBD expected repeat purchase days over the horizon.",
    ),
    (
        "gg_expected_order_value",
        "btyd",
        "currency",
        "Gamma-Gamma conditional expected order value (population mean when frequency = 0).",
    ),
    (
        "btyd_expected_spend",
        "btyd",
        "currency",
        "bgnbd_expected_transactions × gg_expected_order_value: the BTYD CLV over the horizon.",
    ),
]


def _match(column: str) -> tuple[str, str, str] | None:
    for name, family, unit, definition in CATALOG:
        if name == column:
            return family, unit, definition
        if any(ch in name for ch in "()\\") and re.fullmatch(name, column):
            m = re.fullmatch(name, column)
            detail = definition.replace("N days", f"{m.group(1)} days") if m.groups() else definition
            return family, unit, detail
    return None


def feature_catalog(columns) -> pd.DataFrame:
    """Catalog rows for the given feature columns; raises KeyError for an undocumented column."""
    rows = []
    for col in columns:
        found = _match(col)
        if found is None:
            raise KeyError(f"feature '{col}' is not documented in features/catalog.py")
        rows.append({"name": col, "family": found[0], "unit": found[1], "definition": found[2]})
    return pd.DataFrame(rows, columns=["name", "family", "unit", "definition"])


def catalog_markdown() -> str:
    """The catalog as a markdown page (docs/features.md)."""
    lines = [
        "# Feature catalog",
        "",
        "Generated from `src/customer_value/features/catalog.py` (`make catalog`); a test keeps it",
        "in sync. Every feature is computed at a cutoff `as_of` from events on or before that day",
        "only (see METRICS.md for purchase days and windows). `N` stands for each configured trend",
        "window (`features.trend_windows_days`); category and channel shares exist for the top",
        "values by sales (`features.top_categories`, `features.top_channels`).",
        "",
        "| name | family | unit | definition |",
        "|---|---|---|---|",
    ]
    for name, family, unit, definition in CATALOG:
        shown = (
            name.replace(r"(\d+)", "N").replace("(.+)", "<value>")
            if any(ch in name for ch in "()\\")
            else name
        )
        lines.append(f"| `{shown}` | {family} | {unit} | {definition} |")
    return "\n".join(lines) + "\n"
