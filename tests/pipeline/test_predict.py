"""Batch predictions: schema, ranks, reasons, determinism, outputs, errors, crash safety, pyfunc."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from customer_value import tracking
from customer_value.chain import prediction_schema, score_tables
from customer_value.cli import app
from customer_value.config import load_config
from customer_value.pipelines.data import load_data
from customer_value.pipelines.predict import load_chain, run_predict

runner = CliRunner()


def _predict(cfg, output, **kw):
    return run_predict(
        cfg, kw.get("as_of"), kw.get("alias", "champion"), str(output), progress_bar=False
    )[0]


def test_schema_rows_ranges_reasons_and_ranks(trained_store, tmp_path):
    cfg, _, _ = trained_store
    out = tmp_path / "p.parquet"
    frame = _predict(cfg, out)
    disk = pd.read_parquet(out)
    assert list(disk.columns) == prediction_schema().names
    tx = load_data(cfg).data.transactions
    assert disk["customer_id"].is_unique and len(disk) == tx["customer_id"].nunique()
    assert disk["churn_probability"].between(0, 1).all()
    assert (disk["predicted_clv"] >= 0).all() and disk["predicted_clv"].notna().all()
    assert (disk["as_of"] == tx["timestamp"].max().normalize()).all()
    chain = load_chain(cfg)
    # The served CLV interval: at the first configured level, around the prediction, from the
    # calibrator trained with the model (none when the CLV labels were projected).
    cal = getattr(chain.models["clv"], "intervals", None)
    if cal is None:
        assert disk["predicted_clv_low"].isna().all() and disk["clv_interval_level"].isna().all()
    else:
        assert (disk["clv_interval_level"] == cfg.clv.intervals_levels[0]).all()
        assert (disk["predicted_clv_low"] <= disk["predicted_clv"] + 1e-9).all()
        assert (disk["predicted_clv"] <= disk["predicted_clv_high"] + 1e-9).all()
        assert (disk["predicted_clv_high"] > disk["predicted_clv_low"]).mean() > 0.99
    for task, model in ((t.name, chain.models[t.name]) for t in chain.tasks if t.explained):
        for i in (1, 2, 3):
            assert disk[f"{task}_driver_{i}_feature"].isin(model.features_).all()
            assert disk[f"{task}_driver_{i}_reason"].str.len().gt(5).all()
    # |SHAP| of driver 1 >= driver 2 >= driver 3.
    assert (disk["churn_driver_1_shap"].abs() >= disk["churn_driver_2_shap"].abs() - 1e-12).all()
    # retention_rank orders value_at_risk (largest first; ties by customer id).
    ranked = disk.sort_values("retention_rank")
    assert ranked["value_at_risk"].is_monotonic_decreasing
    assert np.allclose(disk["value_at_risk"], disk["churn_probability"] * disk["predicted_clv"])
    assert set(disk["churn_model_version"]) == {"1"} and disk["churn_run_id"].str.len().eq(32).all()
    assert set(disk["persona"]) <= set(chain.models["personas"].names_)
    pd.testing.assert_frame_equal(frame, disk)
    # Persona ids and names agree; the previous persona is the chain's own migration_days earlier.
    pm = chain.models["personas"]
    names = dict(zip(pm.persona_ids, pm.names_, strict=True))
    assert (disk["persona"] == disk["persona_id"].map(names)).all()
    before = disk["as_of"].iloc[0] - pd.Timedelta(days=cfg.personas.migration_days)
    earlier = score_tables(chain, load_data(cfg).data, before, reasons="none").set_index("customer_id")
    prev = disk.set_index("customer_id")
    known = prev["previous_persona_id"].notna()
    assert known.mean() > 0.5 and set(prev.index[known]) == set(earlier.index)
    assert (
        prev.loc[known, "previous_persona_id"] == earlier["persona_id"].reindex(prev.index[known])
    ).all()
    assert (prev.loc[known, "previous_persona"] == earlier["persona"].reindex(prev.index[known])).all()
    assert prev.loc[~known, "previous_persona"].isna().all()


def test_rerun_is_byte_identical_and_csv_and_sqlite_outputs(trained_store, tmp_path):
    cfg, _, _ = trained_store
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _predict(cfg, a)
    _predict(cfg, b)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    frame = _predict(cfg, tmp_path / "p.csv")
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(frame)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    import sqlalchemy as sa

    _predict(cfg, url)
    _predict(cfg, url)  # the same as_of again: replaced, not appended
    _predict(cfg, url, as_of="2024-03-31")
    with sa.create_engine(url).connect() as conn:
        counts = pd.read_sql("SELECT as_of, COUNT(*) AS n FROM predictions GROUP BY as_of", conn)
    assert counts.set_index("as_of")["n"].to_dict() == {
        "2024-03-31": int(_predict(cfg, tmp_path / "q.parquet", as_of="2024-03-31").shape[0]),
        "2024-06-30": len(frame),
    }


def test_user_errors(trained_store, tmp_path):
    cfg, _, _ = trained_store
    src = str(cfg.source_path)
    res = runner.invoke(
        app, ["predict", "--config", src, "--alias", "gold", "--output", str(tmp_path / "x.parquet")]
    )
    assert (
        res.exit_code == 2
        and "with alias 'gold'" in res.output
        and "no registered model 'customer-value-" in res.output
    )
    res = runner.invoke(app, ["predict", "--config", src, "--output", str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "unsupported output" in res.output
    res = runner.invoke(
        app,
        [
            "predict",
            "--config",
            src,
            "--set",
            "tracking.model_prefix=nobody",
            "--output",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert res.exit_code == 2 and "run `make train`" in res.output
    # Data without the category column cannot feed models trained with category features.
    tx = pd.read_parquet(cfg.data.transactions.path).drop(columns=["category"])
    tx.to_parquet(tmp_path / "nocat.parquet")
    res = runner.invoke(
        app,
        [
            "predict",
            "--config",
            src,
            "--set",
            f"data.transactions.path={tmp_path / 'nocat.parquet'}",
            "--output",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert res.exit_code == 2 and "lack" in res.output and "cat_share_" in res.output
    # The same as_of rule as training: after the data's last day customers would age unobserved.
    res = runner.invoke(
        app,
        ["predict", "--config", src, "--as-of", "2031-01-01", "--output", str(tmp_path / "x.parquet")],
    )
    assert res.exit_code == 2 and "after the last transaction" in res.output, res.output
    # An output that is the configured input is refused before any work.
    target = cfg.data.transactions.path
    res = runner.invoke(app, ["predict", "--config", src, "--output", str(target)])
    assert res.exit_code == 2 and "data.transactions.path" in res.output, res.output
    assert "replace an input" in res.output
    assert not any(tmp_path.glob("x.*"))


def test_killed_mid_write_leaves_the_previous_output(trained_store, tmp_path):
    cfg, _, _ = trained_store
    out = tmp_path / "p.parquet"
    _predict(cfg, out)
    before = out.read_bytes()
    env = {**os.environ, "CUSTOMER_VALUE_FAULT_PAUSE_BEFORE_RENAME_S": "60"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "customer_value.cli",
            "predict",
            "--config",
            str(cfg.source_path),
            "--as-of",
            "2024-05-31",
            "--output",
            str(out),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob(".p.parquet.*.tmp")) and time.time() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".p.parquet.*.tmp")), "the writer never reached the rename"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == before
    # The next run cleans the dead writer's temp file and succeeds.
    frame = _predict(cfg, out)
    assert not list(tmp_path.glob(".p.parquet.*.tmp"))
    assert len(pd.read_parquet(out)) == len(frame)


def test_pyfunc_chain_equals_predict(tmp_path):
    from conftest import TRAIN_CONFIG
    from customer_value.pipelines.train import run_train

    # Transactions only: the pyfunc takes one table, so compare on a config without the others.
    body = TRAIN_CONFIG.format(trials=2).replace(
        "  customers: {path: raw/customers.parquet}\n  interactions: {path: raw/interactions.parquet}\n",
        "",
    )
    body = body.replace("n_customers: 3000", "n_customers: 1500")
    (tmp_path / "config.yaml").write_text(body)
    cfg = load_config(tmp_path / "config.yaml")
    run_train(cfg, say=lambda _m: None)
    ours = _predict(cfg, tmp_path / "p.parquet")
    tx = pd.read_parquet(cfg.data.transactions.path)
    tx.to_csv(tmp_path / "tx.csv", index=False)
    uri = "models:/customer-value-pipeline@champion"
    model = tracking.load_pyfunc(uri)
    pd.testing.assert_frame_equal(model.predict(tx), ours)
    # And through MLflow's own command line, as a deployment would call it.
    env = {**os.environ, "MLFLOW_TRACKING_URI": cfg.tracking.tracking_uri}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "predict",
            "-m",
            uri,
            "-i",
            str(tmp_path / "tx.csv"),
            "-t",
            "csv",
            "-o",
            str(tmp_path / "out.json"),
            "--env-manager",
            "local",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    raw = json.loads((tmp_path / "out.json").read_text())
    cli = pd.DataFrame(raw["predictions"] if isinstance(raw, dict) else raw)
    assert cli["customer_id"].astype(str).tolist() == ours["customer_id"].tolist()
    assert np.allclose(cli["churn_probability"], ours["churn_probability"])
    assert np.allclose(cli["predicted_clv"], ours["predicted_clv"])
    assert cli["churn_driver_1_reason"].tolist() == ours["churn_driver_1_reason"].tolist()
