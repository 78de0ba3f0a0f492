"""The only module that imports MLflow: small ``log_*`` functions and registry helpers.

Pipelines call these; domain code never does. The default store is SQLite (``mlflow.db`` at the
project root) with artifacts in ``mlartifacts/``; any tracking URI works through configuration.
Models are registered under fixed names and served by alias (``models:/customer-value-churn@champion``),
never by the deprecated stages.
"""

from __future__ import annotations

import contextlib
import functools
import io as _io
import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from customer_value.config import TrackingConfig
from customer_value.errors import UserError
from customer_value.io import check_database_url, check_writable
from customer_value.processes import pid_alive, process_start
from customer_value.redaction import redact_tree

__all__ = [
    "PIPELINE",
    "model_kinds",
    "model_names",
    "check_store",
    "setup",
    "start_run",
    "log_params",
    "log_metrics",
    "log_table",
    "log_text",
    "log_figure",
    "log_bytes",
    "log_dataset",
    "log_sklearn_model",
    "set_tags",
    "champion",
    "set_alias",
    "load_model",
    "model_metadata",
    "latest_run",
    "get_run",
    "list_artifacts",
    "download_artifact",
    "load_run_model",
    "redact",
]

PIPELINE = "pipeline"  # the registered name suffix of the deployable chain


def model_kinds() -> tuple[str, ...]:
    """Registered model kinds: one per task, then the deployable chain."""
    from customer_value.tasks import registered  # on use: importing tracking stays light

    return (*(t.name for t in registered()), PIPELINE)


def model_names(prefix: str = "customer-value") -> dict[str, str]:
    """Registered model names, e.g. ``customer-value-churn`` (the prefix comes from the config).

    One per registered task, and ``pipeline``: the deployable chain (features → every task →
    value → reasons) as one pyfunc model.

    Each dataset gets its own prefix so that models of one business never compete with (or
    replace) another's champion in a shared registry.
    """
    return {kind: f"{prefix}-{kind}" for kind in model_kinds()}


def redact(text: str) -> str:
    """Hide every password or token of a URL in ``text`` (see :mod:`customer_value.redaction`)."""
    from customer_value.redaction import redact as _redact

    return _redact(text)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Hide MLflow's per-file download progress bars (noise in notebooks and CLI output)."""
    import os

    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _mlflow():
    import mlflow

    # MLflow's own INFO chatter (migrations, experiment creation) is noise for a CLI user.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return mlflow


def check_store(
    tracking: TrackingConfig,
    *,
    must_exist: bool = False,
    writes_report: bool = False,
    timeout_s: float = 5.0,
) -> None:
    """Fail fast, before any work or write, when the tracking store cannot serve this job.

    A tracking server that does not answer would otherwise surface only after the data and
    snapshot steps, and then after MLflow's HTTP retries with backoff (minutes). A local store
    that does not exist yet cannot hold a champion: opening it to look would create it.

    Parameters
    ----------
    tracking : TrackingConfig
        The configured store.
    must_exist : bool
        True for jobs that only read the registry (predict): a missing local store is an error
        instead of being created.
    writes_report : bool
        The job writes ``tracking.report_path`` (train, backtest, evaluate): it must be writable.
    timeout_s : float
        Seconds to wait for a TCP connection to an ``http(s)`` server.

    Raises
    ------
    UserError
        The server refuses or does not answer, or the local store is missing; the message names
        the URI with any password hidden.
    """
    import socket
    import urllib.parse
    import urllib.request

    uri = tracking.tracking_uri
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = None
        if port is None:
            raise UserError(
                "the tracking URI has an invalid port",
                where=f"tracking URI {redact(uri)}",
                hint="fix tracking.uri in the config, e.g. http://127.0.0.1:5000",
            )
        # Behind a proxy only the proxy is reachable directly: leave the probe to MLflow there.
        if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
            return
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UserError(
                f"cannot reach the MLflow tracking server ({reason})",
                where=f"tracking URI {redact(uri)}",
                hint="start the server (e.g. `mlflow server`), fix tracking.uri in the config, or "
                "remove tracking.uri to use the local SQLite store at tracking.db_path",
            ) from None
    elif parts.scheme not in ("sqlite", "file", "") and "databricks" not in parts.scheme:
        # A database server (postgresql://, mysql+pymysql://): driver installed, server answers.
        check_database_url(uri, "tracking.uri", timeout_s=timeout_s)
    if parts.scheme == "sqlite" and not must_exist:
        check_database_url(uri, _store_option(tracking), create_folder=True)
    if tracking.uri is None and not must_exist:
        check_writable(tracking.artifact_dir, "tracking.artifact_dir", folder_ok=True)
    if writes_report:
        check_writable(tracking.report_path, "tracking.report_path")
    if must_exist and parts.scheme in ("sqlite", "file", ""):
        # sqlite:////abs/path.db -> /abs/path.db; file:///abs/mlruns -> /abs/mlruns.
        local = uri[len("sqlite:///") :] if parts.scheme == "sqlite" else parts.path
        if local and local != ":memory:" and not Path(local).exists():
            raise UserError(
                "no champion: the tracking store does not exist yet, so no model has been trained "
                "into it",
                where=f"tracking store {redact(local)}",
                hint="run `make train` (or `customer-value train --config ...`) first, or point "
                "tracking.db_path (or tracking.uri) at the store that holds your models",
            )


def _store_option(tracking: TrackingConfig) -> str:
    return "tracking.uri" if tracking.uri is not None else "tracking.db_path"


def setup(config: TrackingConfig, experiment: str, create: bool = True) -> str | None:
    """Point MLflow at the configured store and experiment; return the experiment id.

    ``create=False`` (jobs that only read: predict) never creates the experiment; it returns None
    when the experiment does not exist.

    Raises
    ------
    UserError
        When the store cannot be reached or opened (the message hides credentials).
    """
    mlflow = _mlflow()
    uri = config.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None and not create:
            return None
        if exp is None:
            artifact_dir = Path(config.artifact_dir).resolve() / experiment
            location = artifact_dir.as_uri() if config.uri is None else None
            exp_id = mlflow.create_experiment(experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        mlflow.set_experiment(experiment_id=exp_id)
    except Exception as exc:  # MLflow raises many types for an unreachable or broken store
        raise UserError(
            f"cannot open the MLflow tracking store: {redact(str(exc).splitlines()[0])}",
            where=f"tracking URI {redact(uri)}",
            hint="check tracking.uri (or tracking.db_path) in the config and that the store is "
            "reachable",
        ) from None
    return exp_id


def process_identity() -> dict[str, str]:
    """Tags that let a later process tell whether the process that started a run still runs."""
    import os
    import socket

    pid = os.getpid()
    return {
        "process.host": socket.gethostname(),
        "process.pid": str(pid),
        "process.start": process_start(pid) or "",
    }


def process_alive(tags: Mapping[str, str]) -> bool | None:
    """Whether the process recorded in a run's tags still runs: True, False, or None (unknown).

    None when the run was started on another host or has no process tags (an older run); see
    :func:`customer_value.processes.pid_alive` for zombies and pid reuse.
    """
    import socket

    if tags.get("process.host") != socket.gethostname() or not tags.get("process.pid"):
        return None
    return pid_alive(int(tags["process.pid"]), tags.get("process.start") or None)


@contextlib.contextmanager
def start_run(name: str, nested: bool = False, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Start a (nested) run; on an exception the run is marked FAILED and the error re-raised.

    Every run carries the host, pid and start time of its process, so that a run whose process
    was killed (and so could not end it) is recognised later: see :func:`unfinished_runs`.
    """
    mlflow = _mlflow()
    run = mlflow.start_run(run_name=name, nested=nested, tags={**process_identity(), **dict(tags or {})})
    try:
        yield run
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def log_params(params: Mapping) -> None:
    """Log a nested mapping as flat ``a.b.c`` params (values as strings, credentials hidden)."""
    flat = {
        k: redact(json.dumps(v) if isinstance(v, list | tuple) else str(v))[:6000]
        for k, v in _flatten(params).items()
    }
    _mlflow().log_params(flat)


def log_metrics(metrics: Mapping[str, float], prefix: str = "") -> None:
    """Log finite numeric metrics (NaN ones are skipped: MLflow cannot plot them)."""
    clean = {}
    for k, v in metrics.items():
        try:
            fv = float(v)
        except (TypeError, ValueError):
            continue
        if fv == fv and abs(fv) != float("inf"):
            clean[f"{prefix}{k}"] = fv
    _mlflow().log_metrics(clean)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set run tags (credentials hidden)."""
    _mlflow().set_tags({k: redact(str(v))[:5000] for k, v in tags.items()})


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a frame as a CSV artifact (readable in the UI's artifact viewer)."""
    buf = _io.StringIO()
    frame.to_csv(buf, index=False)
    log_text(buf.getvalue(), artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    """Log text as an artifact."""
    _mlflow().log_text(redact(text), artifact_file)  # artifacts are read by everyone with UI access


def log_figure(fig, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG artifact."""
    _mlflow().log_figure(fig, artifact_file)


def log_bytes(data: bytes, artifact_file: str) -> None:
    """Log raw bytes (e.g. a PNG rendered once for both MLflow and the report) as an artifact."""
    import tempfile

    mlflow = _mlflow()
    path = Path(artifact_file)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        local.write_bytes(data)
        mlflow.log_artifact(
            str(local), artifact_path=str(path.parent) if str(path.parent) != "." else None
        )


def log_dataset(frame: pd.DataFrame, name: str, context: str, targets: str | None = None) -> None:
    """Log a dataset (schema, digest, size) as a run input with ``mlflow.data``."""
    mlflow = _mlflow()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = mlflow.data.from_pandas(frame, name=name, targets=targets)
        mlflow.log_input(ds, context=context)


@functools.cache
def _pip_requirements() -> tuple[str, ...]:
    """The scoring environment, pinned to what is installed here.

    Stated instead of inferred: MLflow's inference imports the model in a subprocess per model
    (about 4 s each, 40 % of a small training run). The models also need this package
    (customer_value) importable: they are served with ``env_manager="local"``.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in (
        "mlflow",
        "xgboost",
        "scikit-learn",
        "pandas",
        "numpy",
        "scipy",
        "pyarrow",
        "cloudpickle",
    ):
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return tuple(out)


def log_sklearn_model(
    model,
    name: str,
    input_example: pd.DataFrame,
    output,
    registered_name: str | None,
    metadata: Mapping[str, Any] | None = None,
):
    """Log a fitted estimator with its signature, input example and metadata; register it if asked.

    ``metadata`` (the scoring spec) is stored in the model's MLmodel file and read back with
    :func:`model_metadata`. Returns the registered version (str) or None.
    """
    mlflow = _mlflow()
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, output)
    # cloudpickle: the models are our own classes around xgboost boosters, which skops cannot
    # load without trusting them anyway; models are only ever loaded from the configured registry.
    mlflow_logger = logging.getLogger("mlflow.sklearn")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        # MLflow prints "Successfully registered model ..." to stderr; the run summary says it.
        with warnings.catch_warnings(), contextlib.redirect_stderr(_io.StringIO()):
            warnings.simplefilter("ignore")
            info = mlflow.sklearn.log_model(
                model,
                name=name,
                signature=signature,
                input_example=input_example,
                serialization_format="cloudpickle",
                registered_model_name=registered_name,
                pip_requirements=list(_pip_requirements()),
                metadata=dict(metadata or {}),
            )
    finally:
        mlflow_logger.setLevel(level)
    version = getattr(info, "registered_model_version", None)
    return str(version) if version is not None else None


def _pipeline_class():
    """The pyfunc wrapper of the whole chain (defined lazily: mlflow is imported on use only)."""
    import mlflow.pyfunc

    class CustomerValuePipeline(mlflow.pyfunc.PythonModel):
        """Transactions in (data contract columns), predictions out: the same as ``predict``.

        ``params={"as_of": "YYYY-MM-DD"}`` sets the cutoff (default: the last date in the input).
        Only the transactions table travels through a single input, so features from the
        optional customers and interactions tables are missing, as they would be for
        ``customer-value predict`` on a config without those tables. It only calls down into
        :func:`customer_value.chain.score_input`.
        """

        def __init__(self, chain, data_config: Mapping, options: Mapping):
            self.chain = chain
            self.data_config = dict(data_config)
            self.options = dict(options)

        def predict(self, context, model_input, params=None):
            from customer_value.chain import score_input
            from customer_value.config import DataConfig

            data = DataConfig.model_validate(self.data_config)
            return score_input(
                self.chain, model_input, data, (params or {}).get("as_of"), **self.options
            )

    return CustomerValuePipeline


def log_pipeline_model(
    chain, data_config: Mapping, options: Mapping, registered_name: str | None
) -> str | None:
    """Log (and register) the whole scoring chain as one pyfunc model; return its version."""
    mlflow = _mlflow()
    # MLflow prints a suggestion to add type hints to predict (with its own warning filter, so
    # only stderr can hide it); the chain's input is a table of the data contract.
    with contextlib.redirect_stderr(_io.StringIO()):
        cls = _pipeline_class()
    with warnings.catch_warnings(), contextlib.redirect_stderr(_io.StringIO()):
        warnings.simplefilter("ignore")
        info = mlflow.pyfunc.log_model(
            name="pipeline_model",
            python_model=cls(chain, redact_tree(dict(data_config)), options),
            registered_model_name=registered_name,
            pip_requirements=list(_pip_requirements()),
            metadata={"scoring_spec": chain.spec.to_dict()},
        )
    version = getattr(info, "registered_model_version", None)
    return str(version) if version is not None else None


def load_pyfunc(uri: str):
    """Load a pyfunc model (e.g. ``models:/customer-value-pipeline@champion``)."""
    mlflow = _mlflow()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlflow.pyfunc.load_model(uri)


def spark_udf(spark, model_uri: str, result_type, tracking_uri: str):
    """``mlflow.pyfunc.spark_udf`` for a registered model, in this interpreter's environment."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")


def champion(name: str, alias: str = "champion"):
    """The registered model version holding ``alias``, or None."""
    client = _mlflow().MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:  # no such model or alias
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    """Point ``alias`` of a registered model at ``version``."""
    _mlflow().MlflowClient().set_registered_model_alias(name, alias, str(version))


def load_model(name: str, alias: str = "champion"):
    """Load ``models:/<name>@<alias>`` from the configured registry (scikit-learn flavour)."""
    mlflow = _mlflow()
    with warnings.catch_warnings(), _no_progress_bars():
        warnings.simplefilter("ignore")
        return mlflow.sklearn.load_model(f"models:/{name}@{alias}")


def model_metadata(uri: str) -> dict[str, Any]:
    """The metadata a logged model carries (``models:/name@alias`` or ``runs:/id/name``)."""
    mlflow = _mlflow()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(mlflow.models.get_model_info(uri).metadata or {})


def _run_record(run) -> dict[str, Any]:
    info = run.info
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "name": info.run_name,
        "status": info.status,
        "start_time": pd.Timestamp(info.start_time, unit="ms", tz="UTC"),
        "end_time": pd.Timestamp(info.end_time, unit="ms", tz="UTC") if info.end_time else None,
        "artifact_uri": info.artifact_uri,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
    }


def _search(experiment_ids: list[str], filter_string: str, newest_first: bool = False) -> Iterator[Any]:
    """Every run matching ``filter_string``, page after page (MLflow returns at most 1,000 a page)."""
    client = _mlflow().MlflowClient()
    order = ["attributes.start_time DESC"] if newest_first else None
    page_token = None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string, order_by=order, max_results=1000, page_token=page_token
        )
        yield from page
        page_token = page.token
        if not page_token:
            return


def _experiment_ids(experiment: str | None) -> list[str]:
    """The id of ``experiment`` (none if it does not exist), or of every experiment for None."""
    mlflow = _mlflow()
    if experiment is None:
        return [e.experiment_id for e in mlflow.MlflowClient().search_experiments()]
    exp = mlflow.get_experiment_by_name(experiment)
    return [] if exp is None else [exp.experiment_id]


def latest_run(experiment: str, run_name_prefix: str = "train ") -> dict[str, Any] | None:
    """The newest finished top-level run of ``experiment`` whose name starts with the prefix.

    Returns a plain record (run_id, name, status, times, params, metrics, tags) or None.
    Nested runs (per task, per trial, per backtest cutoff) are skipped: the record is the one a
    reviewer opens in the UI.
    """
    ids = _experiment_ids(experiment)
    for run in _search(ids, "attributes.status = 'FINISHED'", newest_first=True) if ids else ():
        if "mlflow.parentRunId" not in run.data.tags and (run.info.run_name or "").startswith(
            run_name_prefix
        ):
            return _run_record(run)
    return None


def get_run(run_id: str) -> dict[str, Any]:
    """The record of one run (see :func:`latest_run`); UserError when it does not exist."""
    mlflow = _mlflow()
    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except Exception:
        raise UserError(
            f"no run with id '{run_id}' in this tracking store",
            hint="copy the run id from the MLflow UI or from `customer-value train`'s summary",
        ) from None
    return _run_record(run)


def list_artifacts(run_id: str, path: str = "") -> list[str]:
    """Artifact file paths of a run under ``path`` (recursive), sorted."""
    client = _mlflow().MlflowClient()
    out, todo = [], [path or None]
    while todo:
        for item in client.list_artifacts(run_id, todo.pop()):
            (todo.append(item.path) if item.is_dir else out.append(item.path))
    return sorted(out)


def download_artifact(run_id: str, path: str, dst: str | Path | None = None) -> Path:
    """Download one artifact (file or folder) of a run and return its local path."""
    mlflow = _mlflow()
    with _no_progress_bars():
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=None if dst is None else str(dst)
            )
        )


def load_run_model(run_id: str, name: str):
    """Load the scikit-learn model a run logged as ``name`` (e.g. ``churn_model``).

    The run lives in the configured store; this never loads a model from an arbitrary path.
    """
    mlflow = _mlflow()
    with warnings.catch_warnings(), _no_progress_bars():
        warnings.simplefilter("ignore")
        return mlflow.sklearn.load_model(f"runs:/{run_id}/{name}")


def unfinished_runs() -> list[dict[str, Any]]:
    """Every RUNNING run of the store, each with ``alive`` (True, False or None = cannot tell)."""
    ids = _experiment_ids(None)
    records = [_run_record(r) for r in (_search(ids, "attributes.status = 'RUNNING'") if ids else ())]
    return [{**r, "alive": process_alive(r["tags"])} for r in records]


def mark_killed(run_id: str, note: str) -> None:
    """End a run whose process died as KILLED, saying who found out (the process cannot)."""
    client = _mlflow().MlflowClient()
    client.set_tag(run_id, "killed_detected_by", note)
    client.set_terminated(run_id, status="KILLED")


def set_run_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    """Tag a run that is not the active one (e.g. after it ended)."""
    client = _mlflow().MlflowClient()
    for k, v in tags.items():
        client.set_tag(run_id, k, redact(str(v))[:5000])


def alias_holders(prefix: str) -> list[dict[str, str]]:
    """Every alias of the project's registered models with its version and that run's status."""
    client = _mlflow().MlflowClient()
    out = []
    for name in model_names(prefix).values():
        try:
            model = client.get_registered_model(name)
        except Exception:  # not registered yet
            continue
        for alias, version in sorted((model.aliases or {}).items()):
            mv = client.get_model_version(name, version)
            try:
                status = client.get_run(mv.run_id).info.status if mv.run_id else "UNKNOWN"
            except Exception:
                status = "MISSING"
            out.append(
                {
                    "model": name,
                    "alias": alias,
                    "version": str(version),
                    "run_id": mv.run_id or "",
                    "run_status": status,
                }
            )
    return out


def encode_moves(moves: list[tuple[str, str, str]]) -> str:
    """``[(name, alias, version)]`` as the ``aliases.pending`` tag: ``name@alias=v3;...``."""
    return ";".join(f"{n}@{a}=v{v}" for n, a, v in moves)


def decode_moves(text: str) -> list[tuple[str, str, str]]:
    """The inverse of :func:`encode_moves`."""
    out = []
    for move in filter(None, text.split(";")):
        target, version = move.rsplit("=v", 1)
        name, alias = target.rsplit("@", 1)
        out.append((name, alias, version))
    return out


def pending_alias_moves(experiment: str) -> list[dict[str, Any]]:
    """Finished runs whose alias moves were interrupted (``aliases.pending`` without ``applied``)."""
    ids = _experiment_ids(experiment)
    wanted = "attributes.status = 'FINISHED' and tags.`aliases.pending` != ''"
    runs = _search(ids, wanted, newest_first=True) if ids else ()
    return [_run_record(r) for r in runs if r.data.tags.get("aliases.applied") != "true"]


def current_alias_version(name: str, alias: str) -> int | None:
    """The version number ``name@alias`` points at, or None."""
    mv = champion(name, alias)
    return None if mv is None else int(mv.version)


@contextlib.contextmanager
def store_lock(config: TrackingConfig, say=None) -> Iterator[None]:
    """Hold the store's writer lock: one training run at a time per SQLite store.

    A second run waits (and says so) until the first releases it; the kernel releases the lock
    of a killed process, so a crash never leaves the store locked. Other stores (a tracking
    server) handle concurrent clients themselves: no lock.
    """
    uri = config.tracking_uri
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if not uri.startswith("sqlite:///") or fcntl is None:
        yield
        return
    path = Path(uri[len("sqlite:///") :] + ".lock")
    database = Path(uri[len("sqlite:///") :])
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not database.exists()  # a run refused before the store exists leaves nothing behind
    try:
        with _locked(path, fcntl, say):
            yield
    except BaseException:
        if fresh and not database.exists():
            path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(path: Path, fcntl, say) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; wait (saying for whom) when another run holds it."""
    import os

    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            if say is not None:
                say(f"      waiting for the training run that holds {path.name} ({holder})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sqlite_integrity(uri: str) -> str:
    """``PRAGMA integrity_check`` of a SQLite store, opened read-only ("ok" when healthy)."""
    import sqlite3

    path = Path(uri[len("sqlite:///") :]).resolve()
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as con:
            rows = con.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return f"cannot read {path.name}: {exc}"
    return "; ".join(str(r[0]) for r in rows[:5])
