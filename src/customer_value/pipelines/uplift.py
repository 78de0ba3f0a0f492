"""``customer-value uplift``: who a retention contact changes, learned from a campaign log.

The steps: preflight (the campaigns table is configured, the outputs can be written), the data
read and validated, one training row per campaign contact (features at the day before the contact,
the response = a purchase day in the window after it, with the churn label's definition), a split
into a fitting part and a held-out part, the uplift model fitted and scored on the held-out part
(Qini coefficient, uplift@k, observed effect per decile of predicted uplift), then a refit on the
whole campaign and the uplift of every customer at the latest date, written atomically. Everything
is logged to an MLflow run tagged ``kind=uplift``.

The campaign must be randomized (who was contacted does not depend on anything the model could
see): the held-out effects are differences in means, and the X-learner weighs its two arms by the
treated share. A campaign whose response window has not ended is left out, and the notes say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value import io, tracking
from customer_value.config import Config
from customer_value.errors import ConfigError, UserError
from customer_value.features.build import build_feature_set, model_feature_columns
from customer_value.features.labels import build_labels
from customer_value.modeling.uplift import (
    UpliftModel,
    group_effects,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
)
from customer_value.pipelines.data import ensure_data, load_data
from customer_value.pipelines.options import check_output

__all__ = ["CampaignRows", "UpliftResult", "campaign_rows", "assess", "run_uplift"]

#: Fewer contacts (or controls) than this in the fitting part cannot support an uplift model.
MIN_PER_ARM = 50
OUTPUT_COLUMNS = ["customer_id", "as_of", "uplift", "response_if_contacted", "response_if_not"]


@dataclass(frozen=True)
class CampaignRows:
    """One row per matured contact: features, ``treated``, ``responded`` and the contact date."""

    frame: pd.DataFrame
    features: list[str]
    window_days: int
    notes: list[str] = field(default_factory=list)


@dataclass
class UpliftResult:
    """The held-out assessment, the scored base and where it was written."""

    metrics: dict[str, float]
    qini: pd.DataFrame
    deciles: pd.DataFrame
    scores: pd.DataFrame
    notes: list[str]
    output: Path
    report: Path | None = None
    run_id: str | None = None


def campaign_rows(tables, config: Config) -> CampaignRows:
    """Features at the day before each contact and the response in the window after it.

    Parameters
    ----------
    tables : ValidatedData
        Needs ``campaigns``.
    config : Config
        ``features`` (the feature definitions) and ``uplift.window_days``.

    Returns
    -------
    CampaignRows

    Raises
    ------
    UserError
        No campaign has a finished response window, or nobody in it has bought before.
    """
    window = config.uplift.window_days or config.features.churn_window_days
    tx = tables.transactions
    last = tx["timestamp"].max().normalize()
    parts, notes, vocabulary = [], [], None
    days = pd.DatetimeIndex(sorted(tables.campaigns["date"].unique()))
    late = days - pd.Timedelta(days=1) + pd.Timedelta(days=window) > last
    for day in days[late][:3]:
        notes.append(
            f"campaign of {day.date()} left out: its {window}-day response window ends after "
            f"the data ({last.date()})"
        )
    if late.sum() > 3:
        notes.append(f"... and {int(late.sum()) - 3} later campaign day(s) for the same reason")
    matured = days[~late]
    keep = config.uplift.max_campaign_dates
    if len(matured) > keep:
        notes.append(
            f"{len(matured) - keep} older campaign day(s) left out: only the latest {keep} are "
            "used (uplift.max_campaign_dates)"
        )
        matured = matured[-keep:]
    for date, rows in tables.campaigns[tables.campaigns["date"].isin(matured)].groupby("date"):
        as_of = pd.Timestamp(date) - pd.Timedelta(days=1)
        if as_of < tx["timestamp"].min().normalize():
            notes.append(f"campaign of {date.date()} left out: no purchase before it")
            continue
        fs = build_feature_set(tables, as_of, config.features, vocabulary)
        vocabulary = fs.vocabulary  # the same share columns on every date
        known = rows[rows["customer_id"].isin(fs.frame.index)]
        if known.empty:
            notes.append(
                f"campaign of {date.date()} left out: none of its {len(rows):,} customers had "
                "bought before it (are the ids written as in the transactions?)"
            )
            continue
        if len(known) < len(rows):
            notes.append(
                f"campaign of {date.date()}: {len(rows) - len(known):,} of {len(rows):,} contacted "
                "customers had no purchase before it and are left out (no features)"
            )
        ids = pd.Index(known["customer_id"])
        labels = build_labels(tx, ids, as_of, window, window)
        part = fs.frame.loc[ids].copy()
        part["treated"] = known["treated"].to_numpy()
        part["responded"] = (~labels["churned"]).astype(int).to_numpy()
        part["campaign_date"] = pd.Timestamp(date)
        parts.append(part)
    if not parts:
        raise UserError(
            "no campaign with a finished response window and customers who had bought before it",
            where="data.campaigns",
            hint="; ".join(notes[:3]) or f"the response window is {window} days after the contact",
        )
    frame = pd.concat(parts)
    frame.index.name = "customer_id"
    return CampaignRows(frame, model_feature_columns(fs.frame), window, notes)


def _split(rows: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """Held-out mask, drawn within each arm so both parts keep the campaign's treated share."""
    rng = np.random.default_rng([seed, 0x5EED])
    held = np.zeros(len(rows), dtype=bool)
    for arm in (True, False):
        idx = np.flatnonzero(rows["treated"].to_numpy() == arm)
        take = rng.permutation(idx)[: int(round(share * len(idx)))]
        held[take] = True
    return held


def _check_arms(rows: pd.DataFrame, where: str) -> None:
    for arm, name in ((True, "contacted"), (False, "control")):
        part = rows[rows["treated"].to_numpy() == arm]
        if len(part) < MIN_PER_ARM or part["responded"].nunique() < 2:
            raise UserError(
                f"the campaign has {len(part):,} {name} customer(s) with a matured response "
                f"in {where}; an uplift model needs at least {MIN_PER_ARM} with both outcomes",
                where="data.campaigns",
                hint="a campaign needs a randomized control group (treated false) as well as "
                "contacted customers (treated true)",
            )


def _model(config: Config) -> UpliftModel:
    u = config.uplift
    return UpliftModel(
        learner=u.learner,
        n_estimators=u.n_estimators,
        max_depth=u.max_depth,
        learning_rate=u.learning_rate,
        seed=config.project.seed,
    )


def assess(
    rows: CampaignRows, config: Config
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fit on one part of the campaign and score the uplift ranking on the held-out rest.

    Returns
    -------
    (metrics, qini, deciles, held)
        ``qini_coefficient``, ``uplift_at_<k>`` for each share, the held-out observed and predicted
        mean effects; the Qini curve of the held-out part; the observed effect per decile of
        predicted uplift (highest first) with its 95 % interval; the held-out rows with ``uplift``.
    """
    frame = rows.frame
    held = _split(frame, config.uplift.holdout_share, config.project.seed)
    fit_part, test = frame[~held], frame[held].copy()
    _check_arms(fit_part, "the fitting part")
    _check_arms(test, "the held-out part")
    model = _model(config).fit(fit_part[rows.features], fit_part["treated"], fit_part["responded"])
    test["uplift"] = model.predict(test[rows.features])
    y, t, s = test["responded"].to_numpy(), test["treated"].to_numpy(), test["uplift"].to_numpy()
    observed = group_effects(y, t, np.zeros(len(test), dtype=int)).iloc[0]
    metrics = {
        "qini_coefficient": qini_coefficient(y, t, s),
        "observed_effect": float(observed["effect"]),
        "observed_effect_se": float(observed["se"]),
        "predicted_effect": float(test["uplift"].mean()),
        "held_out_customers": float(len(test)),
        "fitted_customers": float(len(fit_part)),
    }
    for k in config.uplift.top_shares:
        try:
            metrics[f"uplift_at_{round(k * 100)}"] = uplift_at_k(y, t, s, k)
        except ValueError:  # one arm absent from a tiny top group: no figure rather than a guess
            continue
    return metrics, qini_curve(y, t, s), effect_by_rank(y, t, s), test


def effect_by_rank(y: np.ndarray, t: np.ndarray, score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed effect per equal-sized group of predicted uplift (group 1: the highest).

    Does the observed effect fall with the prediction? Fewer groups are used when one would lack
    a contacted or a control customer (a small or lopsided campaign), so there is always a table.
    """
    order = np.argsort(-score, kind="stable")
    for k in range(bins, 0, -1):
        group = np.empty(len(score), dtype=int)
        group[order] = np.arange(len(score)) * k // len(score) + 1
        try:
            table = group_effects(y, t, group)
        except ValueError:  # an arm absent from a group: coarser groups
            continue
        table.insert(0, "predicted_effect", pd.Series(score).groupby(group).mean())
        table.index.name = "decile" if k == 10 else f"group_of_{k}"
        return table.reset_index()
    raise ValueError("both arms are needed")  # unreachable: assess checks the arms first


def score_base(rows: CampaignRows, tables, config: Config) -> pd.DataFrame:
    """Refit on the whole campaign and score every customer at the latest date."""
    model = _model(config).fit(rows.frame[rows.features], rows.frame["treated"], rows.frame["responded"])
    as_of = tables.transactions["timestamp"].max().normalize()
    current = build_feature_set(tables, as_of, config.features).frame
    X = current.reindex(columns=rows.features)  # a share column absent today is missing, not 0
    p0, p1 = model.predict_arms(X)
    return pd.DataFrame(
        {
            "customer_id": current.index.astype(str),
            "as_of": as_of,
            "uplift": model.predict(X),
            "response_if_contacted": p1,
            "response_if_not": p0,
        }
    )[OUTPUT_COLUMNS]


def check_paths(config: Config, output: str | Path, report: str | Path | None) -> None:
    """The outputs, before any work: extensions, writable, not one of the inputs."""
    if config.data.campaigns is None:
        raise ConfigError(
            "this config has no campaigns table (data.campaigns)",
            where=str(config.source_path),
            hint="add data.campaigns with a path to a file of customer_id, date, treated "
            "(see the README, 'Uplift'); configs/campaign.yaml simulates one",
        )
    for option, path, extensions in (
        ("--output", output, (".parquet", ".pq", ".csv", ".csv.gz")),
        ("--report", report, (".html", ".htm")),
    ):
        if path is None:
            continue
        if not str(path).lower().endswith(extensions):
            raise UserError(
                f"unsupported {option} extension", where=str(path), hint=f"use {', '.join(extensions)}"
            )
        io.check_writable(path, option)
        check_output(path, config, option)


def run_uplift(
    config: Config,
    output: str | Path,
    report: str | Path | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> UpliftResult:
    """Learn the campaign's uplift, assess it on held-out contacts, score the base, log it all."""
    check_paths(config, output, report)
    tracking.check_store(config.tracking)  # a store that cannot take the run fails now, not last
    say("[1/4] reading and validating the data")
    ensure_data(config)
    tables = load_data(config).data
    arms = set(tables.campaigns["treated"].unique())
    if arms != {True, False}:
        raise UserError(
            f"every row of the campaigns table is {'contacted' if True in arms else 'held back'}"
            if arms
            else "the campaigns table has no rows",
            where=str(config.data.campaigns.path),
            hint="an uplift model needs a randomized control group (treated false) as well as "
            "contacted customers (treated true)",
        )
    say("[2/4] features before each contact and the responses after it")
    rows = campaign_rows(tables, config)
    say(f"[3/4] fitting the {config.uplift.learner} learner and scoring the held-out contacts")
    metrics, qini, deciles, _ = assess(rows, config)
    scores = score_base(rows, tables, config)
    result = UpliftResult(metrics, qini, deciles, scores, rows.notes, Path(output))
    page = _page(result, rows, config) if report is not None else None
    io.write_frame(scores, output)
    if page is not None:
        io.write_text(page, report)
        result.report = Path(report)
    say("[4/4] logging to MLflow")
    result.run_id = _log(config, result, rows)
    return result


def _page(result: UpliftResult, rows: CampaignRows, config: Config) -> str:
    from customer_value import plots
    from customer_value.report import figure_png, png_data_uri, render_uplift

    fig = plots.qini_chart(result.qini, "held-out Qini curve")
    facts = {
        "learner": config.uplift.learner,
        "response window (days)": rows.window_days,
        "campaign dates": ", ".join(str(d.date()) for d in sorted(rows.frame["campaign_date"].unique())),
        **{k: round(v, 4) for k, v in result.metrics.items()},
        "uplift file": str(result.output),
    }
    return render_uplift(
        "Campaign uplift", facts, result.deciles, result.notes, png_data_uri(figure_png(fig))
    )


def _log(config: Config, r: UpliftResult, rows: CampaignRows) -> str:
    tracking.setup(config.tracking, config.tracking.experiment or config.project.name)
    with tracking.start_run("uplift", tags={"kind": "uplift"}) as run:
        u = config.uplift
        tracking.log_params(
            {
                "learner": u.learner,
                "window_days": rows.window_days,
                "holdout_share": u.holdout_share,
                "n_estimators": u.n_estimators,
                "max_depth": u.max_depth,
                "learning_rate": u.learning_rate,
                "campaign_rows": len(rows.frame),
            }
        )
        tracking.log_metrics({k: v for k, v in r.metrics.items() if math.isfinite(v)})
        tracking.log_table(r.deciles, "uplift/held_out_deciles.csv")
        tracking.log_table(r.qini, "uplift/held_out_qini.csv")
        return run.info.run_id
