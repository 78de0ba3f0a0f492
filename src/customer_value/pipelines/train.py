"""The main job: data → snapshots → personas, churn and CLV (tuned) → baselines → SHAP → MLflow.

Everything the models are judged on is computed on the out-of-time snapshot, which no fit, tuning
trial, early stop or calibration ever sees. MLflow is reached only through
:mod:`customer_value.tracking`; the champion alias moves last, after everything else is logged, so
a run that dies midway never holds it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value import explain, io, plots, report, tracking
from customer_value.config import Config
from customer_value.errors import UserError
from customer_value.features.btyd import BTYDModels
from customer_value.features.build import build_training_set, projection_ratio
from customer_value.features.catalog import feature_catalog
from customer_value.modeling import evaluate
from customer_value.modeling.gbm import CHURN_MONOTONE, CLV_MONOTONE, ChurnModel, CLVModel
from customer_value.modeling.personas import PersonaModel
from customer_value.modeling.tuning import split_by_customer, tune
from customer_value.modeling.value import customer_value, persona_value
from customer_value.pipelines.data import ensure_data, load_data
from customer_value.pipelines.doctor import reap_dead_runs
from customer_value.pipelines.features import parse_as_of
from customer_value.validate import ValidatedData

__all__ = ["TrainResult", "run_train", "clv_target", "data_fingerprint"]

PRIMARY = {"churn": "roc_auc", "clv": "normalized_gini", "personas": "silhouette"}


@dataclass
class TrainResult:
    """What a training run produced (also all in MLflow)."""

    run_id: str
    experiment_id: str
    as_of: pd.Timestamp
    metrics: pd.DataFrame
    personas: pd.DataFrame
    decisions: dict[str, str]
    versions: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    models: dict = field(default_factory=dict)


def clv_target(config: Config, frame: pd.DataFrame) -> str:
    """``future_margin`` where the log has costs (or when asked), else ``future_revenue``."""
    if config.clv.target == "margin" or (config.clv.target == "auto" and "future_margin" in frame):
        return "future_margin"
    return "future_revenue"


def data_fingerprint(tables: ValidatedData) -> dict[str, str]:
    """Rows, customers, date range and a content hash of the validated transactions."""
    tx = tables.transactions
    digest = hashlib.sha256(pd.util.hash_pandas_object(tx, index=False).to_numpy().tobytes())
    return {
        "data.rows": str(len(tx)),
        "data.customers": str(tx["customer_id"].nunique()),
        "data.first_date": str(tx["timestamp"].min().date()),
        "data.last_date": str(tx["timestamp"].max().date()),
        "data.sha256": digest.hexdigest()[:16],
    }


def _git_commit(path: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _btyd_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"frequency": frame["frequency"], "recency": frame["recency_days"], "T": frame["tenure_days"]},
        index=frame.index,
    )


def clv_baselines(
    oot: pd.DataFrame, models: BTYDModels, label_days: int, target: str
) -> dict[str, np.ndarray]:
    """CLV baselines over the label window: BG/NBD + Gamma-Gamma, naive total and repeat rates.

    Converted to margin with each customer's margin rate when the target is margin (METRICS.md).
    """
    tenure = np.maximum(oot["tenure_days"].to_numpy(dtype=float), 1.0)
    margin = np.ones(len(oot))
    if target == "future_margin" and "margin_rate" in oot:
        mr = oot["margin_rate"]
        margin = mr.fillna(mr.median()).clip(lower=0).to_numpy()
    repeat_revenue = (oot["monetary_repeat_mean"].fillna(0) * oot["frequency"]).to_numpy()
    out = {
        "naive total rate": oot["monetary_total"].clip(lower=0).to_numpy()
        / tenure
        * label_days
        * margin,
        "naive repeat rate": repeat_revenue / tenure * label_days * margin,
    }
    if models.bgnbd is not None and models.gamma_gamma is not None:
        tx = models.bgnbd.expected_transactions(_btyd_inputs(oot), label_days).to_numpy()
        aov = models.gamma_gamma.conditional_expected_value(
            pd.DataFrame({"frequency": oot["frequency"], "monetary_value": oot["monetary_repeat_mean"]})
        ).to_numpy()
        out["BG/NBD + Gamma-Gamma"] = tx * aov * margin
    return out


def churn_baselines(oot: pd.DataFrame, models: BTYDModels, window_days: int) -> dict[str, np.ndarray]:
    """Churn baselines: BG/NBD P(no purchase in the window) and recency (a ranking score only)."""
    out = {"recency (days since last purchase)": oot["days_since_last_purchase"].to_numpy(float)}
    if models.bgnbd is not None:
        out["BG/NBD P(no purchase)"] = models.bgnbd.p_no_purchase(
            _btyd_inputs(oot), window_days
        ).to_numpy()
    return out


def _metric_rows(model: str, task: str, metrics: dict) -> list[dict]:
    return [{"task": task, "model": model, "metric": k, "value": float(v)} for k, v in metrics.items()]


def run_train(
    config: Config, as_of=None, say: Callable[[str], None] = print, nested: bool = False
) -> TrainResult:
    """Train, evaluate, explain and track. ``as_of`` defaults to the last date in the data.

    ``nested=True`` logs the run under the active run (the backtest's per-cutoff runs).
    """
    t_start = time.perf_counter()
    seed = config.project.seed
    steps = 8

    def step(i: int, text: str) -> None:
        say(f"[{i}/{steps}] {text} ({time.perf_counter() - t_start:.0f}s)")

    # 0. Preflight: arguments and the tracking store are checked before anything is simulated,
    # read or written, so a typo or a server that is down fails in seconds with nothing left behind.
    wanted = parse_as_of(as_of)
    tracking.check_store(config.tracking)

    # 1. Data -------------------------------------------------------------------------------------
    step(1, "data: simulate if needed, read and validate")
    if ensure_data(config):
        say(f"      simulated the default customer base into {config.data.transactions.path.parent}")
    if config.engine == "spark":
        from customer_value import spark as cvs

        session = cvs.session(config.spark.master, config.spark.app_name, config.spark.driver_memory)
        sp_tables = cvs.read_tables(session, config)
        report_rows, facts, fingerprint, last = cvs.describe(sp_tables["transactions"])
    else:
        loaded = load_data(config)
        tables = loaded.data
        report_rows, facts = loaded.report.to_frame(), loaded.report.facts
        fingerprint = data_fingerprint(tables)
        last = tables.transactions["timestamp"].max()
    as_of = (wanted if wanted is not None else last).normalize()
    _check_as_of_in_data(as_of, facts["summary"]["first_date"], last)

    # 2. Snapshots --------------------------------------------------------------------------------
    step(2, f"features and training snapshots before {as_of.date()} ({config.engine})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if config.engine == "spark":
            ts = cvs.build_training_set_spark(session, sp_tables, as_of, config, config.spark.buckets)
        else:
            ts = build_training_set(tables, as_of, config)
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
    for note in notes:
        say(f"      note: {note}")
    churn_set, clv_set = ts.churn, ts.clv
    _check_churn_classes(churn_set.train, config, churn_set.plan.label_days)
    target = clv_target(config, clv_set.frame)
    features = ts.feature_columns
    churn_train = churn_set.train.reset_index(drop=True)
    clv_train = clv_set.train.reset_index(drop=True)
    oot = churn_set.oot.set_index("customer_id")  # the latest out-of-time snapshot
    clv_oot = clv_set.oot.set_index("customer_id")  # the CLV one (a full horizon observed)
    btyd_oot = ts.btyd[churn_set.plan.oot_cutoff]
    btyd_clv_oot = ts.btyd[clv_set.plan.oot_cutoff]

    # One training run at a time per SQLite store: a second one waits here (after its data work),
    # so the champion gate never races and SQLite never sees two writers.
    with tracking.store_lock(config.tracking, say):
        experiment = config.tracking.experiment or config.project.name
        experiment_id = tracking.setup(config.tracking, experiment)
        for run in reap_dead_runs(
            f"train run started at {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M:%S} UTC"
        ):
            say(f"      note: run {run} was killed before it finished; marked KILLED")
        tags = {
            "as_of": str(as_of.date()),
            "churn.oot_cutoff": str(churn_set.plan.oot_cutoff.date()),
            "churn.train_cutoffs": ",".join(str(c.date()) for c in churn_set.plan.train_cutoffs),
            "churn.window_days": str(churn_set.plan.label_days),
            "clv.oot_cutoff": str(clv_set.plan.oot_cutoff.date()),
            "clv.train_cutoffs": ",".join(str(c.date()) for c in clv_set.plan.train_cutoffs),
            "clv.label_days": str(clv_set.plan.label_days),
            "clv_target": target,
            "clv.projected_to_horizon": str(clv_set.plan.projected).lower(),
            "git_commit": _git_commit(Path(__file__).resolve().parent),
            "status": "running",
            **fingerprint,
        }
        if notes:
            tags["notes"] = " | ".join(notes)
        with tracking.start_run(f"train {as_of.date()}", nested=nested, tags=tags) as parent:
            run_id = parent.info.run_id
            tracking.log_params(config.model_dump(mode="json", exclude={"source_path"}))
            for task, tset, label in (("churn", churn_set, "churned"), ("clv", clv_set, target)):
                cols = ["customer_id", "as_of", *features, label]
                tracking.log_dataset(
                    tset.train[cols], f"{task}_training_snapshots", "training", targets=label
                )
                tracking.log_dataset(
                    tset.oot[cols].reset_index(drop=True),
                    f"{task}_out_of_time",
                    "evaluation",
                    targets=label,
                )
            tracking.log_table(report_rows, "data/validation_report.csv")
            tracking.log_text(json.dumps(facts, indent=2, default=str), "data/validation_summary.json")
            tracking.log_table(feature_catalog([*features, "nps_class"]), "data/feature_catalog.csv")
            tracking.log_metrics(
                {
                    "churn_train_rows": len(churn_train),
                    "churn_oot_rows": len(oot),
                    "clv_train_rows": len(clv_train),
                    "clv_oot_rows": len(clv_oot),
                    "oot_churn_rate": float(oot["churned"].mean()),
                }
            )

            # 3. Churn ----------------------------------------------------------------------------------
            step(3, f"churn model: {config.churn.tuning.n_trials} Optuna trials")
            with tracking.start_run("churn", nested=True):
                churn_model, churn_study = _fit_churn(config, features, churn_train, seed)
                q_oot = churn_model.predict_proba(oot[features])[:, 1]

            # 4. CLV ------------------------------------------------------------------------------------
            step(
                4,
                f"CLV model ({config.clv.objective}, target {target}): "
                f"{config.clv.tuning.n_trials} Optuna trials",
            )
            with tracking.start_run("clv", nested=True):
                clv_model, clv_study = _fit_clv(config, features, target, clv_train, seed)
                p_clv_oot = clv_model.predict(clv_oot[features])

            # What scoring needs to rebuild the same features and project CLV travels with the models.
            ranges = clv_train[features].agg(["min", "max"])
            meta = {
                "vocabulary": {
                    "categories": list(ts.vocabulary.categories),
                    "channels": list(ts.vocabulary.channels),
                },
                "label_days": clv_set.plan.label_days,
                "horizon_days": config.features.horizon_days,
                "churn_window_days": churn_set.plan.label_days,
                "target": target,
                "as_of": str(as_of.date()),
                "feature_ranges": {
                    c: [None if pd.isna(v) else float(v) for v in ranges[c]] for c in features
                },
            }
            churn_model.meta_ = meta
            clv_model.meta_ = meta

            # 5. Baselines and metrics ------------------------------------------------------------------
            step(5, "baselines and out-of-time metrics")
            clv_base = clv_baselines(clv_oot, btyd_clv_oot, clv_set.plan.label_days, target)
            churn_base = churn_baselines(oot, btyd_oot, churn_set.plan.label_days)
            y_churn = oot["churned"].to_numpy(dtype=float)
            y_clv = clv_oot[target].clip(lower=0).to_numpy(dtype=float)
            rows = _metric_rows("xgboost churn", "churn", evaluate.churn_metrics(y_churn, q_oot))
            for name, score in churn_base.items():
                m = evaluate.churn_metrics(y_churn, score)
                if not name.startswith("BG/NBD"):
                    # A score that is not a probability has no Brier score or log loss.
                    m = {
                        k: (v if k in ("roc_auc", "pr_auc", "lift_top_decile", "churn_rate") else np.nan)
                        for k, v in m.items()
                    }
                rows += _metric_rows(name, "churn", m)
            rows += _metric_rows("xgboost clv", "clv", evaluate.clv_metrics(y_clv, p_clv_oot))
            for name, pred in clv_base.items():
                rows += _metric_rows(name, "clv", evaluate.clv_metrics(y_clv, pred))
            metrics = pd.DataFrame(rows)
            ours_churn = metrics.query("task == 'churn' and model == 'xgboost churn'").set_index(
                "metric"
            )["value"]
            ours_clv = metrics.query("task == 'clv' and model == 'xgboost clv'").set_index("metric")[
                "value"
            ]

            # 6. Personas and value ---------------------------------------------------------------------
            step(6, "personas, customer value and SHAP")
            persona_features = [f for f in config.personas.features if f in oot.columns]
            dropped = sorted(set(config.personas.features) - set(persona_features))
            if dropped:
                say(f"      note: persona features not in this data, skipped: {', '.join(dropped)}")
            with tracking.start_run("personas", nested=True):
                pcfg = config.personas
                persona_model = PersonaModel(
                    features=persona_features,
                    k_min=pcfg.k_min,
                    k_max=pcfg.k_max,
                    algorithm=pcfg.algorithm,
                    silhouette_sample=pcfg.silhouette_sample,
                    stability_bootstraps=pcfg.stability_bootstraps,
                    min_share=pcfg.min_share,
                    random_state=seed,
                ).fit(oot)
                persona = persona_model.predict_names(oot)
                sil = persona_model.silhouette(oot, seed=seed)
                tracking.log_params({"k": persona_model.k_, "features": persona_features})
                tracking.log_metrics({"silhouette": sil, "k": persona_model.k_})
                tracking.log_table(persona_model.selection_, "personas/k_selection.csv")

            # CLV over the full horizon for the latest snapshot's customers (projected when the label
            # window had to be shorter than the horizon).
            p_oot = clv_model.predict(oot[features])
            ratio = (
                projection_ratio(btyd_oot, oot, clv_set.plan.label_days, config.features.horizon_days)
                if clv_set.plan.projected
                else pd.Series(1.0, index=oot.index)
            )
            expected_tx = (
                btyd_oot.bgnbd.expected_transactions(_btyd_inputs(oot), config.features.horizon_days)
                if btyd_oot.bgnbd is not None
                else pd.Series(0.0, index=oot.index)
            )
            values = customer_value(
                oot,
                pd.Series(p_oot, index=oot.index) * ratio,
                expected_tx,
                config.features.horizon_days,
                config.features.cost_per_ticket,
                config.value.annual_discount_rate,
                config.features.rate_floor_days,
            )

            # SHAP on a sample of the out-of-time customers (exact TreeSHAP from the boosters).
            rng = np.random.default_rng(seed)
            n_shap = min(config.explain.sample_size, len(oot))
            shap_idx = oot.index[np.sort(rng.choice(len(oot), size=n_shap, replace=False))]
            all_contrib = {
                "churn": churn_model.contributions(oot[features]),
                "clv": clv_model.contributions(oot[features]),
            }
            # The plots show a sample of the same exact values (computed once).
            contrib = {k: v.loc[shap_idx] for k, v in all_contrib.items()}
            drivers = {k: explain.persona_drivers(v, persona, top=3) for k, v in all_contrib.items()}
            profile = _persona_profile(
                oot, persona, q_oot, p_oot * ratio.to_numpy(), values, drivers, target
            )

            # 7. Artifacts ------------------------------------------------------------------------------
            step(7, "logging metrics, tables, plots, the report and models to MLflow")
            report_figs: dict[str, str] = {}

            def show(fig, artifact: str) -> None:
                """Log a figure and keep it for the HTML report."""
                png = report.figure_png(fig)  # rendered once, for MLflow and for the report
                tracking.log_bytes(png, artifact)
                section = Path(artifact).stem.split("_")[0]  # plots/clv_gain.png -> clv
                key = (
                    "shap/"
                    if artifact.startswith("shap/")
                    else "personas/"
                    if section == "personas"
                    else f"{section}/"
                ) + artifact
                report_figs[key] = report.png_data_uri(png)

            tracking.log_metrics({f"churn_{k}": v for k, v in ours_churn.items()})
            tracking.log_metrics({f"clv_{k}": v for k, v in ours_clv.items()})
            tracking.log_metrics({"personas_k": persona_model.k_, "personas_silhouette": sil})
            for name in churn_base:
                m = metrics.query("task == 'churn' and model == @name").set_index("metric")["value"]
                tracking.log_metrics({f"baseline_churn_{_slug(name)}_{k}": v for k, v in m.items()})
            for name in clv_base:
                m = metrics.query("task == 'clv' and model == @name").set_index("metric")["value"]
                tracking.log_metrics({f"baseline_clv_{_slug(name)}_{k}": v for k, v in m.items()})
            tracking.log_table(metrics, "metrics/oot_metrics.csv")
            tracking.log_table(_comparison(metrics), "metrics/comparison.csv")
            tracking.log_table(profile, "personas/persona_profiles.csv")
            tracking.log_table(persona_model.profile_.reset_index(drop=True), "personas/centroids.csv")
            tracking.log_table(persona_value(values, persona).reset_index(), "value/persona_value.csv")
            rel = {"xgboost churn": evaluate.reliability_curve(y_churn, q_oot)}
            if "BG/NBD P(no purchase)" in churn_base:
                rel["BG/NBD"] = evaluate.reliability_curve(y_churn, churn_base["BG/NBD P(no purchase)"])
            tracking.log_table(rel["xgboost churn"], "metrics/churn_reliability.csv")
            show(
                plots.reliability(rel, "Churn reliability (out-of-time)"), "plots/churn_reliability.png"
            )
            gains = {"xgboost churn": evaluate.gain_curve(y_churn, q_oot)}
            gains.update({k: evaluate.gain_curve(y_churn, v) for k, v in churn_base.items()})
            show(plots.gain_chart(gains, "Churn: cumulative gain (out-of-time)"), "plots/churn_gain.png")
            lifts = {
                k: evaluate.lift_by_decile(y_churn, v)
                for k, v in {"xgboost churn": q_oot, **churn_base}.items()
            }
            tracking.log_table(_stack_lifts(lifts), "metrics/churn_lift.csv")
            show(plots.lift_chart(lifts, "Churn: lift by decile (out-of-time)"), "plots/churn_lift.png")
            cal = evaluate.decile_calibration(y_clv, p_clv_oot)
            tracking.log_table(cal, "metrics/clv_decile_calibration.csv")
            show(
                plots.decile_chart(cal, "CLV decile calibration (out-of-time)"), "plots/clv_deciles.png"
            )
            gains = {"xgboost clv": evaluate.gain_curve(y_clv, p_clv_oot)}
            gains.update({k: evaluate.gain_curve(y_clv, v) for k, v in clv_base.items()})
            gains["perfect"] = evaluate.gain_curve(y_clv, y_clv)
            show(plots.gain_chart(gains, "CLV: cumulative gain (out-of-time)"), "plots/clv_gain.png")
            lifts = {
                k: evaluate.lift_by_decile(y_clv, v)
                for k, v in {"xgboost clv": p_clv_oot, **clv_base}.items()
            }
            tracking.log_table(_stack_lifts(lifts), "metrics/clv_lift.csv")
            show(plots.lift_chart(lifts, "CLV: lift by decile (out-of-time)"), "plots/clv_lift.png")
            for metric in ("roc_auc", "pr_auc"):
                show(
                    plots.metric_bars(
                        metrics.query("task == 'churn'"), metric, f"Churn {metric} (out-of-time)"
                    ),
                    f"plots/churn_{metric}.png",
                )
            for metric in ("normalized_gini", "mae"):
                show(
                    plots.metric_bars(
                        metrics.query("task == 'clv'"), metric, f"CLV {metric} (out-of-time)"
                    ),
                    f"plots/clv_{metric}.png",
                )
            show(plots.persona_chart(profile, "Personas"), "plots/personas.png")
            for task, c in contrib.items():
                imp = explain.global_importance(all_contrib[task])
                tracking.log_table(imp, f"shap/{task}_global_importance.csv")
                tracking.log_table(drivers[task], f"shap/{task}_persona_drivers.csv")
                tracking.log_table(
                    _persona_mean_shap(all_contrib[task], persona), f"shap/{task}_persona_mean_shap.csv"
                )
                show(plots.importance_bar(imp, f"{task}: mean |SHAP|"), f"shap/{task}_importance.png")
                show(
                    plots.persona_shap_heatmap(
                        _persona_mean_shap(all_contrib[task], persona),
                        list(imp["feature"].head(10)),
                        f"{task}: mean SHAP per persona (top 10 features)",
                    ),
                    f"shap/{task}_persona_shap.png",
                )
                show(
                    plots.beeswarm(c, oot.loc[shap_idx], f"{task}: SHAP values"),
                    f"shap/{task}_beeswarm.png",
                )
                for feat in imp["feature"].head(3):
                    show(
                        plots.dependence(c, oot.loc[shap_idx], feat, f"{task}: {feat}"),
                        f"shap/{task}_dependence_{feat}.png",
                    )

            # 8. Register and gate the champion (last: a run that dies before here never holds it) ------
            page = report.render_report(
                f"customer_value run {run_id} (as_of {as_of.date()})",
                {
                    **facts.get("summary", {}),
                    **{k: v for k, v in tags.items() if k not in ("notes", "status")},
                },
                report_rows,
                profile,
                _comparison(metrics),
                metrics,
                report_figs,
                {
                    f"{t} global importance": explain.global_importance(all_contrib[t]).head(15)
                    for t in ("churn", "clv")
                },
                config.model_dump(mode="json", exclude={"source_path"}),
            )
            tracking.log_text(page, "report/report.html")
            io.write_text(page, config.tracking.report_path)

            step(8, "registering models and the champion gate")
            versions: dict[str, str | None] = {}
            example = oot[features].head(5)
            register = config.tracking.register_models
            names = tracking.model_names(config.tracking.model_prefix)
            versions["churn"] = tracking.log_sklearn_model(
                churn_model,
                "churn_model",
                example,
                churn_model.predict_proba(example)[:, 1],
                names["churn"] if register else None,
            )
            versions["clv"] = tracking.log_sklearn_model(
                clv_model,
                "clv_model",
                example,
                clv_model.predict(example),
                names["clv"] if register else None,
            )
            pexample = oot[persona_features].head(5)
            versions["personas"] = tracking.log_sklearn_model(
                persona_model,
                "persona_model",
                pexample,
                persona_model.predict(pexample),
                names["personas"] if register else None,
            )
            pipeline_version = tracking.log_pipeline_model(
                {"churn": churn_model, "clv": clv_model, "personas": persona_model},
                config.model_dump(mode="json", exclude={"tracking", "source_path"}),
                {k: (v or "") for k, v in versions.items()},
                run_id,
                names["pipeline"] if register else None,
            )
            new_scores = {
                "churn": float(ours_churn["roc_auc"]),
                "clv": float(ours_clv["normalized_gini"]),
                "personas": sil,
            }
            decisions, moves = {}, []
            if register:
                decisions, moves = _champion_gate(
                    versions, new_scores, oot, clv_oot, y_churn, y_clv, seed, names
                )
                if pipeline_version is not None:
                    # The deployable chain follows the models: champion when both of its models are.
                    both = all(decisions.get(k, "").startswith("champion") for k in ("churn", "clv"))
                    moves.append(
                        (names["pipeline"], "champion" if both else "challenger", pipeline_version)
                    )
                    decisions["pipeline"] = (
                        f"{'champion' if both else 'challenger'}: "
                        f"v{pipeline_version} bundles this run's models"
                    )
                tracking.set_tags({f"champion_decision.{k}": v for k, v in decisions.items()})
            versions["pipeline"] = pipeline_version
            tracking.set_tags(
                {
                    "status": "finished",
                    "aliases.pending": tracking.encode_moves(moves),
                    **{f"model_version.{k}": str(v) for k, v in versions.items()},
                }
            )
        # The run is FINISHED here. Only now do aliases move, so a process killed at any earlier point
        # leaves a run that never finished and never holds an alias; one killed among these few calls
        # leaves a finished run whose remaining moves `customer-value doctor` completes.
        for name, alias, version in moves:
            tracking.set_alias(name, alias, version)
        if moves:
            tracking.set_run_tags(run_id, {"aliases.applied": "true"})
        return TrainResult(
            run_id,
            experiment_id,
            as_of,
            metrics,
            profile,
            decisions,
            versions,
            notes,
            time.perf_counter() - t_start,
            {"churn": churn_model, "clv": clv_model, "personas": persona_model},
        )


def _stack_lifts(lifts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One long table (model, decile, customers, lift) of per-model lift tables."""
    return pd.concat([t.assign(model=name) for name, t in lifts.items()], ignore_index=True)[
        ["model", "decile", "customers", "lift"]
    ]


def _check_as_of_in_data(as_of: pd.Timestamp, first_date, last) -> None:
    """A training as_of must lie within the data: labels are read from the days before it.

    After the last transaction, the out-of-time label window would count days the data does not
    cover as "no purchase", so every customer would look churned; before the first, no customer
    exists yet.
    """
    first, last = pd.Timestamp(first_date).normalize(), pd.Timestamp(last).normalize()
    span = f"the data runs from {first.date()} to {last.date()}"
    if as_of > last:
        raise UserError(
            f"as_of {as_of.date()} is after the last transaction ({last.date()}): the label "
            "windows would count unobserved days as no purchase",
            hint=f"{span}; omit --as-of (it defaults to the last date) or choose a date in that range",
        )
    if as_of < first:
        raise UserError(
            f"as_of {as_of.date()} is before the first transaction ({first.date()})",
            hint=f"{span}; choose an --as-of in that range",
        )


def _check_churn_classes(train: pd.DataFrame, config: Config, window_days: int) -> None:
    """Both churned and retained customers must be in every part the churn model is fitted on.

    With one class xgboost stops with a bare ValueError deep inside tuning; this names the cause
    before the tracking store is opened. The parts are the same deterministic splits as in
    :func:`_fit_churn`.
    """
    tcfg, seed = config.churn.tuning, config.project.seed
    fit_part, val_part = _split(train, tcfg.validation_share, seed)
    stop_part, _ = _split(val_part, 0.5, seed + 1)
    for part, what in (
        (train, "training snapshots"),
        (fit_part, "fitting part of the training snapshots"),
        (stop_part, "early-stopping part of the training snapshots"),
    ):
        classes = part["churned"].nunique()
        if classes < 2:
            state = (
                "no customer"
                if part.empty
                else (
                    "every customer churned" if bool(part["churned"].iloc[0]) else "no customer churned"
                )
            )
            raise UserError(
                f"the churn model cannot be trained: in the {what} {state} "
                f"({len(part)} rows, churn window {window_days} days)",
                hint="use more customers or more history, a different features.churn_window_days, "
                "or another --as-of",
            )


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _split(train: pd.DataFrame, share: float, seed: int):
    """Training part and validation part, by customer; never the out-of-time snapshot."""
    mask = split_by_customer(train["customer_id"], share, seed)
    return train[~mask], train[mask]


def _fit_churn(config, features, train, seed):
    tcfg = config.churn.tuning
    fit_part, val_part = _split(train, tcfg.validation_share, seed)
    # Half of the validation customers stop early and tune; the other half calibrate.
    stop_part, cal_part = _split(val_part, 0.5, seed + 1)
    X, y = fit_part[features], fit_part["churned"].astype(int)
    Xv, yv = stop_part[features], stop_part["churned"].astype(int)

    def fit(params, calibrate=False):
        model = ChurnModel(
            params=params,
            n_estimators=tcfg.max_estimators,
            early_stopping_rounds=tcfg.early_stopping_rounds,
            monotone=CHURN_MONOTONE,
            calibration=config.churn.calibration,
            calibration_tolerance=config.churn.calibration_tolerance,
            random_state=seed,
        )
        if calibrate:
            return model.fit(X, y, Xv, yv, cal_part[features], cal_part["churned"].astype(int))
        return model.fit(X, y, Xv, yv)

    def score(model):
        return evaluate.churn_metrics(yv, model.predict_proba(Xv)[:, 1])["roc_auc"]

    best, study = tune(
        "churn",
        fit,
        score,
        tcfg.n_trials,
        tcfg.timeout_s,
        seed,
        callbacks=[_trial_callback("val_roc_auc")],
    )
    model = fit(best, calibrate=True)
    tracking.log_params(
        {"best": best, "best_iteration": model.best_iteration_, "calibration": config.churn.calibration}
    )
    tracking.log_metrics(
        {
            "val_roc_auc": study.best_value,
            "best_iteration": model.best_iteration_,
            "calibration_ece_before": getattr(model, "ece_before_", np.nan),
            "calibration_ece_after": getattr(model, "ece_after_", np.nan),
            "calibrated": float(model.calibrator_ is not None),
        }
    )
    return model, study


def _fit_clv(config, features, target, train, seed):
    tcfg = config.clv.tuning
    fit_part, stop_part = _split(train, tcfg.validation_share, seed)
    X, y = fit_part[features], fit_part[target]
    Xv, yv = stop_part[features], stop_part[target].clip(lower=0)

    def fit(params):
        return CLVModel(
            params=params,
            objective=config.clv.objective,
            n_estimators=tcfg.max_estimators,
            early_stopping_rounds=tcfg.early_stopping_rounds,
            monotone=CLV_MONOTONE,
            random_state=seed,
        ).fit(X, y, Xv, yv)

    def score(model):
        return evaluate.normalized_gini(yv, model.predict(Xv))

    task = "clv_tweedie" if config.clv.objective == "tweedie" else "clv_two_part"
    best, study = tune(
        task,
        fit,
        score,
        tcfg.n_trials,
        tcfg.timeout_s,
        seed,
        callbacks=[_trial_callback("val_normalized_gini")],
    )
    model = fit(best)
    tracking.log_params(
        {
            "best": best,
            "best_iteration": model.best_iteration_,
            "objective": config.clv.objective,
            "target": target,
        }
    )
    tracking.log_metrics(
        {"val_normalized_gini": study.best_value, "best_iteration": model.best_iteration_}
    )
    return model, study


def _trial_callback(metric: str):
    """One nested MLflow run per Optuna trial: its params, score and early-stopping round.

    (optuna-integration's MLflowCallback does the same but is deprecated since 4.9.)
    """

    def callback(study, trial) -> None:
        with tracking.start_run(
            f"trial {trial.number}",
            nested=True,
            tags={
                "optuna.study": study.study_name,
                "optuna.trial": str(trial.number),
                "optuna.state": trial.state.name,
            },
        ):
            tracking.log_params(trial.params)
            if trial.value is not None:
                tracking.log_metrics(
                    {metric: trial.value, "best_iteration": trial.user_attrs.get("best_iteration", -1)}
                )

    return callback


def _comparison(metrics: pd.DataFrame) -> pd.DataFrame:
    """Ours against the best baseline per task and metric (higher is better except errors)."""
    lower_better = {"mae", "rmse", "brier", "log_loss", "decile_mape"}
    rows = []
    for (task, metric), grp in metrics.groupby(["task", "metric"], sort=False):
        if metric in ("churn_rate", "top_decile_capture_perfect", "aggregate_error"):
            continue
        ours = grp[grp["model"].str.startswith("xgboost")]
        base = grp[~grp["model"].str.startswith("xgboost")].dropna(subset=["value"])
        if ours.empty or base.empty:
            continue
        best = base.loc[base["value"].idxmin() if metric in lower_better else base["value"].idxmax()]
        o = float(ours["value"].iloc[0])
        wins = o < best["value"] if metric in lower_better else o > best["value"]
        rows.append(
            {
                "task": task,
                "metric": metric,
                "ours": o,
                "best_baseline": best["model"],
                "baseline_value": float(best["value"]),
                "ours_wins": bool(wins),
            }
        )
    return pd.DataFrame(rows)


def _persona_mean_shap(contrib: pd.DataFrame, persona: pd.Series) -> pd.DataFrame:
    c = contrib.drop(columns=["bias"], errors="ignore")
    return c.groupby(persona.reindex(c.index)).mean().reset_index().rename(columns={"index": "persona"})


def _persona_profile(oot, persona, q, clv, values, drivers, target) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "persona": persona,
            "churned": oot["churned"].astype(float),
            "q": q,
            "clv": clv,
            "recency": oot["days_since_last_purchase"],
            "frequency": oot["frequency"],
            "monetary": oot["monetary_mean"],
            "nps": oot.get("nps_last"),
            "value": values["net_value"],
            "cac": values["acquisition_cost"],
        },
        index=oot.index,
    )
    g = frame.groupby("persona")
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "share": g.size() / len(frame),
            "mean_days_since_last_purchase": g["recency"].mean(),
            "mean_frequency": g["frequency"].mean(),
            "mean_order_value": g["monetary"].mean(),
            "churn_rate_actual": g["churned"].mean(),
            "churn_probability_mean": g["q"].mean(),
            "predicted_clv_mean": g["clv"].mean(),
            "mean_nps": g["nps"].mean(),
            "net_value_total": g["value"].sum(),
            "net_value_mean": g["value"].mean(),
        }
    )
    for task, d in drivers.items():
        top = d.groupby("persona").apply(
            lambda x: ", ".join(f"{r.feature} ({r.mean_shap:+.2f})" for r in x.itertuples()),
            include_groups=False,
        )
        out[f"top_{task}_drivers"] = top.reindex(out.index)
    out = out.sort_values("net_value_total", ascending=False)
    return out.reset_index().rename(columns={"index": "persona"})


def _champion_gate(versions, new_scores, oot, clv_oot, y_churn, y_clv, seed, names):
    """Decide who holds ``champion``: the new version only when it beats the current one on this OOT set.

    Returns the decisions (words, for the run's tags) and the alias moves ``(name, alias, version)``;
    the caller applies the moves only after the run has finished, so a run that dies before
    finishing never holds an alias.
    """
    decisions, moves = {}, []
    for key, new_version in versions.items():
        name = names[key]
        if new_version is None:
            continue
        current = tracking.champion(name)
        new_score = new_scores[key]
        if current is None or str(current.version) == str(new_version):
            moves.append((name, "champion", new_version))
            decisions[key] = (
                f"champion: v{new_version} is the first version ({PRIMARY[key]} {new_score:.4f})"
            )
            continue
        try:
            old = tracking.load_model(name, "champion")
            if key == "churn":
                old_score = evaluate.churn_metrics(y_churn, old.predict_proba(oot[old.features_])[:, 1])[
                    "roc_auc"
                ]
            elif key == "clv":
                old_score = evaluate.normalized_gini(y_clv, old.predict(clv_oot[old.features_]))
            else:
                old_score = old.silhouette(oot, seed=seed)
        except Exception as exc:  # the champion cannot score today's features
            moves.append((name, "champion", new_version))
            decisions[key] = (
                f"champion: v{new_version} replaces v{current.version}, which cannot score "
                f"the current features ({type(exc).__name__})"
            )
            continue
        if new_score > old_score:
            moves.append((name, "champion", new_version))
            decisions[key] = (
                f"champion: v{new_version} beats v{current.version} on {PRIMARY[key]} "
                f"({new_score:.4f} > {old_score:.4f}, same out-of-time data)"
            )
        else:
            moves.append((name, "challenger", new_version))
            decisions[key] = (
                f"challenger: v{new_version} does not beat champion v{current.version} on "
                f"{PRIMARY[key]} ({new_score:.4f} <= {old_score:.4f}, same out-of-time data)"
            )
    return decisions, moves
