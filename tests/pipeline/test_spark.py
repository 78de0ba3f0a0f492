"""Spark local mode: features and spark_udf scoring agree with the pandas engine."""

import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install -e '.[spark]')")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17+, which is not on this machine", allow_module_level=True)

from customer_value.chain import prediction_schema  # noqa: E402
from customer_value.engines import spark as cvs  # noqa: E402
from customer_value.features.build import build_features  # noqa: E402
from customer_value.pipelines.data import load_data  # noqa: E402
from customer_value.pipelines.predict import run_predict  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    session = cvs.session("local[2]")
    yield session
    session.stop()


def test_features_agree_with_pandas_on_every_customer_and_column(trained_store, spark):
    cfg, _, _ = trained_store
    tables = load_data(cfg).data
    expected = build_features(tables, "2024-03-31", cfg.features)
    sdf, _, vocab = cvs.build_features_spark(
        spark, cvs.read_tables(spark, cfg), "2024-03-31", cfg.features, buckets=4
    )
    got = cvs.spark_features_to_pandas(sdf)
    assert list(got.index) == list(expected.index)
    assert list(got.columns) == list(expected.columns)
    num = [c for c in expected.columns if c != "nps_class"]
    pd.testing.assert_frame_equal(got[num], expected[num], check_dtype=False, rtol=1e-7, atol=1e-9)
    assert (got["nps_class"].fillna("") == expected["nps_class"].fillna("")).all()


def test_spark_engine_predictions_equal_predict(trained_store, spark, tmp_path):
    """The Spark engine (features on Spark, spark_udf scoring, validated staged publish) = pandas."""
    cfg, _, _ = trained_store
    ours = run_predict(cfg, None, "champion", str(tmp_path / "p.parquet"), progress_bar=False)[0]
    on_spark = cfg.model_copy(deep=True)
    on_spark.engine = "spark"
    on_spark.spark.buckets = 4
    out = tmp_path / "s.parquet"
    head, rows, _ = run_predict(on_spark, None, "champion", str(out), progress_bar=False)
    assert rows == len(ours) and head["retention_rank"].tolist() == [1, 2, 3, 4, 5]
    scored = pd.read_parquet(out)
    assert list(scored.columns) == prediction_schema().names
    scored = scored.sort_values("customer_id").reset_index(drop=True)
    assert scored["customer_id"].tolist() == ours["customer_id"].tolist()
    for col in ("churn_probability", "predicted_clv", "net_value", "value_at_risk"):
        assert np.allclose(scored[col], ours[col], rtol=1e-9, atol=1e-9), col
    assert (scored["retention_rank"] == ours["retention_rank"]).all()
    assert (scored["persona"] == ours["persona"]).all()
    # The persona migration_days earlier: built and labelled on Spark, equal to pandas'.
    assert ours["previous_persona_id"].notna().any()
    pd.testing.assert_series_equal(
        scored["previous_persona_id"].astype("Int64"), ours["previous_persona_id"].astype("Int64")
    )
    assert scored["previous_persona"].fillna("-").equals(ours["previous_persona"].fillna("-"))
    assert (scored["churn_driver_1_reason"] == ours["churn_driver_1_reason"]).all()
    # A second publish to the same folder replaces it whole (staged, then swapped in).
    run_predict(on_spark, None, "champion", str(out), progress_bar=False)
    assert len(pd.read_parquet(out)) == len(ours)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".s.parquet")) == []


def test_training_on_spark_built_snapshots_matches_pandas(trained_store, spark, tmp_path):
    from customer_value.pipelines.train import run_train

    cfg, first, _ = trained_store
    on_spark = cfg.model_copy(deep=True)
    on_spark.engine = "spark"
    on_spark.spark.buckets = 4
    on_spark.tracking.db_path = tmp_path / "mlflow.db"
    on_spark.tracking.artifact_dir = tmp_path / "artifacts"
    res = run_train(on_spark, say=lambda _m: None)
    a = first.metrics.set_index(["task", "model", "metric"])["value"]
    b = res.metrics.set_index(["task", "model", "metric"])["value"]
    assert np.allclose(a.loc[b.index], b, rtol=1e-6, atol=1e-9, equal_nan=True)
    # The base at the training date (the intervals' reference) is built on Spark the same way.
    ref = [np.concatenate(r.models["clv"].intervals.reference_) for r in (first, res)]
    np.testing.assert_allclose(ref[1], ref[0], rtol=1e-6, atol=1e-9)
