"""Compose the feature families at a cutoff, and stack training snapshots before a training as_of.

``build_features(tables, as_of, config)`` is the one table every model stands on: one row per
customer first seen on or before ``as_of``, computed only from events on or before ``as_of``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from customer_value.config import FeatureConfig, SnapshotConfig
from customer_value.errors import UserError
from customer_value.features.behaviour import behaviour_features, top_values
from customer_value.features.btyd import BTYDModels, btyd_features, fit_btyd
from customer_value.features.events import prepare_events
from customer_value.features.feedback import feedback_features
from customer_value.features.labels import build_labels
from customer_value.features.rfm import rfm_features
from customer_value.features.value import value_features
from customer_value.validate import ValidatedData

__all__ = [
    "FeatureSet",
    "TrainingSet",
    "Vocabulary",
    "build_feature_set",
    "build_features",
    "build_training_set",
    "check_feature_ranges",
    "model_feature_columns",
    "plan_cutoffs",
    "plan_tasks",
    "LabelWindow",
    "stack_snapshots",
    "projection_ratio",
    "daily_revenue",
    "seasonal_index",
    "LABEL_COLUMNS",
]

LABEL_COLUMNS = ("churned", "future_revenue", "future_transactions", "future_margin")
#: Descriptive columns that are not model inputs.
NON_MODEL_COLUMNS = ("nps_class",)


@dataclass(frozen=True)
class Vocabulary:
    """Category and channel values that get share features; fixed across snapshots and scoring."""

    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


@dataclass
class FeatureSet:
    """Features at one cutoff, with the BTYD models fitted there and the vocabulary used."""

    frame: pd.DataFrame
    as_of: pd.Timestamp
    btyd: BTYDModels
    vocabulary: Vocabulary


def build_feature_set(
    tables: ValidatedData,
    as_of,
    config: FeatureConfig,
    vocabulary: Vocabulary | None = None,
    btyd: bool = True,
) -> FeatureSet:
    """Build every feature family at ``as_of``.

    Parameters
    ----------
    tables : ValidatedData
        Validated transactions, and optionally customers and interactions.
    as_of : date-like
        The cutoff; events on that day are included, later events are never read.
    config : FeatureConfig
        Windows, vocabulary sizes and costs.
    vocabulary : Vocabulary, optional
        Categories/channels with share features. Default: the top ones by sales up to ``as_of``.
    btyd : bool
        Fit BG/NBD and Gamma-Gamma and add their outputs (needs a realistic number of customers).

    Returns
    -------
    FeatureSet
    """
    as_of = pd.Timestamp(as_of).normalize()
    ev = prepare_events(tables.transactions, as_of)
    if ev.n == 0:
        raise UserError(
            f"no customer has a transaction on or before {as_of.date()}",
            hint="choose an as_of date inside the data's date range",
        )
    if vocabulary is None:
        vocabulary = Vocabulary(
            tuple(top_values(ev, "category", config.top_categories)),
            tuple(top_values(ev, "channel", config.top_channels)),
        )
    rfm = rfm_features(ev, config.rate_floor_days)
    beh = behaviour_features(
        ev,
        rfm["days_since_last_purchase"].to_numpy(),
        config.trend_windows_days,
        list(vocabulary.categories),
        list(vocabulary.channels),
    )
    fb = feedback_features(ev, tables.interactions)
    tickets = None if tables.interactions is None else fb["tickets_total"].to_numpy()
    val = value_features(ev, tables.customers, tickets, config.cost_per_ticket)
    parts = [rfm, beh, val, fb]
    models = BTYDModels(None, None)
    if btyd:
        models = fit_btyd(rfm, config.btyd_penalizer)
        parts.append(btyd_features(rfm, models, config.horizon_days, config.churn_window_days))
    frame = pd.concat(parts, axis=1)
    frame.index.name = "customer_id"
    return FeatureSet(frame, as_of, models, vocabulary)


def build_features(tables, as_of, config: FeatureConfig, vocabulary=None, btyd=True) -> pd.DataFrame:
    """The feature table at ``as_of``: one row per customer (index ``customer_id``)."""
    return build_feature_set(tables, as_of, config, vocabulary, btyd).frame


def model_feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric feature columns that models take (labels and descriptive columns excluded)."""
    skip = set(LABEL_COLUMNS) | set(NON_MODEL_COLUMNS) | {"as_of", "snapshot", "customer_id"}
    return [
        c
        for c in frame.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]


# --------------------------------------------------------------------------------------------------
# Snapshots


@dataclass
class CutoffPlan:
    """Where one task's snapshots fall and how long its label window is."""

    task: str
    oot_cutoff: pd.Timestamp
    train_cutoffs: list[pd.Timestamp]
    label_days: int
    wanted_days: int
    notes: list[str] = field(default_factory=list)
    serve_cutoffs: list[pd.Timestamp] = field(default_factory=list)
    season: float | None = None  # seasonal_index of the window after as_of (None: no such history)

    @property
    def projected(self) -> bool:
        """True when the label window is shorter than the window asked for."""
        return self.label_days < self.wanted_days


@dataclass(frozen=True)
class LabelWindow:
    """One task's labels: the window after each cutoff and the label columns it keeps.

    ``projected`` names what is projected to the full window when the history forces a shorter
    label window (e.g. ``"CLV predictions"``); empty when nothing is.
    """

    days: int
    columns: tuple[str, ...]
    projected: str = ""


def plan_cutoffs(
    first_date, as_of, window_days: int, snapshots: SnapshotConfig, task: str, projected: str = ""
) -> CutoffPlan:
    """Place one task's out-of-time cutoff and training cutoffs; no label reads past ``as_of``.

    The out-of-time cutoff is ``as_of − window``, the latest whose label window is fully observed.
    Training cutoffs step back from it by ``spacing_days``; with ``purge`` they start a whole window
    earlier, so no training label overlaps the out-of-time label window. Every cutoff leaves
    ``min_history_days`` of history. Each task plans with its own window (churn: the churn window;
    CLV: the horizon), so churn is trained and judged on recent snapshots even when the CLV horizon
    is long. When the history is too short, the longest window that fits (at least
    ``min_label_days``) is used: CLV predictions are then projected to the full horizon.
    """
    first = pd.Timestamp(first_date).normalize()
    as_of = pd.Timestamp(as_of).normalize()
    history = (as_of - first).days
    # The label window must fit twice when purging (one training window, then the OOT one).
    span_factor = 2 if snapshots.purge else 1
    available = (history - snapshots.min_history_days) // span_factor
    notes: list[str] = []
    if available >= window_days:
        label_days = window_days
    elif available >= snapshots.min_label_days:
        label_days = available
        notes.append(
            f"history from {first.date()} to {as_of.date()} ({history} days) is too short for a "
            f"{window_days}-day {task} window: its labels use {label_days} days"
            + (
                f" and {projected} are projected to {window_days} days with the BG/NBD ratio"
                if projected
                else ""
            )
        )
    else:
        need = snapshots.min_history_days + span_factor * snapshots.min_label_days
        raise UserError(
            f"not enough history to train: the data runs from {first.date()} to {as_of.date()} "
            f"({history} days) but training needs at least {need} days "
            f"({snapshots.min_history_days} of history before the first cutoff, then "
            f"{span_factor} label window(s) of at least {snapshots.min_label_days} days)",
            hint="use a later as_of, more data, a smaller snapshots.min_history_days or "
            "snapshots.min_label_days",
        )
    oot = as_of - pd.Timedelta(days=label_days)
    start = oot - pd.Timedelta(days=label_days if snapshots.purge else snapshots.spacing_days)
    earliest = first + pd.Timedelta(days=snapshots.min_history_days)
    train = [
        start - pd.Timedelta(days=k * snapshots.spacing_days) for k in range(snapshots.n_snapshots - 1)
    ]
    train = [c for c in train if c >= earliest]
    if len(train) < snapshots.n_snapshots - 1:
        notes.append(
            f"{task}: only {len(train)} of {snapshots.n_snapshots - 1} training snapshots "
            f"fit in the history (earliest cutoff allowed: {earliest.date()})"
        )
    if not train:
        raise UserError(
            f"no {task} training snapshot fits before the out-of-time cutoff {oot.date()}",
            hint="use more history, a shorter window, snapshots.purge: false or a smaller "
            "snapshots.min_history_days",
        )
    # Serving refits learn from the latest fully labelled windows: the out-of-time one and those
    # just before it. They are never judged, so they need no purge gap.
    serve = [
        oot - pd.Timedelta(days=k * snapshots.spacing_days) for k in range(snapshots.serving_snapshots)
    ]
    serve = sorted(c for c in serve if c >= earliest)
    return CutoffPlan(task, oot, sorted(train), label_days, window_days, notes, serve)


@dataclass
class TaskSet:
    """One task's stacked snapshots.

    ``frame`` has ``customer_id``, ``as_of``, ``snapshot`` (train/oot), the features and the labels.
    """

    frame: pd.DataFrame
    plan: CutoffPlan

    @property
    def train(self) -> pd.DataFrame:
        """Rows of the training snapshots."""
        return self.frame[self.frame["snapshot"] == "train"]

    @property
    def oot(self) -> pd.DataFrame:
        """Rows of the out-of-time snapshot."""
        return self.frame[self.frame["snapshot"] == "oot"]

    @property
    def serving(self) -> pd.DataFrame:
        """Rows of the serving cutoffs (the out-of-time one and those before it)."""
        return self.frame[self.frame["as_of"].isin(self.plan.serve_cutoffs)]


@dataclass
class TrainingSet:
    """Snapshots for every labelled task, built from one set of features per cutoff."""

    tasks: dict[str, TaskSet]
    vocabulary: Vocabulary
    feature_columns: list[str]
    btyd: dict[pd.Timestamp, BTYDModels]
    #: Every customer's features at ``as_of``: the base the served models will score (no labels).
    current: pd.DataFrame | None = None

    @property
    def notes(self) -> list[str]:
        """Warnings about shortened windows or missing snapshots."""
        return [n for t in self.tasks.values() for n in t.plan.notes]

    @property
    def latest(self) -> TaskSet:
        """The task set whose out-of-time cutoff is the most recent (ties: the first registered)."""
        return max(self.tasks.values(), key=lambda t: t.plan.oot_cutoff)


def build_training_set(
    tables: ValidatedData,
    as_of,
    features: FeatureConfig,
    snapshots: SnapshotConfig,
    labels: Mapping[str, LabelWindow],
) -> TrainingSet:
    """Features and labels at every planned cutoff before ``as_of``; nothing after it is read.

    Each task's snapshots keep its own label columns over its own window (churn: ``churned`` over
    the churn window; CLV: ``future_revenue``, ``future_transactions`` and ``future_margin`` over the
    horizon). Features are computed once per cutoff and shared. The vocabulary (categories and
    channels with share features) is taken at the earliest training cutoff, so every snapshot has
    the same columns and none learns from later data.
    """
    as_of = pd.Timestamp(as_of).normalize()
    tx = tables.transactions
    # Nothing after as_of is ever read: cut the tables once, here.
    upto = as_of + pd.Timedelta(days=1)
    tables = ValidatedData(
        tx[tx["timestamp"] < upto],
        tables.customers,
        None
        if tables.interactions is None
        else tables.interactions[tables.interactions["timestamp"] < upto],
    )
    plans = plan_tasks(tables.transactions["timestamp"].min(), as_of, labels, snapshots)
    earliest = min(min(p.train_cutoffs) for p in plans.values())
    early = tables.transactions[tables.transactions["timestamp"] < earliest + pd.Timedelta(days=1)]
    vocab = Vocabulary(
        tuple(top_values(early, "category", features.top_categories)),
        tuple(top_values(early, "channel", features.top_channels)),
    )

    def features_at(cutoff):
        fs = build_feature_set(tables, cutoff, features, vocab)
        return fs.frame, fs.btyd

    def labels_at(index, cutoff, days):
        return build_labels(tables.transactions, index, cutoff, days, days)

    daily = daily_revenue(tables.transactions)
    return stack_snapshots(plans, features_at, labels_at, vocab, labels, daily, as_of)


def plan_tasks(
    first_date, as_of, labels: Mapping[str, LabelWindow], snapshots: SnapshotConfig
) -> dict[str, CutoffPlan]:
    """One cutoff plan per labelled task (each with its own window); notes become warnings."""
    plans = {
        task: plan_cutoffs(first_date, as_of, w.days, snapshots, task, w.projected)
        for task, w in labels.items()
    }
    for plan in plans.values():
        for note in plan.notes:
            warnings.warn(note, UserWarning, stacklevel=3)
    return plans


def daily_revenue(transactions: pd.DataFrame) -> pd.Series:
    """Net revenue per calendar day of the whole log (the seasonality signal)."""
    day = transactions["timestamp"].dt.normalize()
    return transactions["amount"].groupby(day).sum().sort_index()


def seasonal_index(daily: pd.Series | None, as_of, label_days: int) -> float | None:
    """How the season changed, a year ago, from the latest labelled window to the next one.

    ``revenue(as_of − 365 + (0, L]) / revenue(as_of − 365 − L + (0, L])``: the latest labelled
    window is ``(as_of − L, as_of]``, the window served is ``(as_of, as_of + L]``, and the same two
    windows a year earlier show how much the season lifts (or lowers) the second against the
    first. None when the history does not reach back ``365 + L`` days, when ``L`` is a year or more
    (a whole year has no season), or without revenue.
    """
    if daily is None or daily.empty or label_days >= 365:
        return None
    as_of = pd.Timestamp(as_of).normalize()
    year_ago = as_of - pd.Timedelta(days=365)
    start = year_ago - pd.Timedelta(days=label_days)
    if daily.index.min() > start + pd.Timedelta(days=1):
        return None
    before = daily[(daily.index > start) & (daily.index <= year_ago)].sum()
    after = daily[
        (daily.index > year_ago) & (daily.index <= year_ago + pd.Timedelta(days=label_days))
    ].sum()
    if before <= 0 or after <= 0:
        return None
    return float(after / before)


def stack_snapshots(
    plans: dict[str, CutoffPlan],
    features_at,
    labels_at,
    vocab: Vocabulary,
    labels: Mapping[str, LabelWindow],
    daily: pd.Series | None = None,
    as_of=None,
) -> TrainingSet:
    """Stack features and labels at every planned cutoff (shared by the pandas and Spark engines).

    ``features_at(cutoff) -> (frame indexed by customer_id, BTYDModels)`` is called once per
    cutoff, and once at ``as_of`` for :attr:`TrainingSet.current` (the base the served models
    will score); ``labels_at(index, cutoff, window_days)`` returns every label column. ``daily``
    (net revenue per day up to ``as_of``) gives each plan its :func:`seasonal_index`.
    """
    cache: dict = {}
    sets = {}
    for task, plan in plans.items():
        if as_of is not None:
            plan.season = seasonal_index(daily, as_of, plan.label_days)
        frames = []
        extra = [c for c in plan.serve_cutoffs if c not in {*plan.train_cutoffs, plan.oot_cutoff}]
        for cutoff in [*plan.train_cutoffs, *extra, plan.oot_cutoff]:
            if cutoff not in cache:
                cache[cutoff] = features_at(cutoff)
            feats, _ = cache[cutoff]
            y = labels_at(feats.index, cutoff, plan.label_days)
            y = y[[c for c in labels[task].columns if c in y.columns]]
            snap = pd.concat([feats, y], axis=1).reset_index()
            snap.insert(1, "as_of", cutoff)
            kind = (
                "oot"
                if cutoff == plan.oot_cutoff
                else "train"
                if cutoff in plan.train_cutoffs
                else "serve"
            )
            snap.insert(2, "snapshot", kind)
            frames.append(snap)
        sets[task] = TaskSet(pd.concat(frames, ignore_index=True), plan)
    columns = model_feature_columns(next(iter(sets.values())).frame)
    btyd = {c: models for c, (_, models) in cache.items()}
    current = features_at(pd.Timestamp(as_of).normalize())[0] if as_of is not None else None
    return TrainingSet(sets, vocab, columns, btyd, current)


def projection_ratio(
    models: BTYDModels, rfm: pd.DataFrame, short_days: int, full_days: int
) -> pd.Series:
    """Per customer, E[transactions in full_days] / E[transactions in short_days] under BG/NBD.

    Multiplying a prediction over a short label window by this ratio projects it to the full
    horizon, with each customer's own expected decay (dropout) taken into account. Without a BG/NBD
    fit it falls back to the linear ratio ``full_days / short_days``.
    """
    if models.bgnbd is None or short_days >= full_days:
        return pd.Series(full_days / short_days, index=rfm.index)
    X = pd.DataFrame(
        {"frequency": rfm["frequency"], "recency": rfm["recency_days"], "T": rfm["tenure_days"]},
        index=rfm.index,
    )
    full = models.bgnbd.expected_transactions(X, full_days)
    short = models.bgnbd.expected_transactions(X, short_days)
    ratio = (full / short.where(short > 1e-12)).fillna(full_days / short_days)
    return ratio.clip(lower=1.0)


def check_feature_ranges(
    train: pd.DataFrame, score: pd.DataFrame, columns: list[str], tolerance: float = 0.05
) -> dict[str, float]:
    """Columns where more than ``tolerance`` of scoring rows fall outside the training range.

    Returns ``{column: share outside}``; a warning names them, since trees extrapolate flat.
    """
    out = {}
    for col in columns:
        lo, hi = train[col].min(), train[col].max()
        values = score[col].dropna()
        if values.empty or pd.isna(lo):
            continue
        share = float(((values < lo) | (values > hi)).mean())
        if share > tolerance:
            out[col] = round(share, 4)
    if out:
        worst = ", ".join(f"{k} ({v:.0%})" for k, v in sorted(out.items(), key=lambda kv: -kv[1])[:8])
        warnings.warn(
            f"scoring features outside the training range: {worst}. Tree models predict flat "
            "beyond it; prefer the rate-normalised features or retrain on later cutoffs.",
            UserWarning,
            stacklevel=2,
        )
    return out
