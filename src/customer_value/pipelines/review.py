"""Reviewing a finished training run from Python: the notebooks' entry point.

A reviewer starts from the latest run instead of from scratch::

    import shap
    from customer_value.pipelines.review import latest_run
    run = latest_run("configs/default.yaml")
    run.metrics["churn_roc_auc"], run.table("personas/persona_profiles.csv")
    features = run.features()              # point-in-time features at the run's as_of
    shap_values = run.explain(features.loc[["C000042", "C000007"]])  # shap.Explanation per task
    shap.plots.waterfall(shap_values["churn"][0])                    # why C000042 is at risk
    run.contributions(features.loc[["C000042"]])  # the same SHAP values as frames (+ ``bias``)
    run.migration()                        # who moved between personas, and their value

Everything is read from the configured tracking store; models come from the run's own artifacts
in that store, never from a path found in the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from customer_value import explain, tasks, tracking
from customer_value.chain import Chain, score
from customer_value.config import Config, load_config
from customer_value.errors import UserError
from customer_value.features.build import FeatureSet, build_feature_set
from customer_value.pipelines.data import load_data
from customer_value.pipelines.predict import chain_from_run
from customer_value.tasks.personas import migration_matrix

__all__ = ["RunView", "latest_run", "load_run"]


@dataclass
class RunView:
    """One training run: its record, its artifacts and its models, loaded on demand.

    Attributes
    ----------
    config : Config
        The config the run is read with (its tracking store and data).
    run_id, name, status : str
        The run's identity as the MLflow UI shows it.
    params, metrics, tags : dict
        What the run logged (metrics are the out-of-time ones, e.g. ``churn_roc_auc``).
    """

    config: Config
    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: pd.Timestamp
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def as_of(self) -> pd.Timestamp:
        """The cutoff the run was trained at (its out-of-time snapshots end here)."""
        return pd.Timestamp(self.tags["as_of"])

    def artifacts(self, path: str = "") -> list[str]:
        """Artifact paths under ``path`` (e.g. ``"shap"``), as the UI's artifact tree lists them."""
        return tracking.list_artifacts(self.run_id, path)

    def path(self, artifact: str) -> Path:
        """A local copy of one artifact (downloaded once per view)."""
        if artifact not in self._cache:
            self._cache[artifact] = tracking.download_artifact(self.run_id, artifact)
        return self._cache[artifact]

    def table(self, artifact: str) -> pd.DataFrame:
        """A CSV artifact as a frame, e.g. ``personas/persona_profiles.csv``."""
        return pd.read_csv(self.path(artifact))

    def text(self, artifact: str) -> str:
        """A text artifact, e.g. ``report/report.html``."""
        return self.path(artifact).read_text(encoding="utf-8")

    def metric_table(self) -> pd.DataFrame:
        """Ours and the baselines side by side on the out-of-time data (``metrics/comparison.csv``)."""
        return self.table("metrics/comparison.csv")

    @cached_property
    def chain(self) -> Chain:
        """The scoring chain this run trained (its own model artifacts and spec)."""
        versions = {t.name: self.tags.get(f"model_version.{t.name}", "") for t in tasks.registered()}
        return chain_from_run(
            self.run_id, {k: ("" if v in ("None", "") else v) for k, v in versions.items()}
        )

    def feature_set(self, as_of=None) -> FeatureSet:
        """Point-in-time features of the configured data at ``as_of`` (default: the run's).

        Built with the run's vocabulary and feature settings, exactly as ``predict`` builds them.
        """
        as_of = pd.Timestamp(as_of if as_of is not None else self.as_of).normalize()
        key = f"features@{as_of.date()}"
        if key not in self._cache:
            tables = load_data(self.config).data
            spec = self.chain.spec
            self._cache[key] = build_feature_set(tables, as_of, spec.features, spec.vocabulary)
        return self._cache[key]

    def features(self, as_of=None) -> pd.DataFrame:
        """The feature table (one row per customer, indexed by customer_id) at ``as_of``."""
        return self.feature_set(as_of).frame

    def predictions(self, as_of=None, reasons: str = "none") -> pd.DataFrame:
        """Score every customer at ``as_of`` with this run's models (the ``predict`` output)."""
        fs = self.feature_set(as_of)
        return score(self.chain, fs.frame, fs.as_of, fs.btyd, reasons=reasons)

    def migration(self, before=None, after=None) -> pd.DataFrame:
        """Who moved between personas from ``before`` to ``after``, and the value they carry.

        Both dates are scored with this run's models (persona ids are stable across retrains).
        ``after`` defaults to the run's as_of, ``before`` to ``personas.migration_days`` earlier.
        See :func:`customer_value.tasks.personas.migration_matrix` for the columns, e.g.::

            m = run.migration()
            m[(m.from_persona == "Champions") & (m.to_persona == "At risk")]
        """
        after = pd.Timestamp(after if after is not None else self.as_of).normalize()
        if before is None:
            before = after - pd.Timedelta(days=self.config.personas.migration_days)
        before = pd.Timestamp(before).normalize()
        if before >= after:
            raise UserError(
                f"migration: before ({before.date()}) must be earlier than after ({after.date()})"
            )
        b = self.predictions(before).set_index("customer_id")
        a = self.predictions(after).set_index("customer_id")
        return migration_matrix(b, a)

    def contributions(self, features: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Exact SHAP contributions per customer for every explained task (churn and CLV).

        Parameters
        ----------
        features : DataFrame
            Rows of :meth:`features` (indexed by customer_id), e.g. ``run.features().loc[ids]``.

        Returns
        -------
        dict of DataFrame
            Task -> one column per model feature plus ``bias``; a row sums to the model's raw
            margin (log-odds for churn, log of expected CLV for Tweedie).
        """
        models = self.chain.models
        return {
            t.name: models[t.name].contributions(features[models[t.name].features_])
            for t in self.chain.tasks
            if t.explained
        }

    def explain(self, features: pd.DataFrame) -> dict:
        """The same SHAP values as ``shap.Explanation`` objects, for ``shap.plots.*``.

        Parameters
        ----------
        features : DataFrame
            Rows of :meth:`features` (indexed by customer_id), e.g. ``run.features().loc[ids]``.

        Returns
        -------
        dict of shap.Explanation
            Task -> values (customers × model features), base values (the ``bias`` of
            :meth:`contributions`), the feature values and names; row ``i`` is customer
            ``features.index[i]``, so ``shap.plots.waterfall(run.explain(f)["churn"][0])`` draws
            why the first customer is at risk, in log-odds.
        """
        return {
            task: explain.explanation(c, features) for task, c in self.contributions(features).items()
        }

    def reasons(self, features: pd.DataFrame, n: int = 3) -> dict[str, pd.DataFrame]:
        """The top ``n`` drivers per customer in words, as the predictions' reason columns."""
        return {
            task: explain.top_drivers(c, features, n) for task, c in self.contributions(features).items()
        }


def load_run(config: Config | str | Path, run_id: str) -> RunView:
    """A :class:`RunView` of one run of the configured store."""
    config = _config(config)
    tracking.setup(config.tracking, config.tracking.experiment or config.project.name)
    return _view(config, tracking.get_run(run_id))


def latest_run(config: Config | str | Path = "configs/default.yaml") -> RunView:
    """The newest finished training run of the configured experiment.

    Raises
    ------
    UserError
        When the store holds no finished training run yet.
    """
    config = _config(config)
    experiment = config.tracking.experiment or config.project.name
    tracking.setup(config.tracking, experiment)
    record = tracking.latest_run(experiment)
    if record is None:
        raise UserError(
            f"no finished training run in experiment '{experiment}'",
            where=f"tracking store {tracking.redact(config.tracking.tracking_uri)}",
            hint="run `make train` (or `customer-value train --config ...`) first",
        )
    return _view(config, record)


def _config(config: Config | str | Path) -> Config:
    return config if isinstance(config, Config) else load_config(Path(config))


def _view(config: Config, record: dict) -> RunView:
    return RunView(
        config=config,
        run_id=record["run_id"],
        experiment_id=record["experiment_id"],
        name=record["name"],
        status=record["status"],
        start_time=record["start_time"],
        params=record["params"],
        metrics=record["metrics"],
        tags=record["tags"],
    )
