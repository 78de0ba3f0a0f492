"""`customer-value monitor`: drift detected when injected and not otherwise, label-free estimates,
and realised metrics of an earlier predictions file equal to the backtest's for the same date."""

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from customer_value import tracking
from customer_value.cli import app
from customer_value.config import load_config
from customer_value.modeling.monitoring import expected_churn_performance, psi
from customer_value.pipelines.data import load_data
from customer_value.pipelines.monitor import alerts_for, drift_report

runner = CliRunner()
REFERENCE, CURRENT = pd.Timestamp("2023-12-31"), pd.Timestamp("2024-03-31")


@pytest.fixture(scope="module")
def store(trained_store, tmp_path_factory):
    """A private copy of the session's trained store (monitor runs must not change it)."""
    cfg, first, _ = trained_store
    root = tmp_path_factory.mktemp("monitor") / "store"
    shutil.copytree(cfg.source_path.parent, root)
    return load_config(root / "config.yaml"), first.chain


@pytest.fixture(scope="module")
def tables(store):
    cfg, _ = store
    return load_data(cfg).data


def _drifted(tables, cfg, chain):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return drift_report(chain, tables, REFERENCE, CURRENT, cfg)


def test_an_unchanged_period_raises_no_alert(store, tables):
    cfg, chain = store
    feats, preds, shares, migration, ref, cur = _drifted(tables, cfg, chain)
    assert len(feats) > 10 and not feats["drifted"].any(), feats.head()
    # Raw shifts can be large (the base ages: tenure_days) but no larger than the span before.
    assert (feats["psi"] - feats["psi_usual"]).max() < cfg.monitoring.psi_threshold
    assert feats.set_index("column").loc["tenure_days", "psi"] > 0.5
    assert not preds["drifted"].any()
    assert alerts_for(feats, preds, cfg) == []
    assert shares["change_points"].abs().max() < 10
    assert migration["customers"].sum() == len(cur)


def test_drift_injected_after_the_reference_is_detected(store, tables):
    cfg, chain = store
    tx = tables.transactions.copy()
    after = tx["timestamp"] > REFERENCE
    # Order values triple and two in three orders after the reference date disappear.
    tx.loc[after, "amount"] *= 3.0
    order = tx["customer_id"].astype(str) + tx["timestamp"].astype(str)
    keep = ~after | (pd.util.hash_pandas_object(order, index=False) % 3 == 0).to_numpy()
    shifted = type(tables)(tx[keep].reset_index(drop=True), tables.customers, tables.interactions)
    feats, preds, *_ = _drifted(shifted, cfg, chain)
    alerts = alerts_for(feats, preds, cfg)
    assert alerts and "feature(s) drifted" in alerts[0]
    top = set(feats[feats["drifted"]]["column"])
    assert top & {"spend_trend_90d", "purchase_days_90d", "purchase_days_trend_90d", "margin_rate"}
    # Beyond the usual: what the same span before the reference produced is small for these.
    drifted = feats[feats["drifted"]]
    assert (drifted["psi_usual"] < 0.05).all()


def test_psi_by_hand_and_label_free_auc_matches_realised_draws():
    # Reference deciles of 0..99; all of current in the top bin: PSI = 0.9 ln(1e-4/0.1) + 0.9 ln 10.
    ref = np.arange(100.0)
    cur = np.full(100, 99.0)
    expected = 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1) + (1.0 - 0.1) * np.log(1.0 / 0.1)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-9)
    assert psi(ref, ref) == 0.0
    # The expected AUC of calibrated probabilities is what labels drawn from them give on average.
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    p = rng.beta(1.2, 2.0, 4000)
    draws = [roc_auc_score(rng.uniform(size=p.size) < p, p) for _ in range(100)]
    est = expected_churn_performance(p)
    assert est["roc_auc"] == pytest.approx(np.mean(draws), abs=0.003)
    assert est["churn_rate"] == pytest.approx(p.mean())
    # Exact on four customers with a tie, by enumerating the pairs.
    q = np.array([0.2, 0.5, 0.5, 0.9])
    num = den = 0.0
    for i in range(4):
        for j in range(4):
            if i != j:
                w = q[i] * (1 - q[j])
                den += w
                num += w * (1.0 if q[i] > q[j] else 0.5 if q[i] == q[j] else 0.0)
    assert expected_churn_performance(q)["roc_auc"] == pytest.approx(num / den, rel=1e-12)


def test_realised_metrics_of_an_earlier_file_equal_the_backtest(store, tables, tmp_path, monkeypatch):
    cfg, chain = store
    cutoff = "2023-06-30"  # both windows (90 and 365 days) end by the data's last day
    old = tmp_path / "old.parquet"
    res = runner.invoke(
        app, ["predict", "--config", str(cfg.source_path), "--as-of", cutoff, "--output", str(old)]
    )
    assert res.exit_code == 0, res.output
    from customer_value.pipelines import backtest

    monkeypatch.setattr(tracking, "log_figure", lambda *a, **k: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rows = pd.DataFrame(backtest.score_cutoff(cfg, tables, pd.Timestamp(cutoff), chain, 0))
    res = runner.invoke(
        app,
        [
            "monitor",
            "--config",
            str(cfg.source_path),
            "--predictions",
            str(old),
            "--report",
            str(tmp_path / "monitor.html"),
        ],
    )
    assert res.exit_code == 0, res.output
    run_id = res.output.strip().split("MLflow run ")[1].split()[0]
    tracking.setup(cfg.tracking, cfg.tracking.experiment or cfg.project.name, create=False)
    got = pd.read_csv(tracking.download_artifact(run_id, "monitor/realised_metrics.csv"))
    assert set(got["task"]) == {"churn", "clv"}
    # The served CLV interval's realised coverage is one of them (equal to the backtest's too).
    has_intervals = getattr(chain.models["clv"], "intervals", None) is not None
    assert ("coverage_80" in set(got.loc[got["task"] == "clv", "metric"])) == has_intervals
    for r in got.itertuples():
        want = rows[(rows["task"] == r.task) & (rows["model"] == r.model) & (rows["metric"] == r.metric)]
        assert len(want) == 1, (r.task, r.model, r.metric)
        assert r.value == pytest.approx(float(want["value"].iloc[0]), rel=1e-9, abs=1e-12), r
    page = (tmp_path / "monitor.html").read_text(encoding="utf-8")
    assert '<section id="monitoring">' in page and "Realised metrics" in page


def test_monitor_exits_3_on_drift_and_logs_a_monitor_run(store, tmp_path):
    cfg, _ = store
    res = runner.invoke(
        app,
        [
            "monitor",
            "--config",
            str(cfg.source_path),
            "--as-of",
            "2023-06-30",
            "--report",
            "",
            "--set",
            "monitoring.psi_threshold=0.05",
        ],
    )
    assert res.exit_code == 3, res.output
    assert "alert:" in res.output and "feature(s) drifted" in res.output
    import mlflow

    tracking.setup(cfg.tracking, cfg.tracking.experiment or cfg.project.name, create=False)
    runs = mlflow.search_runs(
        filter_string="tags.kind = 'monitor'", output_format="list", search_all_experiments=True
    )
    assert runs and any(r.data.tags.get("alert") == "True" for r in runs)
    assert any("drifted_features" in r.data.metrics for r in runs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--as-of", "2030-01-01"], "is after the last transaction"),
        (["--as-of", "yesterday-ish"], "--as-of"),
        (["--report", "{tmp}/m.pdf"], "unsupported output extension"),
        (["--predictions", "{tmp}/none.parquet"], "no predictions file here"),
        (["--alias", "nope"], "no registered model"),
    ],
)
def test_bad_monitor_input_is_exit_2(store, tmp_path, args, message):
    cfg, _ = store
    args = [a.format(tmp=tmp_path) for a in args]
    if "--report" not in args:
        args += ["--report", ""]
    res = runner.invoke(app, ["monitor", "--config", str(cfg.source_path), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
