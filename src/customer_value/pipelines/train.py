"""The main job in named steps: preflight, data, training set, fit, assess, explain, log, gate.

Everything the models are judged on is computed on out-of-time snapshots, which no fit, tuning
trial, early stop or calibration ever sees. Every step loops over the registered tasks
(:mod:`customer_value.tasks`); MLflow is reached only through :mod:`customer_value.tracking` and
what a run logs is :mod:`customer_value.pipelines.run_log`'s business. Aliases move last, after
the run has finished, so a run that dies midway never holds one.
"""

from __future__ import annotations

import json
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value import engines, explain, tasks, tracking
from customer_value.chain import Chain, ScoringSpec, spec_versions
from customer_value.config import Config
from customer_value.engines.base import Engine, Loaded
from customer_value.features.btyd import BTYDModels
from customer_value.features.build import LabelWindow, TaskSet, TrainingSet
from customer_value.pipelines import run_log
from customer_value.pipelines.data import ensure_data
from customer_value.pipelines.doctor import reap_dead_runs
from customer_value.pipelines.features import parse_as_of
from customer_value.pipelines.gate import champion_gate, pipeline_decision
from customer_value.pipelines.options import check_as_of_in_data, check_output
from customer_value.tasks.base import TaskData, TaskSpec
from customer_value.tasks.personas import migration_matrix, persona_profile

__all__ = ["TrainResult", "run_train", "Progress", "label_windows", "task_data"]


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
    chain: Chain | None = None


@dataclass
class Progress:
    """Numbered step lines (``[i/N] text (Ns)``) on the job's output; kill tests key on them."""

    say: Callable[[str], None]
    total: int
    start: float = field(default_factory=time.perf_counter)
    done: int = 0

    def step(self, text: str) -> None:
        """Announce the next step."""
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {text} ({time.perf_counter() - self.start:.0f}s)")

    def note(self, text: str) -> None:
        """An indented line under the current step."""
        self.say(f"      {text}")


@dataclass
class Snapshots:
    """The training set, each task's rows and the reference rows (the latest out-of-time snapshot)."""

    training: TrainingSet
    data: dict[str, TaskData]
    reference: pd.DataFrame
    reference_btyd: BTYDModels
    notes: list[str]
    reference_set: TaskSet | None = None


def label_windows(config: Config) -> dict[str, LabelWindow]:
    """Each labelled task's label window and columns, in fit order."""
    return {
        t.name: LabelWindow(
            t.window_days(config),
            t.label_columns,
            f"{t.name.upper()} predictions" if t.prediction_window_days(config) else "",
        )
        for t in tasks.labelled(config)
    }


def task_data(config: Config, ts: TrainingSet) -> Snapshots:
    """Per task: training rows, out-of-time rows (by customer_id), the BTYD fits at its cutoff."""
    features = ts.feature_columns
    data = {}
    for name, tset in ts.tasks.items():
        task = tasks.get(name)
        data[name] = TaskData(
            tset.train,
            tset.oot.set_index("customer_id"),
            ts.btyd[tset.plan.oot_cutoff],
            tset.plan,
            task.target(config, tset.frame),
            features,
            tset.serving,
            current=ts.current,
        )
    refs = [t.name for t in tasks.labelled(config) if t.reference and t.name in ts.tasks]
    latest = ts.tasks[refs[0]] if refs else ts.latest
    reference = latest.oot.set_index("customer_id")
    ref_btyd = ts.btyd[latest.plan.oot_cutoff]
    for task in tasks.registered():
        if task.name not in data:  # no labels: fitted and judged on the reference rows
            data[task.name] = TaskData(reference.iloc[:0], reference, ref_btyd, None, None, features)
    return Snapshots(ts, data, reference, ref_btyd, [], latest)


# -- steps ----------------------------------------------------------------------------------------
def preflight(config: Config, as_of) -> pd.Timestamp | None:
    """Arguments and the tracking store, before anything is simulated, read or written."""
    wanted = parse_as_of(as_of)  # idempotent: the CLI has parsed it already
    tracking.check_store(config.tracking, writes_report=True)
    check_output(config.tracking.report_path, config, "tracking.report_path")
    return wanted


def load(config: Config, engine: Engine, wanted, progress: Progress) -> tuple[Loaded, pd.Timestamp]:
    """Simulate when configured and absent, read and validate; fix the training as_of."""
    progress.step("data: simulate if needed, read and validate")
    if ensure_data(config):
        kind = config.simulation.kind if config.simulation is not None else "btyd"
        progress.note(f"simulated the {kind} customer base into {config.data.transactions.path.parent}")
    loaded = engine.load(config)
    as_of = (wanted if wanted is not None else loaded.last).normalize()
    check_as_of_in_data(as_of, loaded.facts["summary"]["first_date"], loaded.last)
    for text in loaded.facts.get("warnings", []):
        progress.note(f"warning: {text}")
    return loaded, as_of


def training_set(
    config: Config, engine: Engine, loaded: Loaded, as_of: pd.Timestamp, progress: Progress
) -> Snapshots:
    """Stacked snapshots per task; every task checks it can learn from them (before any store)."""
    progress.step(f"features and training snapshots before {as_of.date()} ({engine.name})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ts = engine.training_set(loaded, as_of, config, label_windows(config))
    snaps = task_data(config, ts)
    snaps.notes = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
    for note in snaps.notes:
        progress.note(f"note: {note}")
    for task in tasks.registered():
        task.check(config, snaps.data[task.name])
    return snaps


def fit_tasks(config: Config, snaps: Snapshots, progress: Progress) -> dict[str, object]:
    """Fit every task in its own nested run (one more nested run per tuning trial).

    A task that ``inherits`` (personas: ids and names) gets the registry's champion of its model.
    """
    models = {}
    names = tracking.model_names(config.tracking.model_prefix)
    for task in tasks.registered():
        trials = task.trials(config)
        progress.step(f"{task.name} model" + (f": {trials} Optuna trials" if trials else ""))
        data = snaps.data[task.name]
        if task.inherits and config.tracking.register_models:
            data = replace(data, previous=_champion_model(names[task.name]))
        with tracking.start_run(task.name, nested=True):
            callbacks = [run_log.trial_callback(task.tuning_metric)] if trials else []
            result = task.fit(config, data, config.project.seed, callbacks)
            run_log.log_fit(result)
        for note in result.notes:
            progress.note(f"note: {note}")
        models[task.name] = result.model
    return models


def scoring_spec(config: Config, snaps: Snapshots, as_of: pd.Timestamp) -> ScoringSpec:
    """What scoring must repeat, frozen from this training (saved with every model)."""
    specs, ranges = {}, {}
    for task in tasks.registered():
        d = snaps.data[task.name]
        specs[task.name] = TaskSpec(
            d.plan.label_days if d.plan else None, task.prediction_window_days(config), d.target
        )
        if len(d.train):
            r = d.train[d.features].agg(["min", "max"])
            ranges[task.name] = {c: [None if pd.isna(v) else float(v) for v in r[c]] for c in d.features}
    return ScoringSpec(
        str(as_of.date()),
        config.features,
        config.value,
        snaps.training.vocabulary,
        specs,
        ranges,
        spec_versions(),
    )


def assess(config: Config, snaps: Snapshots, models: dict, progress: Progress):
    """Every task and its baselines on its out-of-time rows: the tidy metrics table."""
    progress.step("baselines and out-of-time metrics")
    assessments = {
        t.name: t.assess(models[t.name], snaps.data[t.name], config) for t in tasks.registered()
    }
    rows = [r for a in assessments.values() for r in a.rows]
    return assessments, pd.DataFrame(rows, columns=["task", "model", "metric", "value"])


def serve(config: Config, snaps: Snapshots, models: dict, assessments, progress: Progress) -> dict:
    """What each task serves: refits on the latest windows, blends, or a classical model."""
    progress.step("serving models: refit on the latest windows, gate against the classical models")
    served = {}
    for task in tasks.registered():
        result = task.serve(models[task.name], snaps.data[task.name], config, assessments[task.name])
        if result.decision:
            progress.note(f"{task.name}: {result.decision}")
            tracking.set_tags({f"{task.name}.serving": result.decision[:4000]})
        if result.params:
            tracking.log_text(json.dumps(result.params, indent=1), f"serving/{task.name}.json")
        served[task.name] = result.model
    return served


@dataclass
class Explained:
    """The reference rows scored by the chain, with value, SHAP and the persona profile."""

    scored: pd.DataFrame
    values: pd.DataFrame
    contributions: dict[str, pd.DataFrame]
    sample: pd.Index
    drivers: dict[str, pd.DataFrame]
    profile: pd.DataFrame
    migration: pd.DataFrame | None = None
    migration_dates: tuple[pd.Timestamp, pd.Timestamp] | None = None


def explain_reference(config: Config, chain: Chain, snaps: Snapshots, progress: Progress) -> Explained:
    """Score the reference rows with the chain; exact TreeSHAP for every explained task."""
    progress.step("personas, customer value and SHAP")
    ref = snaps.reference
    scored, values = chain.core(ref, snaps.reference_btyd)
    rng = np.random.default_rng(config.project.seed)
    n = min(config.explain.sample_size, len(ref))
    sample = ref.index[np.sort(rng.choice(len(ref), size=n, replace=False))]
    contrib = {
        t.name: chain.models[t.name].contributions(ref[chain.models[t.name].features_])
        for t in chain.tasks
        if t.explained
    }
    drivers = {k: explain.persona_drivers(v, scored["persona"], top=3) for k, v in contrib.items()}
    profile = persona_profile(ref, scored, values, drivers)
    migration, dates = reference_migration(chain, snaps, scored)
    return Explained(scored, values, contrib, sample, drivers, profile, migration, dates)


def reference_migration(chain: Chain, snaps: Snapshots, scored: pd.DataFrame):
    """Persona migration from the snapshot before the reference rows' to theirs (same models).

    Both dates' features were built for training already; None when there is one snapshot.
    """
    frame = snaps.reference_set.frame
    cutoff = snaps.reference_set.plan.oot_cutoff
    earlier = sorted(d for d in frame["as_of"].unique() if d < cutoff)
    if not earlier:
        return None, None
    before_at = pd.Timestamp(earlier[-1])
    rows = frame[frame["as_of"] == before_at].set_index("customer_id")
    before, _ = chain.core(rows, snaps.training.btyd[before_at])
    return migration_matrix(before, scored), (before_at, pd.Timestamp(cutoff))


def register(
    config: Config, chain: Chain, snaps: Snapshots, assessments, run_id: str, progress: Progress
):
    """Log and register every model and the chain; decide the aliases (moved after the run ends)."""
    progress.step("registering models and the champion gate")
    register_models = config.tracking.register_models
    names = tracking.model_names(config.tracking.model_prefix)
    spec = {"scoring_spec": chain.spec.to_dict()}
    versions: dict[str, str | None] = {}
    for task in chain.tasks:
        model = chain.models[task.name]
        example = task.model_input(model, snaps.reference).head(5)
        versions[task.name] = tracking.log_sklearn_model(
            model,
            f"{task.column_prefix}_model",
            example,
            task.model_output(model, example),
            names[task.name] if register_models else None,
            metadata=spec,
        )
    options = config.predict.model_dump(mode="json", include={"reasons", "exact_share", "chunk_size"})
    options["previous_days"] = config.personas.migration_days  # as predict does
    pipeline_version = tracking.log_pipeline_model(
        Chain(
            chain.spec,
            chain.models,
            chain.tasks,
            {k: (v or "") for k, v in versions.items()},
            dict.fromkeys(versions, run_id),
        ),
        config.data.model_dump(mode="json"),
        options,
        names[tracking.PIPELINE] if register_models else None,
    )
    decisions, moves = {}, []
    if register_models:
        # The served models on both sides (the champion is a served model too): like for like.
        scores = {
            t.name: t.gate_score(chain.models[t.name], snaps.data[t.name], config) for t in chain.tasks
        }
        decisions, moves = champion_gate(chain.tasks, versions, scores, snaps.data, config, names)
        if pipeline_version is not None:
            text, move = pipeline_decision(chain.tasks, decisions, pipeline_version, names)
            decisions[tracking.PIPELINE], moves = text, [*moves, move]
        tracking.set_tags({f"champion_decision.{k}": v for k, v in decisions.items()})
    versions[tracking.PIPELINE] = pipeline_version
    return versions, decisions, moves


# -- the job --------------------------------------------------------------------------------------
def run_train(
    config: Config, as_of=None, say: Callable[[str], None] = print, nested: bool = False
) -> TrainResult:
    """Train, evaluate, explain and track. ``as_of`` defaults to the last date in the data.

    ``nested=True`` logs the run under the active run (the backtest's per-cutoff runs).
    """
    registered = tasks.registered()
    progress = Progress(say, total=len(registered) + 8)
    wanted = preflight(config, as_of)
    engine = engines.get(config)
    loaded, as_of = load(config, engine, wanted, progress)
    snaps = training_set(config, engine, loaded, as_of, progress)
    # One training run at a time per SQLite store: a second one waits here (after its data work),
    # so the champion gate never races and SQLite never sees two writers.
    with tracking.store_lock(config.tracking, say):
        experiment_id = _open_store(config, progress)
        tags = _run_tags(config, as_of, snaps, loaded)
        with tracking.start_run(f"train {as_of.date()}", nested=nested, tags=tags) as parent:
            run_id = parent.info.run_id
            run_log.log_inputs(config, snaps, loaded)
            fitted = fit_tasks(config, snaps, progress)
            assessments, metrics = assess(config, snaps, fitted, progress)
            models = serve(config, snaps, fitted, assessments, progress)
            chain = Chain(scoring_spec(config, snaps, as_of), models, registered)
            ex = explain_reference(config, chain, snaps, progress)
            progress.step("logging metrics, tables, plots, the report and models to MLflow")
            run_log.log_outcome(config, chain, assessments, metrics, ex, snaps, loaded, tags, run_id)
            versions, decisions, moves = register(config, chain, snaps, assessments, run_id, progress)
            tracking.set_tags(
                {
                    "status": "finished",
                    "aliases.pending": tracking.encode_moves(moves),
                    **{f"model_version.{k}": str(v) for k, v in versions.items()},
                }
            )
        # The run is FINISHED here. Only now do aliases move, so a process killed at any earlier
        # point leaves a run that never finished and never holds an alias; one killed among these
        # few calls leaves a finished run whose remaining moves `customer-value doctor` completes.
        progress.step(f"moving {len(moves)} registry aliases")
        _apply_moves(run_id, moves)
    return TrainResult(
        run_id,
        experiment_id,
        as_of,
        metrics,
        ex.profile,
        decisions,
        versions,
        snaps.notes,
        time.perf_counter() - progress.start,
        dict(models),
        chain,
    )


# -- helpers --------------------------------------------------------------------------------------
def _open_store(config: Config, progress: Progress) -> str:
    experiment_id = tracking.setup(config.tracking, config.tracking.experiment or config.project.name)
    started = f"train run started at {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M:%S} UTC"
    for run in reap_dead_runs(started):
        progress.note(f"note: run {run} was killed before it finished; marked KILLED")
    return experiment_id


def _run_tags(config: Config, as_of: pd.Timestamp, snaps: Snapshots, loaded: Loaded) -> dict:
    tags = {"as_of": str(as_of.date())}
    for name, tset in snaps.training.tasks.items():
        d = snaps.data[name]
        tags[f"{name}.oot_cutoff"] = str(tset.plan.oot_cutoff.date())
        tags[f"{name}.train_cutoffs"] = ",".join(str(c.date()) for c in tset.plan.train_cutoffs)
        tags[f"{name}.label_days"] = str(tset.plan.label_days)
        tags[f"{name}.target"] = str(d.target)
        projects = tasks.get(name).prediction_window_days(config) is not None
        tags[f"{name}.projected"] = str(tset.plan.projected and projects).lower()
    tags["git_commit"] = _git_commit(Path(__file__).resolve().parent)
    tags["status"] = "running"
    tags.update(loaded.fingerprint)
    if snaps.notes:
        tags["notes"] = " | ".join(snaps.notes)
    return tags


def _apply_moves(run_id: str, moves: list[tuple[str, str, str]]) -> None:
    for name, alias, version in moves:
        tracking.set_alias(name, alias, version)
    if moves:
        tracking.set_run_tags(run_id, {"aliases.applied": "true"})


def _champion_model(name: str):
    """The registry's champion of ``name``, or None (none yet, or it no longer loads)."""
    if tracking.champion(name) is None:
        return None
    try:
        return tracking.load_model(name)
    except Exception:  # e.g. pickled by an incompatible version: start identities afresh
        return None


def _git_commit(path: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
