"""The main job end to end on a small simulated base, with an MLflow store in tmp_path."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from conftest import training_set
from customer_value import tasks, tracking
from customer_value.errors import UserError
from customer_value.pipelines.data import load_data
from customer_value.pipelines.gate import champion_gate
from customer_value.pipelines.train import task_data


def _client(cfg):
    import mlflow

    tracking.setup(cfg.tracking, cfg.project.name)
    return mlflow.MlflowClient()


def test_store_holds_runs_metrics_artifacts_and_models(trained_store):
    cfg, first, _ = trained_store
    client = _client(cfg)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["status"] == "finished" and tags["as_of"] == "2024-06-30"
    assert {"git_commit", "data.sha256", "data.rows", "churn.oot_cutoff", "clv.oot_cutoff"} <= set(tags)
    for key in (
        "churn_roc_auc",
        "churn_pr_auc",
        "churn_brier",
        "churn_lift_top_decile",
        "clv_normalized_gini",
        "clv_mae",
        "clv_top_decile_capture",
        "personas_silhouette",
        "baseline_churn_bg_nbd_p_no_purchase_roc_auc",
        "baseline_clv_bg_nbd_gamma_gamma_normalized_gini",
    ):
        assert key in run.data.metrics, key
    assert "churn.tuning.n_trials" in run.data.params
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    names = {c.info.run_name for c in children}
    assert {"churn", "clv", "personas"} <= names
    trials = [
        r
        for c in children
        if c.info.run_name in ("churn", "clv")
        for r in client.search_runs(
            [run.info.experiment_id], f"tags.mlflow.parentRunId = '{c.info.run_id}'"
        )
    ]
    assert len(trials) == 6 and all(r.data.tags["optuna.state"] == "COMPLETE" for r in trials)
    arts = set()
    stack = [""]
    while stack:
        for f in client.list_artifacts(first.run_id, stack.pop()):
            (stack.append(f.path) if f.is_dir else arts.add(f.path))
    for art in (
        "metrics/oot_metrics.csv",
        "metrics/comparison.csv",
        "personas/persona_profiles.csv",
        "data/feature_catalog.csv",
        "data/validation_report.csv",
        "value/persona_value.csv",
        "personas/migration.csv",
        "shap/churn_beeswarm.png",
        "shap/clv_importance.png",
        "shap/churn_persona_drivers.csv",
        "plots/churn_reliability.png",
        "plots/clv_deciles.png",
    ):
        assert art in arts, art
    inputs = run.inputs.dataset_inputs
    assert {d.dataset.name for d in inputs} >= {"churn_training_snapshots", "clv_out_of_time"}
    for key, name in tracking.model_names().items():
        assert (
            str(client.get_model_version_by_alias(name, "champion").version)
            == first.versions[key]
            == "1"
        )


def test_same_seed_reproduces_metrics_and_keeps_the_champion(trained_store):
    cfg, first, second = trained_store
    pd.testing.assert_frame_equal(first.metrics, second.metrics)
    pd.testing.assert_frame_equal(first.personas, second.personas)
    # The second training matched its personas to the champion's: every one kept id and name.
    ident = second.chain.models["personas"].identity_
    assert ident["status"].eq("kept").all() and (ident["persona_id"] == ident["previous_id"]).all()
    assert first.chain.models["personas"].identity_ is None  # nothing to inherit from
    client = _client(cfg)
    for key, name in tracking.model_names().items():
        if key == "pipeline":
            assert second.decisions[key] == "challenger: v2 bundles this run's models"
            continue
        # Equal is not better: the champion stays, the new version is the challenger.
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
        assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
        assert second.decisions[key].startswith("challenger: v2 does not beat champion v1")


def test_a_worse_model_never_takes_the_alias(trained_store):
    cfg, first, _ = trained_store
    client = _client(cfg)
    ts = training_set(load_data(cfg).data, first.as_of, cfg)
    oot = ts.tasks["churn"].oot.set_index("customer_id")
    champion = tracking.load_model(tracking.model_names()["churn"])
    # A model trained on shuffled labels ranks at chance.
    from customer_value.modeling.gbm import ChurnModel

    train = ts.tasks["churn"].train
    shuffled = train["churned"].sample(frac=1, random_state=0).to_numpy().astype(int)
    bad = ChurnModel(params={"max_depth": 2}, n_estimators=20).fit(
        train[champion.features_], shuffled, train[champion.features_], shuffled
    )
    y = oot["churned"].to_numpy(float)
    bad_score = roc_auc_score(y, bad.predict_proba(oot[bad.features_])[:, 1])
    with tracking.start_run("bad model"):
        version = tracking.log_sklearn_model(
            bad,
            "churn_model",
            oot[bad.features_].head(3),
            bad.predict_proba(oot[bad.features_].head(3))[:, 1],
            tracking.model_names()["churn"],
        )
        decisions, moves = champion_gate(
            (tasks.get("churn"),),
            {"churn": version},
            {"churn": bad_score},
            task_data(cfg, ts).data,
            cfg,
            tracking.model_names(),
        )
    assert decisions["churn"].startswith(f"challenger: v{version} does not beat champion v1")
    assert moves == [(tracking.model_names()["churn"], "challenger", version)]
    for name, alias, v in moves:  # applied as run_train applies them, after the run finished
        tracking.set_alias(name, alias, v)
    assert (
        str(client.get_model_version_by_alias(tracking.model_names()["churn"], "champion").version)
        == "1"
    )


def test_recovers_the_simulated_truth_and_behaves(trained_store):
    cfg, first, _ = trained_store
    ts = training_set(load_data(cfg).data, first.as_of, cfg)
    oot = ts.tasks["churn"].oot.set_index("customer_id")
    truth = (
        pd.read_parquet(cfg.simulation.truth_dir / "truth.parquet")
        .set_index("customer_id")
        .loc[oot.index]
    )
    churn = tracking.load_model(tracking.model_names()["churn"])
    clv = tracking.load_model(tracking.model_names()["clv"])
    personas = tracking.load_model(tracking.model_names()["personas"])
    q = churn.predict_proba(oot[churn.features_])[:, 1]
    # Oracle: dead at the cutoff -> certain churn; alive -> P(no purchase) = exp(-lambda w).
    cutoff = ts.tasks["churn"].plan.oot_cutoff
    dead = truth["death_date"].notna() & (truth["death_date"] <= cutoff)
    w = ts.tasks["churn"].plan.label_days
    oracle = np.where(dead, 1.0, np.exp(-truth["purchase_rate_per_day"] * w))
    y = oot["churned"].to_numpy(float)
    ours, best = roc_auc_score(y, q), roc_auc_score(y, oracle)
    # The oracle knows who is already dead, which no model can observe: within 0.10 of it.
    assert ours > best - 0.10, (ours, best)
    m = first.metrics.set_index(["task", "model", "metric"])["value"]
    assert (
        m["clv", "xgboost clv", "normalized_gini"] > m["clv", "BG/NBD + Gamma-Gamma", "normalized_gini"]
    )
    ari = adjusted_rand_score(truth["persona"], personas.predict(oot))
    assert ari > 0.15, ari
    # Behaviour: a more recent last purchase never raises churn risk, all else equal ...
    X = oot[churn.features_].copy()
    recent = X.copy()
    recent["days_since_last_purchase"] = X["days_since_last_purchase"] * 0.5
    recent["overdue_ratio"] = X["overdue_ratio"] * 0.5
    assert (churn.predict_proba(recent)[:, 1] <= churn.predict_proba(X)[:, 1] + 1e-12).all()
    # ... and higher spend never lowers predicted CLV.
    richer = oot[clv.features_].copy()
    for col in ("monetary_mean", "monetary_total", "revenue_per_year", "monetary_repeat_mean"):
        richer[col] = richer[col] * 1.5 + 10
    assert (clv.predict(richer) >= clv.predict(oot[clv.features_]) - 1e-9).all()
    # The served CLV intervals rank each prediction against the served model's predictions for
    # every customer at the training date (the base it serves), not against whatever it scores.
    served = np.sort(clv.predict(ts.current[clv.features_]))
    np.testing.assert_allclose(np.sort(np.concatenate(clv.intervals.reference_)), served)


def test_run_report_is_self_contained_with_every_section(trained_store):
    cfg, first, _ = trained_store
    client = _client(cfg)
    path = client.download_artifacts(first.run_id, "report/report.html")
    page = open(path, encoding="utf-8").read()
    for section in (
        'id="data"',
        'id="personas"',
        'id="churn"',
        'id="clv"',
        'id="comparison"',
        'id="shap"',
        'id="config"',
    ):
        assert section in page, section
    assert page.count("data:image/png;base64,") >= 10
    assert 'src="http' not in page and 'href="http' not in page  # readable offline
    assert first.run_id in page and 'class="card persona"' in page
    # The local copy is the latest training run's report (any later test may have replaced it).
    local = cfg.tracking.report_path.read_text(encoding="utf-8")
    assert local.startswith("<!doctype html>") and 'id="shap"' in local


def test_migration_matrix_in_the_run_and_from_the_review_api(trained_store):
    """The run's migration artifact and ``run.migration()`` both count every customer once."""
    from customer_value.pipelines.review import load_run

    cfg, first, _ = trained_store
    run = load_run(cfg, first.run_id)
    logged = run.table("personas/migration.csv")
    assert logged["customers"].sum() == first.personas["customers"].sum()  # the reference rows
    after = run.as_of
    before = after - pd.Timedelta(days=30)
    m = run.migration(before, after)
    now = run.predictions(after).set_index("customer_id")
    then = run.predictions(before).set_index("customer_id")
    assert m["customers"].sum() == len(now)
    # Every flow's counts and value agree with the two scorings.
    for r in m.head(5).itertuples():
        src = then["persona_id"].reindex(now.index)
        mask = (now["persona_id"] == r.to_id) & (
            src.isna() if pd.isna(r.from_id) else (src == r.from_id)
        )
        assert mask.sum() == r.customers
        assert np.isclose(now.loc[mask, "value_at_risk"].sum(), r.value_at_risk)
    with pytest.raises(UserError, match="earlier"):
        run.migration(after, before)
