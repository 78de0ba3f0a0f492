"""The same jobs on Apache Spark: sources read by Spark, features computed on the cluster.

Design (no second implementation that drifts): customers are hashed into buckets and each bucket's
rows go through the pandas feature code (``applyInPandas``), which is exact because every feature
family except two is a function of one customer's own events. The two exceptions are computed
globally: referrals (the referred customers live in other buckets) with a Spark join, and BG/NBD +
Gamma-Gamma, whose four and three parameters are fitted on the driver from the per-customer RFM
summary (aggregated to unique (x, t_x, T) rows in Spark first) and broadcast back. The category and
channel vocabulary is also global (a Spark aggregation) or taken from the trained models.

Scoring goes through the registered pyfunc chain with ``mlflow.pyfunc.spark_udf`` on the feature
rows, so Spark and ``customer-value predict`` give the same predictions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import numpy as np
import pandas as pd

from customer_value import tracking
from customer_value.config import Config, FeatureConfig, SourceConfig, SparkConfig, TrackingConfig
from customer_value.engines.base import Loaded
from customer_value.errors import UserError
from customer_value.features.btyd import BTYDModels, btyd_features, fit_btyd
from customer_value.features.build import LabelWindow, Vocabulary, build_feature_set
from customer_value.validate import ValidatedData

__all__ = [
    "SparkEngine",
    "session",
    "read_source",
    "read_tables",
    "build_features_spark",
    "top_values_spark",
]

BTYD_COLUMNS = (
    "p_alive",
    "bgnbd_p_no_purchase",
    "bgnbd_expected_transactions",
    "gg_expected_order_value",
    "btyd_expected_spend",
)


def session(master: str = "local[2]", app_name: str = "customer-value", driver_memory: str = "4g"):
    """A Spark session whose Python workers use this interpreter (the project's venv)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserError("engine 'spark' needs pyspark", hint="pip install -e '.[spark]'") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_source(spark, source: SourceConfig, table: str):
    """Read one source with Spark and map it onto the contract (renames, derived columns, returns).

    ``source.path`` may be a csv/parquet file or folder, or ``table:<name>`` for a catalog table.
    """
    from pyspark.sql import functions as F

    path = str(source.path)
    name = os.path.basename(path)
    if name.startswith("table:"):
        sdf = spark.table(name[len("table:") :])
    elif path.lower().endswith((".parquet", ".pq")) or source.format == "parquet":
        sdf = spark.read.parquet(path)
    else:
        sdf = (
            spark.read.option("header", str(source.header).lower())
            .option("sep", source.delimiter)
            .option("encoding", source.encoding)
            .csv(path)
        )
        if source.names:
            sdf = sdf.toDF(*source.names)
    for new, expr in source.derive.items():
        sdf = sdf.withColumn(new, F.expr(expr).cast("double"))
    for old, new in source.columns.items():
        sdf = sdf.withColumnRenamed(old, new)
    if source.cancellation is not None:
        sdf = sdf.withColumn(
            "is_return", F.col(source.cancellation.column).startswith(source.cancellation.prefix)
        )
    return sdf


def _typed_transactions(sdf, date_format: str | None):
    from pyspark.sql import functions as F

    ts = F.to_timestamp("timestamp", date_format) if date_format else F.to_timestamp("timestamp")
    out = (
        sdf.withColumn(
            "customer_id",
            F.regexp_replace(F.trim(F.col("customer_id").cast("string")), r"^(\d+)\.0+$", "$1"),
        )
        .withColumn("timestamp", ts)
        .withColumn("amount", F.col("amount").cast("double"))
    )
    for col in ("quantity", "cost", "discount"):
        if col in sdf.columns:
            out = out.withColumn(col, F.col(col).cast("double"))
    if "is_return" not in sdf.columns:
        out = out.withColumn("is_return", F.lit(False))
    out = out.withColumn("is_return", F.col("is_return") | (F.col("amount") < 0))
    return out.filter(F.col("customer_id").isNotNull() & (F.col("amount") != 0))


def read_tables(spark, config: Config) -> dict:
    """Spark DataFrames of the configured tables, typed like the validated pandas frames.

    The Spark path applies the policies that matter at scale (missing customer ids and zero
    amounts dropped, negative amounts as returns); run ``customer-value validate`` on a sample for
    the full report.
    """
    dc = config.data
    tables = {
        "transactions": _typed_transactions(
            read_source(spark, dc.transactions, "transactions"), dc.transactions.date_format
        )
    }
    if dc.customers is not None:
        tables["customers"] = read_source(spark, dc.customers, "customers")
    if dc.interactions is not None:
        tables["interactions"] = read_source(spark, dc.interactions, "interactions")
    return tables


def top_values_spark(tx, column: str, k: int) -> list[str]:
    """The ``k`` values with the largest sales amount (ties by name), as the pandas engine does."""
    from pyspark.sql import functions as F

    if k == 0 or column not in tx.columns:
        return []
    totals = (
        tx.filter(F.col("amount") > 0)
        .groupBy(F.col(column).cast("string").alias("v"))
        .agg(F.sum("amount").alias("total"))
        .filter(F.col("v").isNotNull())
        .orderBy(F.desc("total"), F.asc("v"))
        .limit(k)
        .toPandas()
    )
    return totals["v"].tolist()


def build_features_spark(
    spark,
    tables: dict,
    as_of,
    config: FeatureConfig,
    vocabulary: Vocabulary | None = None,
    buckets: int = 16,
):
    """The feature table at ``as_of`` as a Spark DataFrame (one row per customer).

    Equal to :func:`customer_value.features.build.build_features` on the same data (tested).
    """
    from pyspark.sql import functions as F

    as_of = pd.Timestamp(as_of).normalize()
    upto = F.lit((as_of + pd.Timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp")
    tx = tables["transactions"].filter(F.col("timestamp") < upto)
    if vocabulary is None:
        vocabulary = Vocabulary(
            tuple(top_values_spark(tx, "category", config.top_categories)),
            tuple(top_values_spark(tx, "channel", config.top_channels)),
        )
    cust = tables.get("customers")
    inter = tables.get("interactions")
    if inter is not None:
        inter = inter.withColumn("timestamp", F.to_timestamp("timestamp")).filter(
            F.col("timestamp") < upto
        )

    bucket = lambda df: df.withColumn("_bucket", F.pmod(F.xxhash64("customer_id"), F.lit(buckets)))  # noqa: E731
    parts = [bucket(tx).withColumn("_table", F.lit("tx"))]
    if cust is not None:
        parts.append(
            bucket(cust.withColumn("customer_id", F.col("customer_id").cast("string"))).withColumn(
                "_table", F.lit("cust")
            )
        )
    if inter is not None:
        parts.append(bucket(inter).withColumn("_table", F.lit("inter")))
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p, allowMissingColumns=True)
    tx_cols = tx.columns
    cust_cols = cust.columns if cust is not None else None
    inter_cols = inter.columns if inter is not None else None

    def _local(pdf: pd.DataFrame) -> pd.DataFrame:
        t = pdf[pdf["_table"] == "tx"][tx_cols].sort_values(["customer_id", "timestamp"], kind="stable")
        t = t.reset_index(drop=True)
        # Referrals are joined globally below: no bucket-local referral credit here.
        c = (
            pdf[pdf["_table"] == "cust"][cust_cols]
            .drop(columns=["referred_by"], errors="ignore")
            .reset_index(drop=True)
            if cust_cols is not None
            else None
        )
        i = (
            pdf[pdf["_table"] == "inter"][inter_cols].reset_index(drop=True)
            if inter_cols is not None
            else None
        )
        if t.empty:
            return pd.DataFrame(columns=columns)
        fs = build_feature_set(ValidatedData(t, c, i), as_of, config, vocabulary, btyd=False)
        return fs.frame.reset_index()[columns]

    # The output schema comes from the pandas code itself, run on one bucket on the driver.
    sample = union.filter(F.col("_bucket") == 0).toPandas()
    columns = _probe_columns(sample, tx_cols, cust_cols, inter_cols, as_of, config, vocabulary)
    schema = ", ".join(
        f"`{c}` {'string' if c in ('customer_id', 'nps_class') else 'double'}" for c in columns
    )
    feats = union.groupBy("_bucket").applyInPandas(_local, schema).cache()

    # Referrals: the referred customers live in other buckets, so they are joined globally.
    if cust is not None and "referred_by" in cust.columns:
        benefit = "gross_margin_total" if "gross_margin_total" in columns else "monetary_total"
        refs = (
            cust.select(
                F.col("customer_id").cast("string").alias("referred"),
                F.regexp_replace(F.col("referred_by").cast("string"), r"^(\d+)\.0+$", "$1").alias(
                    "referrer"
                ),
            )
            .join(
                feats.select(
                    F.col("customer_id").alias("referred"),
                    F.col("monetary_total").alias("rev"),
                    F.col(benefit).alias("ben"),
                ),
                "referred",
            )
            .groupBy("referrer")
            .agg(
                F.count("*").cast("double").alias("_n"),
                F.sum("rev").alias("_rev"),
                F.sum("ben").alias("_ben"),
            )
        )
        feats = (
            feats.join(refs, feats["customer_id"] == refs["referrer"], "left")
            .withColumn("referrals_made", F.coalesce("_n", F.lit(0.0)))
            .withColumn("referred_revenue", F.coalesce("_rev", F.lit(0.0)))
            .withColumn(
                "customer_value_to_date",
                F.col("customer_value_to_date") + F.coalesce("_ben", F.lit(0.0)),
            )
            .drop("referrer", "_n", "_rev", "_ben")
        )

    # BG/NBD + Gamma-Gamma: fitted once on the driver from unique RFM rows, applied everywhere.
    rfm = (
        feats.groupBy(
            "frequency", "recency_days", "tenure_days", "purchase_days", "monetary_repeat_mean"
        )
        .count()
        .toPandas()
    )
    rfm = rfm.loc[rfm.index.repeat(rfm["count"].astype(int))].reset_index(drop=True)
    models = fit_btyd(rfm, config.btyd_penalizer)
    horizon, churn = config.horizon_days, config.churn_window_days
    btyd_schema = ", ".join(f"`{c}` double" for c in BTYD_COLUMNS)

    def _btyd(batches):
        for pdf in batches:
            b = btyd_features(pdf.set_index("customer_id"), models, horizon, churn)
            yield b[list(BTYD_COLUMNS)].reset_index()

    with_id = feats.select(*columns)
    btyd = with_id.select(
        "customer_id", "frequency", "recency_days", "tenure_days", "monetary_repeat_mean"
    ).mapInPandas(_btyd, f"customer_id string, {btyd_schema}")
    out = with_id.join(btyd, "customer_id").orderBy("customer_id")
    return out, BTYDModels(models.bgnbd, models.gamma_gamma), vocabulary


def _probe_columns(sample, tx_cols, cust_cols, inter_cols, as_of, config, vocabulary):
    """Feature column names (and order) the pandas engine produces for this data's shape."""
    t = sample[sample["_table"] == "tx"][tx_cols] if len(sample) else pd.DataFrame(columns=tx_cols)
    if t.empty:
        raise UserError(
            "the first bucket has no transactions to probe the feature schema",
            hint="use more customers or fewer spark buckets",
        )
    t = t.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    c = (
        sample[sample["_table"] == "cust"][cust_cols].drop(columns=["referred_by"], errors="ignore")
        if cust_cols is not None
        else None
    )
    i = sample[sample["_table"] == "inter"][inter_cols] if inter_cols is not None else None
    fs = build_feature_set(ValidatedData(t, c, i), as_of, config, vocabulary, btyd=False)
    return ["customer_id", *fs.frame.columns]


def spark_features_to_pandas(sdf) -> pd.DataFrame:
    """Collect a Spark feature table to the driver, indexed by customer_id like the pandas one."""
    pdf = sdf.toPandas().set_index("customer_id")
    pdf.index = pdf.index.astype(str)
    return pdf


PREVIOUS = ("previous_persona_id", "previous_persona")


def previous_personas_spark(spark, tables, chain, scored, as_of, days: int, buckets: int):
    """``scored`` with each customer's persona ``days`` before ``as_of`` (like pandas' predict).

    Features at the earlier date are built on Spark and labelled by the chain's persona model in
    ``mapInPandas`` (only the persona model: the earlier date needs no churn, CLV or reasons).
    """
    from pyspark.sql import functions as F

    task = next((t for t in chain.tasks if "previous_persona" in {c.name for c in t.outputs}), None)
    if task is None:
        return scored
    before = pd.Timestamp(as_of).normalize() - pd.Timedelta(days=days)
    first = tables["transactions"].agg(F.min("timestamp")).first()[0]
    if first is None or before < pd.Timestamp(first).normalize():
        return scored.withColumn("previous_persona_id", F.lit(None).cast("long")).withColumn(
            "previous_persona", F.lit(None).cast("string")
        )
    feats, _, _ = build_features_spark(
        spark, tables, before, chain.spec.features, chain.spec.vocabulary, buckets=buckets
    )
    model = chain.models[task.name]
    cols = list(model.features_)

    def label(batches):
        for pdf in batches:
            labels = model.predict(pdf[cols])
            yield pd.DataFrame(
                {
                    "customer_id": pdf["customer_id"].astype(str),
                    "previous_persona_id": np.asarray(model.persona_ids, dtype=np.int64)[labels],
                    "previous_persona": np.asarray(model.names_, dtype=object)[labels],
                }
            )

    ddl = "customer_id string, previous_persona_id long, previous_persona string"
    prev = feats.select("customer_id", *cols).mapInPandas(label, ddl)
    return scored.join(prev, "customer_id", "left")


def score_spark(spark, features, model_uri: str, as_of, tracking_uri: str, schema):
    """Score a Spark feature table with the registered pyfunc chain through ``spark_udf``.

    Returns a Spark DataFrame with the columns of ``schema`` (the prediction schema);
    ``retention_rank`` is recomputed over the whole base (value at risk descending, customer id
    ascending), as ``predict`` does.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    # The pyfunc scores feature rows, which have no history for the previous persona.
    udf = tracking.spark_udf(
        spark,
        model_uri,
        StructType.fromDDL(schema.spark_ddl(exclude=("as_of", *PREVIOUS))),
        tracking_uri,
    )
    date = pd.Timestamp(as_of).strftime("%Y-%m-%d")
    inp = features.withColumn("as_of", F.lit(date))
    scored = inp.select(udf(F.struct(*[F.col(c) for c in inp.columns])).alias("p")).select("p.*")
    rank = Window.orderBy(F.desc("value_at_risk"), F.asc("customer_id"))
    scored = scored.withColumn("retention_rank", F.row_number().over(rank).cast("long")).withColumn(
        "as_of", F.to_timestamp(F.lit(date))
    )
    return scored.select(*[c for c in schema.names if c not in PREVIOUS])


def labels_spark(
    tx, customer_ids: pd.Index, cutoff, horizon_days: int, churn_window_days: int, has_cost: bool
) -> pd.DataFrame:
    """The labels of :func:`customer_value.features.labels.build_labels`, aggregated in Spark.

    Only one row per customer comes back to the driver.
    """
    from pyspark.sql import functions as F

    c = pd.Timestamp(cutoff).normalize()
    last = max(horizon_days, churn_window_days)
    day = F.to_date("timestamp")
    start, end = F.lit(c.date()), F.lit((c + pd.Timedelta(days=last)).date())
    w = tx.filter((day > start) & (day <= end)).withColumn("_d", F.datediff(day, start))
    aggs = [F.sum("amount").alias("net")]
    if has_cost:
        aggs.append(F.sum(F.col("amount") - F.coalesce(F.col("cost"), F.lit(0.0))).alias("margin"))
    daily = w.groupBy("customer_id", "_d").agg(*aggs).filter(F.col("net") > 0)
    in_h = F.col("_d") <= horizon_days
    per = [
        F.sum(F.when(F.col("_d") <= churn_window_days, 1).otherwise(0)).alias("_pc"),
        F.sum(F.when(in_h, F.col("net")).otherwise(0.0)).alias("future_revenue"),
        F.sum(F.when(in_h, 1).otherwise(0)).cast("double").alias("future_transactions"),
    ]
    if has_cost:
        per.append(F.sum(F.when(in_h, F.col("margin")).otherwise(0.0)).alias("future_margin"))
    got = daily.groupBy("customer_id").agg(*per).toPandas().set_index("customer_id")
    got.index = got.index.astype(str)
    got = got.reindex(customer_ids)
    out = pd.DataFrame(
        {
            "churned": got["_pc"].fillna(0).to_numpy() == 0,
            "future_revenue": got["future_revenue"].fillna(0.0).to_numpy(float),
            "future_transactions": got["future_transactions"].fillna(0.0).to_numpy(float),
        },
        index=customer_ids,
    )
    if has_cost:
        out["future_margin"] = got["future_margin"].fillna(0.0).to_numpy(float)
    return out


def build_training_set_spark(
    spark, tables: dict, as_of, config: Config, labels: Mapping[str, LabelWindow], buckets: int = 16
):
    """:func:`customer_value.features.build.build_training_set` with features and labels on Spark.

    The customer-level snapshots (one row per customer and cutoff, about 80 numbers each) are
    collected to the driver for xgboost: ~0.7 KB a row, so 10 million customer-snapshots need
    ~7 GB on the driver. Beyond that, train on a sample of customers or with ``xgboost.spark``.
    """
    from pyspark.sql import functions as F

    from customer_value.features.build import plan_tasks, stack_snapshots

    as_of = pd.Timestamp(as_of).normalize()
    upto = F.lit((as_of + pd.Timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp")
    tx = tables["transactions"].filter(F.col("timestamp") < upto).cache()
    cut = dict(tables, transactions=tx)
    if "interactions" in tables:
        cut["interactions"] = (
            tables["interactions"]
            .withColumn("timestamp", F.to_timestamp("timestamp"))
            .filter(F.col("timestamp") < upto)
        )
    first = pd.Timestamp(tx.agg(F.min("timestamp")).collect()[0][0])
    plans = plan_tasks(first, as_of, labels, config.snapshots)
    earliest = min(min(p.train_cutoffs) for p in plans.values())
    early = tx.filter(F.to_date("timestamp") <= F.lit(earliest.date()))
    vocab = Vocabulary(
        tuple(top_values_spark(early, "category", config.features.top_categories)),
        tuple(top_values_spark(early, "channel", config.features.top_channels)),
    )
    has_cost = "cost" in tx.columns

    def features_at(cutoff):
        sdf, models, _ = build_features_spark(spark, cut, cutoff, config.features, vocab, buckets)
        return spark_features_to_pandas(sdf), models

    def labels_at(index, cutoff, days):
        return labels_spark(tx, index, cutoff, days, days, has_cost)

    daily = (
        tx.groupBy(F.to_date("timestamp").alias("day")).agg(F.sum("amount").alias("amount")).toPandas()
    )
    daily = daily.set_index(pd.to_datetime(daily["day"]))["amount"].sort_index()
    result = stack_snapshots(plans, features_at, labels_at, vocab, labels, daily, as_of)
    tx.unpersist()
    return result


def describe(tx) -> tuple[pd.DataFrame, dict, dict, pd.Timestamp]:
    """Row counts, facts, a data fingerprint and the last date of a Spark transactions table."""
    from pyspark.sql import functions as F

    row = tx.agg(
        F.count("*").alias("rows"),
        F.countDistinct("customer_id").alias("customers"),
        F.min("timestamp").alias("first"),
        F.max("timestamp").alias("last"),
        F.sum("amount").alias("revenue"),
        F.sum(F.xxhash64(*tx.columns).cast("decimal(38,0)")).alias("hash"),
    ).collect()[0]
    report = pd.DataFrame(
        [{"table": "transactions", "rule": "read (spark)", "action": "kept", "rows": int(row["rows"])}]
    )
    facts = {
        "summary": {
            "customers": int(row["customers"]),
            "transactions": int(row["rows"]),
            "first_date": str(pd.Timestamp(row["first"]).date()),
            "last_date": str(pd.Timestamp(row["last"]).date()),
            "revenue": round(float(row["revenue"]), 2),
        }
    }
    fingerprint = {
        "data.rows": str(row["rows"]),
        "data.customers": str(row["customers"]),
        "data.first_date": facts["summary"]["first_date"],
        "data.last_date": facts["summary"]["last_date"],
        "data.xxhash64_sum": str(row["hash"]),
    }
    return report, facts, fingerprint, pd.Timestamp(row["last"])


def max_date(tx) -> pd.Timestamp:
    """The last transaction date of a Spark table."""
    from pyspark.sql import functions as F

    return pd.Timestamp(tx.agg(F.max("timestamp")).collect()[0][0])


class SparkEngine:
    """Sources read by Spark, features on the cluster, scoring through ``spark_udf``.

    Predictions are scored by the registered pyfunc chain (``<prefix>-pipeline@alias``) and
    published with :func:`customer_value.engines.sinks.publish_spark` (validated, staged, swapped).
    """

    name = "spark"

    def __init__(self, spark: SparkConfig, tracking_config: TrackingConfig):
        self.spark = spark
        self.tracking = tracking_config

    def _session(self):
        return session(self.spark.master, self.spark.app_name, self.spark.driver_memory)

    def load(self, config: Config, summary: bool = True) -> Loaded:
        tables = read_tables(self._session(), config)
        if not summary:  # scoring needs the last date only, not a scan that hashes every row
            return Loaded(tables, pd.DataFrame(), {}, {}, max_date(tables["transactions"]))
        report, facts, fingerprint, last = describe(tables["transactions"])
        return Loaded(tables, report, facts, fingerprint, last)

    def training_set(self, loaded: Loaded, as_of, config: Config, labels: Mapping[str, LabelWindow]):
        return build_training_set_spark(
            self._session(), loaded.tables, as_of, config, labels, self.spark.buckets
        )

    def score(self, loaded: Loaded, chain, when, config: Config, progress=None, alias="champion"):
        spark = self._session()
        feats, _, _ = build_features_spark(
            spark,
            loaded.tables,
            when,
            chain.spec.features,
            chain.spec.vocabulary,
            buckets=self.spark.buckets,
        )
        uri = f"models:/{tracking.model_names(self.tracking.model_prefix)[tracking.PIPELINE]}@{alias}"
        scored = score_spark(spark, feats, uri, when, self.tracking.tracking_uri, chain.schema)
        days = config.personas.migration_days
        scored = previous_personas_spark(
            spark, loaded.tables, chain, scored, when, days, self.spark.buckets
        )
        return scored.select(*chain.schema.names)

    def publish(self, scored, sink, schema):
        from customer_value.engines.sinks import FileSink, publish_spark

        spark = self._session()
        where = publish_spark(scored, sink, schema, spark)
        written = (
            spark.read.parquet(str(sink.path)) if isinstance(sink, FileSink) else spark.table(sink.name)
        )
        head = written.orderBy("retention_rank").limit(5).toPandas()
        return head, written.count(), where
