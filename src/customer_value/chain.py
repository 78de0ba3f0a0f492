"""The scoring chain: a frozen spec made by training, the fitted task models, and one ``score``.

Training produces a :class:`ScoringSpec` (the vocabulary, the feature settings, each task's label
window and target, the training ranges, library versions) and saves it with the models. Everything
that scores (``predict``, ``backtest``, the review notebooks, the MLflow pyfunc and Spark's
``spark_udf``) goes through :func:`score` on a :class:`Chain`, so there is one definition of a
prediction, read from what training decided, never from today's config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from customer_value import explain
from customer_value.config import DataConfig, FeatureConfig, ValueConfig
from customer_value.errors import UserError
from customer_value.features.btyd import BTYDModels
from customer_value.features.build import FeatureSet, Vocabulary, build_feature_set, check_feature_ranges
from customer_value.modeling.value import customer_value
from customer_value.schema import Column, PredictionSchema
from customer_value.tasks import Task, registered
from customer_value.tasks.base import TaskSpec
from customer_value.validate import ValidatedData, validate_tables

__all__ = [
    "ScoringSpec",
    "Chain",
    "prediction_schema",
    "score",
    "score_tables",
    "score_input",
    "previous_personas",
    "DRIVERS",
    "spec_versions",
]

DRIVERS = 3  # reason columns per explained task
_PARTS = ("feature", "value", "shap", "reason")

#: Columns of the chain itself (the tasks add theirs; see :func:`prediction_schema`).
CORE_COLUMNS = (
    Column("customer_id", "string", 0),
    Column("as_of", "datetime", 1),
    Column("expected_transactions", "float", 30, nullable=True, low=0.0),
    Column("p_alive", "float", 50, nullable=True, low=0.0, high=1.0),
    Column("net_value", "float", 60, nullable=True),
    Column("value_at_risk", "float", 70, nullable=True),
    Column("retention_rank", "int", 80, low=1.0),
)


def prediction_schema(tasks: tuple[Task, ...] | None = None) -> PredictionSchema:
    """The prediction table's columns for ``tasks`` (default: every registered task).

    Core columns, each task's outputs, ``<task>_driver_<i>_<part>`` reasons for explained tasks,
    then ``<prefix>_model_version`` and ``<prefix>_run_id`` per task.
    """
    tasks = registered() if tasks is None else tasks
    cols = list(CORE_COLUMNS)
    for k, task in enumerate(tasks):
        cols += list(task.outputs)
        if task.explained:
            for i in range(1, DRIVERS + 1):
                for j, part in enumerate(_PARTS):
                    dtype = "string" if part in ("feature", "reason") else "float"
                    order = 100 + k + i / 10 + j / 100
                    cols.append(
                        Column(f"{task.name}_driver_{i}_{part}", dtype, order, True, required=False)
                    )
        cols.append(Column(f"{task.column_prefix}_model_version", "string", 200 + k / 100))
        cols.append(Column(f"{task.column_prefix}_run_id", "string", 300 + k / 100))
    return PredictionSchema(tuple(cols))


def spec_versions() -> dict[str, str]:
    """Versions of the libraries a model's numbers depend on (recorded in the spec)."""
    import sklearn
    import xgboost

    import customer_value

    return {
        "customer_value": getattr(customer_value, "__version__", "unknown"),
        "xgboost": xgboost.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }


@dataclass(frozen=True)
class ScoringSpec:
    """What training decided and scoring must repeat (serialisable: :meth:`to_dict`).

    Attributes
    ----------
    as_of : str
        The training cutoff.
    features : FeatureConfig
        The feature settings the models were trained with (windows, vocabulary sizes, costs).
    value : ValueConfig
        The value arithmetic's settings (discount rate).
    vocabulary : Vocabulary
        Categories and channels with share features.
    tasks : dict
        Task name -> :class:`~customer_value.tasks.base.TaskSpec`.
    feature_ranges : dict
        Task name -> feature -> [min, max] of its training rows (the range check at scoring).
    versions : dict
        Library versions at training time.
    """

    as_of: str
    features: FeatureConfig
    value: ValueConfig
    vocabulary: Vocabulary
    tasks: Mapping[str, TaskSpec]
    feature_ranges: Mapping[str, Mapping[str, list]] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form (saved as the models' MLflow metadata)."""
        return {
            "as_of": self.as_of,
            "features": self.features.model_dump(mode="json"),
            "value": self.value.model_dump(mode="json"),
            "vocabulary": {
                "categories": list(self.vocabulary.categories),
                "channels": list(self.vocabulary.channels),
            },
            "tasks": {k: asdict(v) for k, v in self.tasks.items()},
            "feature_ranges": {k: dict(v) for k, v in self.feature_ranges.items()},
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> ScoringSpec:
        """The spec saved by :meth:`to_dict`; a missing key is an error, never a default."""
        try:
            return cls(
                as_of=str(d["as_of"]),
                features=FeatureConfig.model_validate(d["features"]),
                value=ValueConfig.model_validate(d["value"]),
                vocabulary=Vocabulary(
                    tuple(d["vocabulary"]["categories"]), tuple(d["vocabulary"]["channels"])
                ),
                tasks={k: TaskSpec(**v) for k, v in d["tasks"].items()},
                feature_ranges={k: dict(v) for k, v in d.get("feature_ranges", {}).items()},
                versions=dict(d.get("versions", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"the model's scoring spec is incomplete or unreadable ({type(exc).__name__}: {exc})",
                hint="retrain with this version of customer_value (`make train`)",
            ) from None

    def feature_key(self) -> tuple:
        """What decides the feature table (two specs with one key score from one table).

        The vocabulary's order only orders the share columns, which models select by name.
        """
        v = self.vocabulary
        return (frozenset(v.categories), frozenset(v.channels), self.features.model_dump_json())


@dataclass(frozen=True)
class Chain:
    """Fitted task models with the spec they were trained under.

    Attributes
    ----------
    spec : ScoringSpec
    models : dict
        Task name -> fitted estimator.
    tasks : tuple of Task
        The tasks, in fit order (kept with the chain so a pickled chain scores as it was built).
    versions, run_ids : dict
        Task name -> registry version and training run id (written into every prediction row).
    """

    spec: ScoringSpec
    models: Mapping[str, Any]
    tasks: tuple[Task, ...]
    versions: Mapping[str, str] = field(default_factory=dict)
    run_ids: Mapping[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> PredictionSchema:
        """The prediction columns this chain writes."""
        return prediction_schema(self.tasks)

    def check_features(self, features: pd.DataFrame) -> None:
        """Every model's input columns must be in ``features`` (a clear error otherwise)."""
        needed = {c for t in self.tasks for c in self.models[t.name].features_}
        missing = sorted(needed - set(features.columns))
        if missing:
            raise UserError(
                f"the features built from this data lack {len(missing)} column(s) the models were "
                f"trained on: {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else ""),
                hint="score data of the same shape as the training data (same optional columns and "
                "tables), or retrain on this data",
            )

    def core(self, features: pd.DataFrame, btyd: BTYDModels | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every task's predictions plus the value step, for the rows of ``features``.

        Returns the prediction columns (indexed like ``features``, no ranks or reasons) and the
        value components (:func:`customer_value.modeling.value.customer_value`).
        """
        cols: dict[str, np.ndarray] = {}
        for task in self.tasks:
            cols.update(task.predict(self.models[task.name], features, self.spec.tasks[task.name], btyd))
        nan = pd.Series(np.nan, index=features.index)
        if "expected_transactions" not in cols:  # no task learned it: BG/NBD's
            cols["expected_transactions"] = features.get("bgnbd_expected_transactions", nan).to_numpy(
                float
            )
        cols["p_alive"] = features.get("p_alive", nan).to_numpy(float)
        out = pd.DataFrame(cols, index=features.index)
        fc = self.spec.features
        values = customer_value(
            features,
            out["predicted_clv"],
            out["expected_transactions"].fillna(0.0),
            fc.horizon_days,
            fc.cost_per_ticket,
            self.spec.value.annual_discount_rate,
            fc.rate_floor_days,
        )
        out["net_value"] = values["net_value"]
        out["value_at_risk"] = out["churn_probability"] * out["predicted_clv"]
        return out, values

    def reasons(
        self, features: pd.DataFrame, preds: pd.DataFrame, mode: str, threshold: float | None
    ) -> pd.DataFrame:
        """Top-``DRIVERS`` SHAP reasons per explained task (exact, approx or hybrid)."""
        parts = []
        for task in self.tasks:
            if not task.explained:
                continue
            model = self.models[task.name]
            x = features[model.features_]
            if mode == "hybrid":
                exact = (preds["value_at_risk"] >= threshold).to_numpy()
                contrib = pd.concat(
                    [model.contributions(x[exact]), model.contributions(x[~exact], approx=True)]
                ).loc[x.index]
            else:
                contrib = model.contributions(x, approx=mode == "approx")
            drivers = explain.top_drivers(contrib, features, DRIVERS)
            drivers.columns = [f"{task.name}_{c}" for c in drivers.columns]
            parts.append(drivers)
        return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=features.index)


def score(
    chain: Chain,
    features: pd.DataFrame,
    as_of,
    btyd: BTYDModels | None = None,
    reasons: str = "exact",
    exact_share: float = 0.1,
    chunk_size: int = 100_000,
    progress: Callable[[int], Any] | None = None,
) -> pd.DataFrame:
    """One row per customer of ``features`` (indexed by customer_id): predictions and reasons.

    Rows are scored in chunks of ``chunk_size`` customers, so memory grows with the chunk, not the
    base. ``progress`` (e.g. a tqdm bar's ``update``) is called with each chunk's size. ``hybrid``
    reasons are exact for the ``exact_share`` with the most value at risk (who get called first),
    approximate for everyone else.
    """
    chain.check_features(features)
    starts = range(0, len(features), chunk_size)
    chunks = [features.iloc[s : s + chunk_size] for s in starts]
    preds = pd.concat([chain.core(f, btyd)[0] for f in chunks]) if chunks else pd.DataFrame()
    if reasons != "none" and len(preds):
        threshold = preds["value_at_risk"].quantile(1 - exact_share) if reasons == "hybrid" else None
        parts = []
        for s, f in zip(starts, chunks, strict=True):
            p = preds.iloc[s : s + chunk_size]  # by position: ids may repeat in a pyfunc batch
            parts.append(pd.concat([p, chain.reasons(f, p, reasons, threshold)], axis=1))
            if progress is not None:
                progress(len(f))
        out = pd.concat(parts)
    else:
        out = preds
        if progress is not None:
            progress(len(preds))
    # Rank 1 = the most value at risk; ties broken by customer id so re-runs are identical.
    order = out.reset_index().sort_values(
        ["value_at_risk", "customer_id"], ascending=[False, True], kind="stable"
    )
    rank = pd.Series(np.arange(1, len(out) + 1), index=order["customer_id"].to_numpy())
    out["retention_rank"] = rank.reindex(out.index).to_numpy()
    out.insert(0, "as_of", pd.Timestamp(as_of).normalize())
    for task in chain.tasks:
        out[f"{task.column_prefix}_model_version"] = chain.versions.get(task.name, "")
        out[f"{task.column_prefix}_run_id"] = chain.run_ids.get(task.name, "")
    out = out.reset_index()
    columns = [c for c in chain.schema.names if c in out.columns]
    return out[columns].sort_values("customer_id", kind="stable").reset_index(drop=True)


def build_features(chain: Chain, tables: ValidatedData, as_of) -> FeatureSet:
    """Features at ``as_of`` built exactly as training built them (its vocabulary and settings).

    Warns when scoring rows fall outside a model's training range (trees predict flat beyond it).
    """
    fs = build_feature_set(tables, as_of, chain.spec.features, chain.spec.vocabulary)
    # One warning, against the widest range any task's training rows covered.
    ranges = [pd.DataFrame(r, index=["min", "max"]) for r in chain.spec.feature_ranges.values() if r]
    if ranges:
        both = pd.concat(ranges)
        train = pd.DataFrame({"min": both.loc["min"].min(), "max": both.loc["max"].max()}).T
        cols = [c for c in train.columns if c in fs.frame]
        check_feature_ranges(train[cols], fs.frame, cols)
    return fs


def score_tables(
    chain: Chain, tables: ValidatedData, as_of, previous_days: int | None = None, **options
) -> pd.DataFrame:
    """Features at ``as_of`` from validated tables, then :func:`score` (the whole chain).

    With ``previous_days``, the rows also carry each customer's persona that many days earlier
    (:func:`previous_personas`).
    """
    fs = build_features(chain, tables, as_of)
    out = score(chain, fs.frame, as_of, fs.btyd, **options)
    if previous_days is not None:
        out = previous_personas(chain, tables, out, as_of, previous_days)
    return out


def previous_personas(
    chain: Chain, tables: ValidatedData, scored: pd.DataFrame, as_of, days: int
) -> pd.DataFrame:
    """``scored`` plus each customer's persona ``days`` before ``as_of`` (``previous_persona*``).

    The persona comes from this chain's persona model, whose ids carry over retrains. Empty for
    customers without a purchase by then, and for everyone when the data starts later.
    """
    task = next((t for t in chain.tasks if "previous_persona" in {c.name for c in t.outputs}), None)
    if task is None:
        return scored
    out = scored.copy()
    out["previous_persona_id"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["previous_persona"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    before = pd.Timestamp(as_of).normalize() - pd.Timedelta(days=days)
    if len(out) and before >= tables.transactions["timestamp"].min().normalize():
        fs = build_feature_set(tables, before, chain.spec.features, chain.spec.vocabulary)
        if len(fs.frame):
            prev = task.predict(chain.models[task.name], fs.frame, chain.spec.tasks[task.name], fs.btyd)
            ids = pd.Series(prev["persona_id"], index=fs.frame.index)
            names = pd.Series(prev["persona"], index=fs.frame.index)
            out["previous_persona_id"] = pd.array(ids.reindex(out["customer_id"]).to_numpy(), "Int64")
            out["previous_persona"] = names.reindex(out["customer_id"]).to_numpy()
    columns = [c for c in chain.schema.names if c in out.columns]
    return out[columns]


def score_input(
    chain: Chain, frame: pd.DataFrame, data: DataConfig, as_of=None, **options
) -> pd.DataFrame:
    """What the registered pyfunc does with one input table (``options`` go to :func:`score`).

    Transactions in the data contract are validated, turned into features and scored; feature
    rows (``customer_id`` plus the models' features, optionally ``as_of``; e.g. built on Spark and
    scored with ``spark_udf``) are scored directly, in the input's row order, with
    ``retention_rank`` only within the batch. ``previous_days`` (transactions only: earlier
    features need the history) adds each customer's earlier persona, as ``predict`` does.
    """
    previous_days = options.pop("previous_days", None)
    needed = {c for t in chain.tasks for c in chain.models[t.name].features_}
    if "amount" not in frame.columns and needed <= set(frame.columns):
        rows = frame.copy()
        given = rows.pop("as_of").iloc[0] if "as_of" in rows else None
        when = pd.Timestamp(as_of if as_of is not None else given).normalize()
        rows["customer_id"] = rows["customer_id"].astype(str)
        feats = rows.set_index("customer_id")
        if any(s.projected for s in chain.spec.tasks.values()):
            raise UserError(
                "scoring feature rows cannot project CLV from a shortened label window (the "
                "BG/NBD fit at as_of is not in the rows)",
                hint="score transactions instead, or train with a full horizon",
            )
        out = score(chain, feats, when, **options)
        return out.set_index("customer_id").loc[feats.index].reset_index()
    # The input is already in the contract's vocabulary (ISO dates): no source-specific parsing.
    data = data.model_copy(deep=True)
    data.transactions.date_format = None
    tables, _ = validate_tables(frame.copy(), data)
    when = (tables.transactions["timestamp"].max() if as_of is None else pd.Timestamp(as_of)).normalize()
    out = score_tables(chain, tables, when, previous_days, **options)
    chain.schema.validate(out)
    return out
