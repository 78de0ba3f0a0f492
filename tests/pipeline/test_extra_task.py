"""A task added as one module appears in train, backtest, predict, the registry, the report, Spark."""

import shutil

import cloudpickle
import extra_task
import pandas as pd
import pytest

from customer_value import tasks, tracking
from customer_value.chain import prediction_schema
from customer_value.config import load_config
from customer_value.pipelines.backtest import run_backtest
from customer_value.pipelines.predict import run_predict
from customer_value.pipelines.train import run_train

pytestmark = pytest.mark.slow

TINY = """
project: {name: extra, seed: 3}
simulation: {n_customers: 600, output_dir: raw, truth_dir: truth}
data:
  transactions: {path: raw/transactions.parquet}
  customers: {path: raw/customers.parquet}
  interactions: {path: raw/interactions.parquet}
snapshots: {n_snapshots: 2, spacing_days: 60}
personas: {k_max: 3, silhouette_sample: 300, stability_bootstraps: 1, min_share: 0.02}
churn: {tuning: {n_trials: 1, max_estimators: 40}}
clv: {tuning: {n_trials: 1, max_estimators: 40}}
explain: {sample_size: 60}
spark: {buckets: 2, master: "local[1]", driver_memory: 1g}
tracking: {db_path: store/mlflow.db, artifact_dir: store/artifacts, report_path: out/report.html}
"""


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    root = tmp_path_factory.mktemp("extra")
    (root / "config.yaml").write_text(TINY)
    # Spark's Python workers unpickle the registered chain: ship this test module by value.
    cloudpickle.register_pickle_by_value(extra_task)
    with tasks.registered_extra(extra_task.SpendIndexTask()):
        yield load_config(root / "config.yaml"), root
    cloudpickle.unregister_pickle_by_value(extra_task)


def test_the_extra_task_is_trained_judged_registered_reported_and_predicted(registered):
    cfg, root = registered
    res = run_train(cfg, say=lambda _m: None)
    assert "spend_index" in res.models and res.versions["spend_index"] == "1"
    assert res.decisions["spend_index"].startswith("champion: v1 is the first version (coverage")
    assert set(res.metrics["task"]) == {"churn", "clv", "spend_index"}
    mv = tracking.champion("customer-value-spend_index")
    assert mv is not None and str(mv.version) == "1"
    page = (root / "out" / "report.html").read_text(encoding="utf-8")
    assert 'id="spend_index"' in page and "Spend index (a test-only task)" in page

    frame, rows, _ = run_predict(cfg, None, "champion", str(root / "p.parquet"), progress_bar=False)
    names = prediction_schema().names
    assert list(pd.read_parquet(root / "p.parquet").columns) == names
    assert names.index("predicted_clv") < names.index("spend_index") < names.index("p_alive")
    assert frame["spend_index"].ge(0).all() and set(frame["spend_index_model_version"]) == {"1"}

    table = run_backtest(cfg, ["2023-06-30"], n_boot=0, say=lambda _m: None).table
    assert set(table.loc[table["task"] == "spend_index", "metric"]) == {"spearman"}


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17+")
def test_the_extra_task_reaches_the_spark_output(registered):
    pytest.importorskip("pyspark")
    cfg, root = registered
    if tracking.champion("customer-value-spend_index") is None:  # run alone: train first
        run_train(cfg, say=lambda _m: None)
    if not (root / "p.parquet").exists():
        run_predict(cfg, None, "champion", str(root / "p.parquet"), progress_bar=False)
    on_spark = cfg.model_copy(deep=True)
    on_spark.engine = "spark"
    head, rows, _ = run_predict(on_spark, None, "champion", str(root / "s.parquet"), progress_bar=False)
    out = pd.read_parquet(root / "s.parquet")
    assert "spend_index" in out.columns and out["spend_index"].notna().all()
    ours = pd.read_parquet(root / "p.parquet").set_index("customer_id")
    assert (out.set_index("customer_id").loc[ours.index, "spend_index"] == ours["spend_index"]).all()
