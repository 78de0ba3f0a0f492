"""Batch predictions for the whole base from the registered models, with reasons.

``score`` is the pure part (feature rows + fitted models -> one row per customer); ``run_predict``
adds the edges: loading models by alias from the configured registry, building features at
``as_of``, validating the output, and publishing it atomically (a file renamed into place, or one
database transaction that replaces that ``as_of``'s rows).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value import explain, io, tracking
from customer_value.config import Config
from customer_value.errors import UserError
from customer_value.features.btyd import BTYDModels
from customer_value.features.build import (
    Vocabulary,
    build_feature_set,
    check_feature_ranges,
    projection_ratio,
)
from customer_value.modeling.value import customer_value
from customer_value.pipelines.data import load_data
from customer_value.pipelines.features import parse_as_of
from customer_value.validate import ValidatedData

__all__ = [
    "ChampionModels",
    "PREDICTION_COLUMNS",
    "load_models",
    "score",
    "score_tables",
    "score_pyfunc",
    "validate_predictions",
    "run_predict",
    "write_predictions",
]

DRIVERS = 3
PREDICTION_COLUMNS = [
    "customer_id",
    "as_of",
    "persona",
    "churn_probability",
    "expected_transactions",
    "predicted_clv",
    "p_alive",
    "net_value",
    "value_at_risk",
    "retention_rank",
    *[
        f"{task}_driver_{i}_{part}"
        for task in ("churn", "clv")
        for i in range(1, DRIVERS + 1)
        for part in ("feature", "value", "shap", "reason")
    ],
    "churn_model_version",
    "clv_model_version",
    "persona_model_version",
    "churn_run_id",
    "clv_run_id",
    "persona_run_id",
]


@dataclass
class ChampionModels:
    """The three fitted models with their registry versions and training run ids."""

    churn: object
    clv: object
    personas: object
    versions: dict[str, str]
    run_ids: dict[str, str]

    @property
    def meta(self) -> dict:
        """Scoring metadata saved with the CLV model at training time."""
        return getattr(self.clv, "meta_", {})


def load_models(config: Config, alias: str = "champion") -> ChampionModels:
    """Load ``<prefix>-{churn,clv,personas}@alias`` from the configured registry only."""
    # Read only: the registry does not need the experiment, and predict must not create it.
    tracking.setup(config.tracking, config.tracking.experiment or config.project.name, create=False)
    names = tracking.model_names(config.tracking.model_prefix)
    names.pop("pipeline")
    models, versions, runs = {}, {}, {}
    for kind, name in names.items():
        mv = tracking.champion(name, alias)
        if mv is None:
            raise UserError(
                f"no registered model '{name}' with alias '{alias}'",
                where=f"tracking store {tracking.redact(config.tracking.tracking_uri)}",
                hint="run `make train` (or `customer-value train --config ...`) first, or pass an "
                "alias that exists (champion, challenger)",
            )
        models[kind] = tracking.load_model(name, alias)
        versions[kind], runs[kind] = str(mv.version), str(mv.run_id)
    return ChampionModels(models["churn"], models["clv"], models["personas"], versions, runs)


def _check_signature(features: pd.DataFrame, models: ChampionModels) -> None:
    needed = set(models.churn.features_) | set(models.clv.features_) | set(models.personas.features_)
    missing = sorted(needed - set(features.columns))
    if missing:
        raise UserError(
            f"the features built from this data lack {len(missing)} column(s) the models were "
            f"trained on: {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else ""),
            hint="score data of the same shape as the training data (same optional columns and "
            "tables), or retrain on this data",
        )


def score(
    features: pd.DataFrame,
    models: ChampionModels,
    as_of,
    config: Config,
    btyd: BTYDModels | None = None,
    reasons: str | None = None,
    chunk_size: int | None = None,
    progress: Callable | None = None,
) -> pd.DataFrame:
    """One row per customer of ``features`` (indexed by customer_id): predictions and reasons.

    Rows are scored in chunks of ``chunk_size`` customers, so memory grows with the chunk, not the
    base. ``progress`` (e.g. a tqdm bar's ``update``) is called with each chunk's size.
    """
    _check_signature(features, models)
    reasons = reasons or config.predict.reasons
    chunk_size = chunk_size or config.predict.chunk_size
    meta = models.meta
    horizon = int(meta.get("horizon_days", config.features.horizon_days))
    label_days = int(meta.get("label_days", horizon))
    parts = []
    for start in range(0, len(features), chunk_size):
        f = features.iloc[start : start + chunk_size]
        q = models.churn.predict_proba(f[models.churn.features_])[:, 1]
        clv = models.clv.predict(f[models.clv.features_])
        if label_days < horizon and btyd is not None:
            clv = clv * projection_ratio(btyd, f, label_days, horizon).to_numpy()
        out = pd.DataFrame(
            {
                "persona": models.personas.predict_names(f).to_numpy(),
                "churn_probability": q,
                "expected_transactions": f.get(
                    "bgnbd_expected_transactions", pd.Series(np.nan, index=f.index)
                ).to_numpy(float),
                "predicted_clv": clv,
                "p_alive": f.get("p_alive", pd.Series(np.nan, index=f.index)).to_numpy(float),
            },
            index=f.index,
        )
        value = customer_value(
            f,
            out["predicted_clv"],
            out["expected_transactions"].fillna(0.0),
            horizon,
            config.features.cost_per_ticket,
            config.value.annual_discount_rate,
            config.features.rate_floor_days,
        )
        out["net_value"] = value["net_value"]
        out["value_at_risk"] = out["churn_probability"] * out["predicted_clv"]
        parts.append(out)
    preds = pd.concat(parts) if parts else pd.DataFrame()
    if reasons != "none" and len(preds):
        # hybrid: exact TreeSHAP for the customers with the most value at risk (who get called
        # first), the fast approximation for everyone else.
        threshold = (
            preds["value_at_risk"].quantile(1 - config.predict.exact_share)
            if reasons == "hybrid"
            else None
        )
        parts = []
        for start in range(0, len(features), chunk_size):
            f = features.iloc[start : start + chunk_size]
            p = preds.iloc[start : start + chunk_size]
            chunk = [p]
            for task, model in (("churn", models.churn), ("clv", models.clv)):
                x = f[model.features_]
                if reasons == "hybrid":
                    exact = (p["value_at_risk"] >= threshold).to_numpy()
                    contrib = pd.concat(
                        [model.contributions(x[exact]), model.contributions(x[~exact], approx=True)]
                    ).loc[x.index]
                else:
                    contrib = model.contributions(x, approx=reasons == "approx")
                drivers = explain.top_drivers(contrib, f, DRIVERS)
                drivers.columns = [f"{task}_{c}" for c in drivers.columns]
                chunk.append(drivers)
            parts.append(pd.concat(chunk, axis=1))
            if progress is not None:
                progress(len(f))
    elif progress is not None:
        progress(len(preds))
    out = pd.concat(parts) if parts else preds
    # Rank 1 = the most value at risk; ties broken by customer id so re-runs are identical.
    order = out.reset_index().sort_values(
        ["value_at_risk", "customer_id"], ascending=[False, True], kind="stable"
    )
    rank = pd.Series(np.arange(1, len(out) + 1), index=order["customer_id"].to_numpy())
    out["retention_rank"] = rank.reindex(out.index).to_numpy()
    out.insert(0, "as_of", pd.Timestamp(as_of).normalize())
    for kind, attr in (("churn", "churn"), ("clv", "clv"), ("persona", "personas")):
        out[f"{kind}_model_version"] = models.versions.get(attr, "")
        out[f"{kind}_run_id"] = models.run_ids.get(attr, "")
    out = out.reset_index()
    columns = [c for c in PREDICTION_COLUMNS if c in out.columns]
    return out[columns].sort_values("customer_id", kind="stable").reset_index(drop=True)


def score_tables(
    tables: ValidatedData,
    as_of,
    models: ChampionModels,
    config: Config,
    reasons: bool = True,
    progress: Callable | None = None,
) -> pd.DataFrame:
    """Features at ``as_of`` from validated tables, then :func:`score` (the whole chain)."""
    vocab = models.meta.get("vocabulary", {})
    vocabulary = Vocabulary(tuple(vocab.get("categories", ())), tuple(vocab.get("channels", ())))
    fs = build_feature_set(tables, as_of, config.features, vocabulary)
    ranges = models.meta.get("feature_ranges")
    if ranges:
        train = pd.DataFrame(ranges, index=["min", "max"])
        cols = [c for c in models.clv.features_ if c in train.columns and c in fs.frame.columns]
        check_feature_ranges(train[cols], fs.frame, cols)
    return score(fs.frame, models, as_of, config, fs.btyd, reasons=reasons, progress=progress)


def score_pyfunc(pipeline, transactions: pd.DataFrame, as_of=None) -> pd.DataFrame:
    """What the registered pyfunc chain does.

    Transactions in the data contract are validated, turned into features and scored; feature
    rows (``customer_id`` plus the models' features, optionally ``as_of``) are scored directly.
    """
    from customer_value.config import Config
    from customer_value.validate import validate_tables

    config = Config.model_validate(pipeline.config)
    models = ChampionModels(
        pipeline.models["churn"],
        pipeline.models["clv"],
        pipeline.models["personas"],
        dict(pipeline.versions),
        {k: pipeline.run_id for k in ("churn", "clv", "personas")},
    )
    needed = set(models.churn.features_) | set(models.clv.features_) | set(models.personas.features_)
    if "amount" not in transactions.columns and needed <= set(transactions.columns):
        # Feature rows (one per customer, e.g. built on Spark and scored with spark_udf): the
        # output keeps the input's row order; retention_rank is then only within this batch.
        rows = transactions.copy()
        given = rows.pop("as_of").iloc[0] if "as_of" in rows else None
        when = pd.Timestamp(as_of if as_of is not None else given).normalize()
        rows["customer_id"] = rows["customer_id"].astype(str)
        feats = rows.set_index("customer_id")
        if models.meta.get("label_days", 0) < models.meta.get("horizon_days", 0):
            raise UserError(
                "scoring feature rows cannot project CLV from a shortened label window (the "
                "BG/NBD fit at as_of is not in the rows)",
                hint="score transactions instead, or train with a full horizon",
            )
        frame = score(feats, models, when, config)
        return frame.set_index("customer_id").loc[feats.index].reset_index()
    # The input is already in the contract's vocabulary (ISO dates): no source-specific parsing.
    config.data.transactions.date_format = None
    data, _ = validate_tables(transactions.copy(), config.data)
    when = (data.transactions["timestamp"].max() if as_of is None else pd.Timestamp(as_of)).normalize()
    frame = score_tables(data, when, models, config)
    validate_predictions(frame)
    return frame


def validate_predictions(frame: pd.DataFrame, expected_customers: int | None = None) -> None:
    """Check the output against its schema before it is published; raise on any violation."""
    problems = []
    missing = [
        c
        for c in PREDICTION_COLUMNS
        if c not in frame.columns and not re.match(r"(churn|clv)_driver_", c)
    ]
    if missing:
        problems.append(f"missing columns {missing}")
    if frame["customer_id"].duplicated().any():
        problems.append("duplicate customer ids")
    if expected_customers is not None and len(frame) != expected_customers:
        problems.append(f"{len(frame)} rows for {expected_customers} customers")
    q = frame["churn_probability"]
    if q.isna().any() or ((q < 0) | (q > 1)).any():
        problems.append("churn probabilities outside [0, 1]")
    clv = frame["predicted_clv"]
    if clv.isna().any() or (clv < 0).any():
        problems.append("negative or missing predicted CLV")
    if sorted(frame["retention_rank"]) != list(range(1, len(frame) + 1)):
        problems.append("retention ranks are not 1..n")
    if problems:
        raise UserError(
            "predictions failed their schema check: " + "; ".join(problems) + "; nothing was written",
            hint="this is a bug or a broken model; report it with the config used",
        )


def write_predictions(frame: pd.DataFrame, output: str, table: str = "predictions") -> str:
    """Publish atomically: a parquet/csv file renamed into place, or one database transaction.

    For a database URL (``sqlite:///...``, ``postgresql://...``), the rows of this ``as_of`` are
    deleted and the new ones inserted in a single transaction.
    """
    if "://" not in output:
        io.write_frame(frame, Path(output))
        return str(output)
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover - sqlalchemy comes with mlflow
        raise UserError(
            "writing to a database needs sqlalchemy", hint="pip install sqlalchemy"
        ) from None
    try:
        engine = sa.create_engine(output)
    except Exception as exc:  # unknown dialect, missing driver
        raise UserError(
            f"cannot use database URL: {type(exc).__name__}: {exc}",
            where=tracking.redact(output),
            hint="use sqlite:///path.db, or install the driver for your database",
        ) from None
    out = frame.copy()
    out["as_of"] = out["as_of"].dt.strftime("%Y-%m-%d")
    try:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table(table):
                conn.execute(
                    sa.text(f'DELETE FROM "{table}" WHERE as_of = :d'), {"d": out["as_of"].iloc[0]}
                )
            out.to_sql(table, conn, if_exists="append", index=False, chunksize=10_000)
    except sa.exc.SQLAlchemyError as exc:
        raise UserError(
            f"writing the predictions failed and was rolled back: "
            f"{tracking.redact(str(exc).splitlines()[0])}",
            where=tracking.redact(output),
        ) from None
    finally:
        engine.dispose()
    return tracking.redact(output)


def run_predict(
    config: Config,
    as_of: str | None,
    alias: str,
    output: str,
    table: str = "predictions",
    progress_bar: bool = True,
) -> tuple[pd.DataFrame, str]:
    """Load the models, build features at ``as_of``, score everyone, validate, publish."""
    if (
        "://" not in output
        and not output.startswith("table:")
        and not output.lower().endswith((".parquet", ".pq", ".csv", ".csv.gz"))
    ):
        raise UserError(
            "unsupported output",
            where=output,
            hint="use a .parquet or .csv file, or a database URL such as sqlite:///p.db",
        )
    # Preflight, before the store is opened (which would create an empty one) or data is read:
    # the output can be written, --as-of is a date, the store exists and answers.
    if "://" not in output and not output.startswith("table:"):
        io.check_writable(output, "--output", folder_ok=config.engine == "spark")
    wanted = parse_as_of(as_of)
    tracking.check_store(config.tracking, must_exist=True)
    models = load_models(config, alias)
    if config.engine == "spark":
        return _run_predict_spark(config, as_of, alias, output, models)
    tables = load_data(config).data
    when = tables.transactions["timestamp"].max().normalize() if wanted is None else wanted
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="customers", desc="scoring", leave=False)
    try:
        frame = score_tables(
            tables, when, models, config, progress=(bar.update if bar is not None else None)
        )
    finally:
        if bar is not None:
            bar.close()
    validate_predictions(frame)
    return frame, write_predictions(frame, output, table)


def _run_predict_spark(config: Config, as_of, alias: str, output: str, models: ChampionModels):
    """Spark reads the sources, builds the features and scores them through ``spark_udf``."""
    from customer_value import spark as cvs

    if "://" in output or output.lower().endswith(".csv"):
        raise UserError(
            "with engine: spark, predictions are written as parquet or a table",
            where=output,
            hint="use a path ending in .parquet, or table:<name>",
        )
    session = cvs.session(config.spark.master, config.spark.app_name, config.spark.driver_memory)
    tables = cvs.read_tables(session, config)
    when = (
        pd.Timestamp(as_of) if as_of is not None else session_max_date(tables["transactions"])
    ).normalize()
    vocab = models.meta.get("vocabulary", {})
    feats, _, _ = cvs.build_features_spark(
        session,
        tables,
        when,
        config.features,
        Vocabulary(tuple(vocab.get("categories", ())), tuple(vocab.get("channels", ()))),
        buckets=config.spark.buckets,
    )
    uri = f"models:/{tracking.model_names(config.tracking.model_prefix)['pipeline']}@{alias}"
    scored = cvs.score_spark(session, feats, uri, when, config.tracking.tracking_uri)
    if output.startswith("table:"):
        scored.write.mode("overwrite").saveAsTable(output[len("table:") :])
    else:
        scored.write.mode("overwrite").parquet(output)
    written = (
        session.read.parquet(output)
        if not output.startswith("table:")
        else session.table(output[len("table:") :])
    )
    head = written.orderBy("retention_rank").limit(5).toPandas()
    head.attrs["rows"] = written.count()
    return head, output


def session_max_date(tx) -> pd.Timestamp:
    """The last transaction date of a Spark table."""
    from pyspark.sql import functions as F

    return pd.Timestamp(tx.agg(F.max("timestamp")).collect()[0][0])
