"""Typed configuration, validated once at the entry point.

One pydantic model per concern; :func:`load_config` reads a YAML file, applies ``--set dotted.key=value``
overrides and validates the result. Unknown keys are errors that name the key and list the valid ones.

Relative paths written in a YAML file resolve against that file's folder, so a config works from any
working directory; relative paths given with ``--set`` resolve against the current working directory,
as a user typing them expects.
"""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from customer_value.errors import ConfigError

__all__ = [
    "CancellationRule",
    "Config",
    "DataConfig",
    "FeatureConfig",
    "SnapshotConfig",
    "ServingConfig",
    "PolicyConfig",
    "ProjectConfig",
    "SimulationConfig",
    "SourceConfig",
    "load_config",
]


class _Model(BaseModel):
    """Base for every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# One rule for every name that becomes a folder or a registry entry (experiment, project):
# letters, digits, space, "_", ".", "-"; starts with a letter or digit, so never "..", "/x" or ".x".
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$"
NAME_HINT = "letters, digits, spaces, '_', '.' and '-' only, starting with a letter or digit"


def _safe_name(value: str | None) -> str | None:
    import re

    if value is not None and (not re.fullmatch(NAME_PATTERN, value) or ".." in value):
        raise ValueError(
            f"{value[:60]!r} cannot be used: it names a folder under tracking.artifact_dir; "
            f"use {NAME_HINT}"
        )
    return value


class ProjectConfig(_Model):
    """Project-wide settings."""

    name: str = Field("customer-value", description="Used as the MLflow experiment name.")
    seed: int = Field(42, description="Seed for every random step (simulation, sampling, tuning).")

    _name_is_safe = field_validator("name")(_safe_name)


class CancellationRule(_Model):
    """Marks rows as cancellations/returns from a column's text, e.g. an order id starting with ``C``."""

    column: str = Field(description="Contract column to test (after mapping), e.g. order_id.")
    prefix: str = Field(
        min_length=1,
        pattern=r"\S",
        description="Rows whose value starts with this prefix are cancellations (never empty: an "
        "empty prefix would match every row).",
    )


class SourceConfig(_Model):
    """One source file and how its columns map onto the data contract.

    ``columns`` maps source names to contract names (``{"CustomerID": "customer_id"}``); unmapped
    source columns keep their names and are available to ``derive`` expressions, then dropped unless
    they are contract columns.
    """

    path: Path
    format: Literal["auto", "csv", "parquet", "whitespace"] = "auto"
    header: bool = Field(True, description="Whether a csv/whitespace file has a header row.")
    names: list[str] | None = Field(None, description="Column names when the file has no header.")
    delimiter: str = Field(",", description="Field delimiter for csv files.")
    encoding: str = "utf-8"
    columns: dict[str, str] = Field(default_factory=dict, description="source name -> contract name")
    date_format: str | None = Field(
        None,
        description="strftime format of the timestamp/date columns, e.g. %Y%m%d; None = ISO; "
        "epoch_s / epoch_ms = Unix times in seconds / milliseconds (UTC, shown in data.timezone).",
    )
    derive: dict[str, str] = Field(
        default_factory=dict,
        description="new column -> arithmetic expression over columns, e.g. Quantity * UnitPrice",
    )
    cancellation: CancellationRule | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            info = codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown text encoding {value!r}; use e.g. utf-8, utf-8-sig, latin-1 or cp1252"
            ) from None
        if not getattr(info, "_is_text_encoding", True):  # e.g. 'rot13', 'base64': not a charset
            raise ValueError(f"{value!r} is not a text encoding; use e.g. utf-8 or latin-1")
        return value

    @field_validator("derive")
    @classmethod
    def _derive_is_arithmetic(cls, value: dict[str, str]) -> dict[str, str]:
        # Checked when the config loads, so a bad expression fails before any data is read.
        from customer_value.expressions import ALLOWED, ExpressionError, parse

        for name, expr in value.items():
            try:
                parse(expr)
            except ExpressionError as exc:
                shown = expr if len(str(expr)) <= 60 else f"{str(expr)[:57]}..."
                raise ValueError(f"'{name}' = {shown!r}: {exc}; use {ALLOWED}") from None
        return value

    @field_validator("names")
    @classmethod
    def _names_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            repeated = sorted({n for n in value if value.count(n) > 1})
            if repeated:
                raise ValueError(f"lists {repeated} more than once; each column needs its own name")
        return value

    @field_validator("columns")
    @classmethod
    def _one_source_per_name(cls, value: dict[str, str]) -> dict[str, str]:
        targets: dict[str, list[str]] = {}
        for src, dst in value.items():
            targets.setdefault(dst, []).append(src)
        both = {dst: srcs for dst, srcs in targets.items() if len(srcs) > 1}
        if both:
            dst, srcs = next(iter(both.items()))
            raise ValueError(f"maps {srcs} all to '{dst}'; map one source column to each name")
        return value

    @model_validator(mode="after")
    def _names_need_headerless(self) -> SourceConfig:
        if self.names is not None and self.header:
            raise ValueError("'names' is only used when 'header' is false")
        if not self.header and self.names is None and self.format in ("csv", "whitespace"):
            raise ValueError("a file without a header needs 'names' (the column names in order)")
        return self


class PolicyConfig(_Model):
    """What validation does with doubtful rows. Every rule's effect is counted in the report."""

    missing_customer_id: Literal["drop", "error"] = "drop"
    duplicates: Literal["drop", "keep", "error"] = Field(
        "drop", description="Exact duplicate transaction rows (every column equal)."
    )
    duplicate_customer_id: Literal["drop", "error"] = Field(
        "drop",
        description="Customers-table rows whose customer_id came earlier: drop keeps the first.",
    )
    returns: Literal["keep", "drop"] = Field(
        "keep", description="Rows marked as cancellations/returns: keep as negative amounts or drop."
    )
    negative_amounts: Literal["return", "drop", "error"] = Field(
        "return", description="Negative amounts not marked as cancellations."
    )
    zero_amounts: Literal["drop", "keep"] = "drop"
    extreme_amounts: Literal["keep", "drop", "error"] = Field(
        "keep",
        description="Amounts over 1000x the 99th percentile of |amount| (a unit or typing error, "
        "or a real wholesale order): kept with a warning and a report line, dropped, or an error.",
    )
    missing_amount: Literal["error", "drop"] = "error"
    exclude_products: list[str] = Field(
        default_factory=list,
        description="product_id patterns (fnmatch, case-sensitive) that are not customer spend.",
    )


class DataConfig(_Model):
    """Where the data lives and how it is cleaned."""

    transactions: SourceConfig
    customers: SourceConfig | None = None
    interactions: SourceConfig | None = None
    campaigns: SourceConfig | None = Field(
        None,
        description="Retention campaigns: customer_id, date, treated (contacted or held back), "
        "optional channel and cost; read by `customer-value uplift`.",
    )
    policies: PolicyConfig = Field(default_factory=PolicyConfig)
    timezone: str | None = Field(
        None,
        description="Timezone-aware timestamps are converted to this zone, then made naive. "
        "None: mixing aware and naive timestamps is an error.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        # Checked here, once, rather than deep inside validation on the first aware timestamp,
        # where an unknown zone would surface as a library error (or not at all on naive data).
        if value is None:
            return value
        import pandas as pd  # lazily: loading a config should stay cheap

        try:
            pd.Timestamp(0).tz_localize(value)
        except Exception:  # zoneinfo, pytz and dateutil each raise their own type
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as Europe/Paris or UTC"
            ) from None
        return value


class CampaignSimConfig(_Model):
    """A randomized retention campaign in the simulated base, with a known effect per persona."""

    date: dt.date | None = Field(
        None, description="Contact day; None: window_days before simulation.end_date."
    )
    window_days: int = Field(90, gt=0, le=730, description="Response window from the contact day.")
    treat_share: float = Field(0.5, gt=0, lt=1, description="Share of the base contacted.")
    effects: dict[str, float] | None = Field(
        None,
        description="Persona name -> probability that a contact makes a would-be non-buyer buy "
        "in the window; personas not named keep synthetic.CAMPAIGN_EFFECTS.",
    )
    contact_cost: float = Field(1.0, ge=0, allow_inf_nan=False)

    @field_validator("effects")
    @classmethod
    def _effects_are_shares(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and not all(0.0 <= v <= 1.0 for v in value.values()):
            raise ValueError("campaign effects are probabilities between 0 and 1")
        return value


class SimulationConfig(_Model):
    """The simulated customer base (the embedded default data); see docs/simulation.md."""

    kind: Literal["btyd", "drift"] = Field(
        "btyd",
        description="btyd: BG/NBD + Gamma-Gamma by construction (the default). drift: seasonality, "
        "satisfaction-driven dropout, spend trends and cohort drift; not BG/NBD by construction.",
    )
    drift: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the drift base's parameters (synthetic.DriftParams fields, e.g. "
        "seasonal_amplitude: 0.3); only read when kind is drift, and checked before it simulates.",
    )
    # Upper bounds on sizes a config can ask for: a one-line typo must not exhaust memory or run
    # for days before anything says so (10^7 customers is about 15 GB of simulated rows).
    n_customers: int = Field(20_000, gt=0, le=10_000_000)
    start_date: dt.date = dt.date(2022, 1, 1)
    end_date: dt.date = Field(dt.date(2024, 6, 30), description="Observation end (inclusive).")
    future_days: int = Field(365, gt=0, le=3650, description="Ground-truth window after end_date.")
    initial_share: float = Field(
        0.3, ge=0, le=1, description="Share of customers already acquired on start_date."
    )
    output_dir: Path = Path("../data/raw")
    truth_dir: Path = Path("../data/truth")
    auto: bool = Field(True, description="Simulate when the configured transactions are absent.")
    format: Literal["parquet", "csv"] = "parquet"
    campaign: CampaignSimConfig | None = Field(
        None, description="Add a randomized retention campaign (written as campaigns.<format>)."
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> SimulationConfig:
        if self.end_date <= self.start_date:
            raise ValueError(f"end_date ({self.end_date}) must be after start_date ({self.start_date})")
        day = self.campaign.date if self.campaign is not None else None
        if day is not None and not (self.start_date < day <= self.end_date):
            raise ValueError(
                f"campaign.date ({day}) must fall after start_date and by end_date ({self.end_date})"
            )
        if (self.end_date - self.start_date).days > 20 * 365:
            raise ValueError(
                "the simulated history is longer than 20 years; shorten start_date..end_date"
            )
        return self


class FeatureConfig(_Model):
    """Point-in-time features and the prediction windows."""

    horizon_days: int = Field(
        365, gt=0, le=3650, description="CLV window after as_of: (as_of, as_of + h]."
    )
    churn_window_days: int = Field(
        90, gt=0, le=3650, description="Churned = no purchase day in (as_of, as_of + churn_window_days]."
    )
    trend_windows_days: list[int] = Field(
        default_factory=lambda: [30, 90, 180],
        description="Recent windows compared with the window of equal length before them.",
    )
    top_categories: int = Field(
        10, ge=0, le=200, description="Categories with a share-of-spend feature."
    )
    top_channels: int = Field(5, ge=0, le=100, description="Channels with a share-of-orders feature.")
    cost_per_ticket: float = Field(8.0, ge=0, description="Cost to serve one support ticket.")
    rate_floor_days: int = Field(
        30,
        gt=0,
        description="Tenure floor for per-year rates, so brand-new customers get no extreme rates.",
    )
    btyd_penalizer: float = Field(
        0.0001, ge=0, description="L2 penalty of the BG/NBD and Gamma-Gamma fits (on log-parameters)."
    )

    @model_validator(mode="after")
    def _windows_positive(self) -> FeatureConfig:
        if any(w <= 0 or w > 3650 for w in self.trend_windows_days):
            raise ValueError("trend_windows_days must all be between 1 and 3650")
        if len(self.trend_windows_days) > 20:
            raise ValueError("at most 20 trend_windows_days")
        return self


class SnapshotConfig(_Model):
    """Training snapshots stacked before a training as_of (the latest one is out-of-time)."""

    n_snapshots: int = Field(4, ge=2, le=100, description="Cutoffs stacked; the latest is out-of-time.")
    spacing_days: int = Field(60, gt=0, le=3650, description="Days between consecutive cutoffs.")
    min_history_days: int = Field(90, ge=0, description="History required before the earliest cutoff.")
    purge: bool = Field(
        True,
        description="Training label windows end on or before the out-of-time cutoff, so no "
        "training label overlaps the out-of-time label window (honest out-of-time metrics).",
    )
    min_label_days: int = Field(
        30,
        gt=0,
        description="Shortest label window accepted when history is shorter than the "
        "horizon (predictions are then projected to the full horizon).",
    )
    serving_snapshots: int = Field(
        4,
        ge=1,
        description="Fully labelled cutoffs the served models are refitted on: the out-of-time "
        "one and those before it, spacing_days apart (no purge gap: serving is not judged).",
    )


class ServingConfig(_Model):
    """What is served: refitted models, blended with the classical ones, or a classical model."""

    refit: bool = Field(
        True,
        description="Refit the served models on the latest fully labelled windows "
        "(snapshots.serving_snapshots) with the tuned hyper-parameters; metrics stay out-of-time.",
    )
    blend: bool = Field(
        True,
        description="Blend the learned CLV and transaction models with BG/NBD + Gamma-Gamma and "
        "the naive rates (non-negative weights fitted on the out-of-time window).",
    )
    seasonal: bool = Field(
        False,
        description="Scale the served CLV and count totals by how the same two windows changed a "
        "year earlier (only where the history reaches back a year plus the window, and the window "
        "is shorter than a year).",
    )
    tolerance: float = Field(
        0.02,
        ge=0,
        description="Gate: the learned model is served only if, on the out-of-time window, no "
        "headline metric is worse than the best classical model's by more than this (relative "
        "for aggregate error and Brier, absolute for rank metrics).",
    )


class TuningConfig(_Model):
    """Optuna (TPE) search for one xgboost model; early stopping on a validation split."""

    n_trials: int = Field(20, ge=1, le=10_000, description="Trials per study.")
    # No cap by default: a wall-clock cap stops the study at a trial that depends on the machine's
    # speed and load, so the same config and data would give different models (seen: 140 s for the
    # CLV study on a loaded 2-core machine, cut at 120 s). The trial count alone is reproducible.
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Wall-clock cap per study (seconds); None: n_trials alone stops it, so the "
        "same config and data give the same models on any machine.",
    )
    max_estimators: int = Field(600, ge=10, le=100_000, description="Upper bound on boosting rounds.")
    early_stopping_rounds: int = Field(30, ge=1)
    validation_share: float = Field(
        0.25,
        gt=0,
        lt=0.9,
        description="Share of training customers held out (by customer id) for "
        "early stopping, tuning and calibration; never the out-of-time set.",
    )


class PersonaConfig(_Model):
    """Customer personas: clustering and naming."""

    features: list[str] = Field(
        default_factory=lambda: [
            "frequency_per_year",
            "revenue_per_year",
            "monetary_mean",
            "distinct_categories",
            "discount_share",
            "return_rate",
            "items_per_order",
        ],
        description="Features the clustering sees (money and counts are log-transformed). "
        "Tenure and recency are left out by default: they say when a customer came and how long "
        "ago they bought, not what kind of customer they are (the churn model reads them), and "
        "leaving them out raised the ARI against the simulated base's true personas from 0.25 to "
        "0.32 at k = 6 (benchmarks/bench_personas.py). Names still read them from the profile.",
    )
    shrink_prior: float = Field(
        8.0,
        ge=0,
        le=1000,
        description="Per-order averages (order value, items, discount and return shares) are "
        "shrunk towards the base's mean as if this many average orders were added to each "
        "customer's purchase days; 0 clusters them raw.",
    )
    algorithm: Literal["kmeans", "gmm"] = "kmeans"
    k_min: int = Field(3, ge=2)
    k_max: int = Field(8, ge=2, le=50)
    silhouette_sample: int = Field(4000, ge=100, description="Rows used for the silhouette score.")
    stability_bootstraps: int = Field(
        4, ge=1, le=1000, description="Bootstrap refits for the stability ARI."
    )
    min_share: float = Field(0.03, ge=0, lt=0.5, description="Smallest persona allowed (share).")
    k_tolerance: float = Field(
        0.02,
        ge=0,
        le=1,
        description="k is the largest eligible k whose silhouette + stability is within this of "
        "the best and whose stability ARI is at least min_stability (finer personas when they "
        "cost nothing measurable); 0 takes the best score.",
    )
    min_stability: float = Field(0.9, ge=0, le=1, description="See k_tolerance.")
    retrain_tolerance: float = Field(
        0.25,
        ge=0,
        le=2,
        description="A retrain keeps the champion's number of personas while it scores within "
        "this of the best k (persona ids stay put; the score's month-to-month noise on the "
        "simulated base is up to 0.22).",
    )
    migration_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Predictions carry each customer's persona this many days before as_of "
        "(previous_persona), and the review API's migration matrix starts there by default.",
    )

    @model_validator(mode="after")
    def _range(self) -> PersonaConfig:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) must be >= k_min ({self.k_min})")
        return self


class ChurnConfig(_Model):
    """The churn classifier."""

    tuning: TuningConfig = Field(default_factory=TuningConfig)
    calibration: Literal["isotonic", "sigmoid", "none"] = "isotonic"
    calibration_tolerance: float = Field(
        0.02, ge=0, description="Calibrate when the validation expected calibration error exceeds this."
    )


class CLVConfig(_Model):
    """The CLV regressor."""

    tuning: TuningConfig = Field(default_factory=TuningConfig)
    objective: Literal["tweedie", "two_part"] = Field(
        "tweedie",
        description="tweedie: one model for zero-inflated spend; two_part: P(buy) x E[spend | buy].",
    )
    target: Literal["auto", "revenue", "margin"] = Field(
        "auto", description="auto: margin where the log has costs, else revenue."
    )
    intervals_levels: list[float] = Field(
        default_factory=lambda: [0.8, 0.95],
        description="Levels of the per-customer CLV prediction intervals (split conformal on the "
        "out-of-time window); the backtest reports their coverage and width.",
    )
    intervals_match_ranks: bool = Field(
        True,
        description="Place each scored customer in its prediction bin by rank among the served "
        "model's predictions for the base at the training date, so the share of intervals holding "
        "0 stays the calibration's when the base ages; false: by the prediction alone.",
    )

    @field_validator("intervals_levels")
    @classmethod
    def _levels_are_probabilities(cls, value: list[float]) -> list[float]:
        bad = [v for v in value if not 0.0 < v < 1.0]
        if bad:
            raise ValueError(
                f"{bad} not strictly between 0 and 1; give coverage levels such as [0.8, 0.95]"
            )
        return sorted(set(value))


class ValueConfig(_Model):
    """Net customer value arithmetic."""

    annual_discount_rate: float = Field(0.0, ge=0, lt=1, description="Discount rate per year.")


class TargetingConfig(_Model):
    """Retention targeting (`customer-value target`): the assumptions behind a contact's return."""

    save_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Share of would-be churners one contact keeps (every persona not in save_rates).",
    )
    save_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Persona name (or id) -> save rate, e.g. {Champions: 0.3, At risk: 0.1}.",
    )
    contact_cost: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Cost of one contact (default of --contact-cost)."
    )
    budget: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Campaign budget (default of --budget)."
    )

    @field_validator("save_rates")
    @classmethod
    def _rates_are_shares(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not (0.0 <= v <= 1.0)}  # NaN fails both
        if bad:
            raise ValueError(
                "save rates are shares between 0 and 1; got "
                + ", ".join(f"{k[:40]!r}: {v}" for k, v in list(bad.items())[:5])
            )
        return value


class UpliftConfig(_Model):
    """`customer-value uplift`: who a retention contact changes, learned from a campaign log."""

    window_days: int | None = Field(
        None,
        gt=0,
        le=730,
        description="Response = a purchase day in the window after the contact day; None: "
        "features.churn_window_days, so the learned effect is an effect on the churn label.",
    )
    learner: Literal["x", "two_model"] = Field(
        "x", description="X-learner (Künzel et al. 2019) or two separate outcome models."
    )
    holdout_share: float = Field(
        0.3, gt=0, lt=1, description="Share of the campaign held out to score the model (Qini)."
    )
    top_shares: list[float] = Field(
        default_factory=lambda: [0.1, 0.2, 0.3],
        description="uplift@k is reported for these shares of the held-out customers.",
    )
    max_campaign_dates: int = Field(
        12,
        gt=0,
        le=366,
        description="Features are built once per contact day: the most recent this many days with "
        "a finished response window are used (a daily send over years would otherwise take hours).",
    )
    n_estimators: int = Field(300, gt=0, le=5000)
    max_depth: int = Field(3, gt=0, le=12)
    learning_rate: float = Field(0.05, gt=0, le=1)

    @field_validator("top_shares")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if not value or not all(0 < v <= 1 for v in value) or len(value) > 20:
            raise ValueError("top_shares: 1 to 20 shares, each above 0 and at most 1")
        return value


class MonitoringConfig(_Model):
    """`customer-value monitor`: when the latest scoring has drifted from the training snapshot."""

    psi_threshold: float = Field(
        0.25, gt=0, allow_inf_nan=False, description="A feature drifts at this PSI (0.25: major)."
    )
    ks_threshold: float = Field(
        0.15, gt=0, le=1, allow_inf_nan=False, description="... or at this KS statistic D."
    )
    prediction_psi_threshold: float = Field(
        0.25, gt=0, allow_inf_nan=False, description="A prediction column drifts at this PSI."
    )
    max_drifted_features: int = Field(
        0, ge=0, description="Alert (exit 3) when more features than this drift."
    )
    bins: int = Field(10, ge=2, le=100, description="Quantile bins of the PSI.")


class ExplainConfig(_Model):
    """SHAP explanations."""

    sample_size: int = Field(2000, ge=50, le=1_000_000, description="Customers in the SHAP plots.")
    top_drivers: int = Field(10, ge=1)


class PredictConfig(_Model):
    """Batch scoring."""

    chunk_size: int = Field(100_000, ge=100, description="Customers scored per chunk.")
    reasons: Literal["exact", "approx", "hybrid", "none"] = Field(
        "exact",
        description="Reason codes from exact TreeSHAP, xgboost's approximate contributions (much "
        "faster; see the benchmark for the agreement), hybrid (exact for the exact_share of "
        "customers with the most value at risk, approximate for the rest), or none.",
    )
    exact_share: float = Field(0.1, gt=0, le=1, description="Share with exact reasons in hybrid.")


class TrackingConfig(_Model):
    """MLflow: tracking store, artifacts, registry."""

    uri: str | None = Field(None, description="Any MLflow tracking URI; None = SQLite at db_path.")
    db_path: Path = Path("../mlflow.db")
    artifact_dir: Path = Path("../mlartifacts")
    report_path: Path = Field(
        Path("../reports/latest_run_report.html"),
        description="Local copy of the last training run's HTML report (also an MLflow artifact).",
    )
    experiment: str | None = Field(None, description="Experiment name; None = project.name.")
    model_prefix: str = Field(
        "customer-value",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Registered models are <prefix>-churn, <prefix>-clv, <prefix>-personas.",
    )
    register_models: bool = Field(True, description="Register the models and manage the champion alias.")
    ui_host: str = Field(
        "127.0.0.1", description="Interface `customer-value ui` binds; loopback unless you ask."
    )
    ui_port: int = Field(5000, ge=1, le=65535, description="Port of `customer-value ui`.")

    _experiment_is_safe = field_validator("experiment")(_safe_name)

    @field_validator("db_path", "artifact_dir")
    @classmethod
    def _no_url_characters(cls, value: Path) -> Path:
        # Both paths become URLs (sqlite:///<db_path>, file://<artifact_dir>): "%" is decoded
        # once more by MLflow when models are loaded back, "?" starts a query, "#" a fragment.
        bad = sorted({ch for ch in str(value) if ch in "%?#"})
        if bad:
            raise ValueError(
                f"the path {str(value)!r} contains {' '.join(bad)}, which MLflow reads as URL syntax; "
                "choose a folder name without % ? #"
            )
        return value

    @field_validator("uri")
    @classmethod
    def _uri_is_a_uri(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty; remove it to use the local SQLite store at tracking.db_path")
        return value

    @property
    def tracking_uri(self) -> str:
        """The URI MLflow is pointed at."""
        return self.uri or f"sqlite:///{Path(self.db_path).resolve()}"


class SparkConfig(_Model):
    """Apache Spark settings for ``engine: spark``."""

    master: str = Field("local[2]", description="Spark master URL (local[*], yarn, spark://...).")
    buckets: int = Field(16, ge=1, description="Customer hash buckets for the per-customer features.")
    app_name: str = "customer-value"
    driver_memory: str = Field("4g", description="spark.driver.memory (set before the JVM starts).")


class Config(_Model):
    """The whole configuration."""

    engine: Literal["pandas", "spark"] = Field(
        "pandas", description="pandas on one machine, or Spark for features and batch scoring."
    )
    spark: SparkConfig = Field(default_factory=SparkConfig)

    project: ProjectConfig = Field(default_factory=ProjectConfig)
    data: DataConfig
    simulation: SimulationConfig | None = None
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    personas: PersonaConfig = Field(default_factory=PersonaConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    clv: CLVConfig = Field(default_factory=CLVConfig)
    value: ValueConfig = Field(default_factory=ValueConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    targeting: TargetingConfig = Field(default_factory=TargetingConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    uplift: UpliftConfig = Field(default_factory=UpliftConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    source_path: Path | None = Field(None, description="The YAML file this config came from.")


# --------------------------------------------------------------------------------------------------
# Loading


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(
            f"override '{item}' is not of the form dotted.key=value",
            where="--set",
            hint="e.g. --set simulation.n_customers=5000",
        )
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override '{item}' has an empty key", where="--set")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _is_path_key(parts[-1]):
        value = str(Path(value).expanduser().resolve()) if value else value
    return parts, value


def _is_path_key(key: str) -> bool:
    return key == "path" or key.endswith("_path") or key.endswith("_dir") or key == "dir"


def _set_dotted(tree: dict, parts: list[str], value: Any) -> None:
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                f"cannot set '{'.'.join(parts)}': '{'.'.join(parts[: i + 1])}' is not a section",
                where="--set",
            )
        node = child
    node[parts[-1]] = value


def _resolve_paths(tree: Any, base: Path) -> Any:
    """Make relative path values in a YAML tree absolute against ``base`` (the file's folder)."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            if isinstance(value, str) and _is_path_key(str(key)):
                p = Path(value).expanduser()
                out[key] = str(p if p.is_absolute() else (base / p).resolve())
            else:
                out[key] = _resolve_paths(value, base)
        return out
    if isinstance(tree, list):
        return [_resolve_paths(v, base) for v in tree]
    return tree


def _model_at(loc: tuple, root: type[BaseModel] = Config) -> type[BaseModel] | None:
    """Follow an error location through the model classes to the section it points into."""
    model: Any = root
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _format_validation_error(err: ValidationError, origin: str) -> ConfigError:
    lines = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        dotted = ".".join(loc)
        if e["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            valid = sorted(parent.model_fields) if parent else []
            valid = [v for v in valid if v != "source_path"]
            close = difflib.get_close_matches(loc[-1], valid, n=1)
            msg = f"unknown key '{dotted}'"
            if close:
                msg += f" (did you mean '{'.'.join(loc[:-1] + (close[0],))}'?)"
            if valid:
                msg += f"; valid keys here: {', '.join(valid)}"
            lines.append(msg)
        elif e["type"] == "missing":
            lines.append(f"missing required key '{dotted}'")
        else:
            shown = e.get("input")
            shown = f" (got {shown!r})" if not isinstance(shown, dict | list) else ""
            lines.append(f"'{dotted or '<root>'}': {e['msg']}{shown}")
    return ConfigError(
        "invalid configuration:\n  - " + "\n  - ".join(lines),
        where=origin,
        hint="fix the key(s) above in the YAML file or the --set override",
    )


MAX_CONFIG_BYTES = 1_000_000  # a config is a page of settings; anything larger is a mistake
MAX_YAML_NODES = 100_000  # after expanding aliases: bounds "billion laughs" before objects exist


class _ConfigYamlError(yaml.YAMLError):
    """A YAML document that parses but must not be used (duplicate key, alias bomb)."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys.

    YAML says a repeated key is an error; PyYAML keeps the last one silently, which drops a whole
    section when a section header is repeated.
    """

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults" then overriding a key is normal YAML
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: let PyYAML report it
                break
            if first is not key_node.start_mark:
                raise _ConfigYamlError(
                    f"duplicate key '{key}' (first at line {first.line + 1}); the first would be "
                    "silently replaced",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse documents whose aliases expand past :data:`MAX_YAML_NODES` or refer to themselves.

    The size of each distinct node once expanded is computed bottom-up with memoisation, so the
    check costs one visit per node as written, however large the expansion would be.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_YAML_NODES:
                raise _ConfigYamlError(
                    f"aliases expand to more than {MAX_YAML_NODES:,} values", node.start_mark
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise _ConfigYamlError("an alias refers to the node that contains it", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack += [(c, False) for c in children if id(c) not in size]


def load_yaml(text: str):
    """Parse one YAML document safely: no Python objects, no duplicate keys, bounded aliases.

    Parameters
    ----------
    text : str
        The document.

    Returns
    -------
    object
        Plain data (mappings, lists, text, numbers, booleans, None).

    Raises
    ------
    yaml.YAMLError
        Not YAML, a tag that would construct an object, a duplicate key, or aliases that expand
        past :data:`MAX_YAML_NODES` values or refer to themselves.
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, path: Path) -> ConfigError:
    """A YAML error as 'line L, column C: problem', without PyYAML's '<unicode string>' noise."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        # An unclosed quote or bracket is reported where the file ends; say where it began.
        problem += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    if isinstance(exc, _ConfigYamlError):
        hint = "write each key once per section; use aliases (*name) only for small shared values"
    elif isinstance(exc, yaml.constructor.ConstructorError):
        # e.g. !!python/object/apply:os.system: safe_load refuses it and nothing is executed.
        hint = "config files are plain YAML: remove the tag (values are text, numbers, lists, mappings)"
    else:
        hint = "fix the YAML syntax at that line (indentation, a missing ':' or an unclosed quote)"
    return ConfigError(f"not valid YAML: {where}{problem}", where=str(path), hint=hint)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load, override and validate a YAML config.

    Parameters
    ----------
    path : str or Path
        YAML file. Relative paths inside it resolve against its folder.
    overrides : list of str, optional
        ``dotted.key=value`` items; values are parsed as YAML (``5000`` is an int).

    Returns
    -------
    Config
        The validated configuration.

    Raises
    ------
    ConfigError
        The file is missing or not YAML, or a key is unknown or has a bad value.

    Examples
    --------
    >>> cfg = load_config("configs/default.yaml", ["simulation.n_customers=500"])  # doctest: +SKIP
    >>> cfg.simulation.n_customers  # doctest: +SKIP
    500
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            "the config path is a folder, not a file",
            where=str(path),
            hint="pass --config with a YAML file, e.g. configs/default.yaml",
        )
    if not path.is_file():
        raise ConfigError(
            "config file not found",
            where=str(path),
            hint="pass --config with a YAML file, e.g. configs/default.yaml",
        )
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the config file is {size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,}",
            where=str(path),
            hint="pass the YAML settings file, not a data file",
        )
    try:
        # Config files never construct Python objects, repeat keys or expand unbounded aliases.
        tree = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not valid YAML: bytes that are not UTF-8 at byte {exc.start}",
            where=str(path),
            hint="save the config file as UTF-8",
        ) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, path) from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(
            "the top level must be a mapping of sections",
            where=str(path),
            hint="start the file with sections such as 'data:' (see configs/default.yaml)",
        )
    tree = _resolve_paths(tree, path.resolve().parent)
    for item in overrides or []:
        parts, value = _parse_override(item)
        _set_dotted(tree, parts, value)
    tree["source_path"] = str(path.resolve())
    try:
        config = Config.model_validate(tree)
    except ValidationError as err:
        raise _format_validation_error(err, str(path)) from None
    _absolutize_defaults(config, path.resolve().parent)
    return config


def _absolutize_defaults(model: BaseModel, base: Path) -> None:
    """Default relative paths (never written in the file) also resolve against its folder."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            setattr(model, name, (base / value).resolve())
        elif isinstance(value, BaseModel):
            _absolutize_defaults(value, base)
