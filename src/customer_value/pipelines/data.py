"""Simulate, load and validate: the data stage of every job, and the checks it runs first."""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from customer_value import io
from customer_value.config import Config, SimulationConfig, TrackingConfig
from customer_value.errors import ConfigError, UserError
from customer_value.synthetic import SimulatedBase, simulate_base
from customer_value.validate import ValidatedData, ValidationReport, validate_tables

__all__ = [
    "LoadedData",
    "load_data",
    "run_simulation",
    "simulation_paths",
    "ensure_data",
    "check_tracking_store",
]


@dataclass
class LoadedData:
    """Validated tables and the report of how they were obtained."""

    data: ValidatedData
    report: ValidationReport


def simulation_paths(sim: SimulationConfig) -> dict[str, Path]:
    """Where :func:`run_simulation` writes each table and the ground truth."""
    ext = sim.format
    return {
        "transactions": sim.output_dir / f"transactions.{ext}",
        "customers": sim.output_dir / f"customers.{ext}",
        "interactions": sim.output_dir / f"interactions.{ext}",
        "truth": sim.truth_dir / "truth.parquet",
        "future_transactions": sim.truth_dir / "future_transactions.parquet",
        "params": sim.truth_dir / "params.json",
    }


def run_simulation(config: Config) -> tuple[SimulatedBase, dict[str, Path]]:
    """Simulate the configured base and write the tables and the ground truth (atomically)."""
    sim = config.simulation
    if sim is None:
        raise ConfigError(
            "this config has no 'simulation' section",
            where=str(config.source_path),
            hint="use configs/default.yaml, or add a simulation section",
        )
    base = simulate_base(
        n_customers=sim.n_customers,
        start_date=sim.start_date,
        end_date=sim.end_date,
        future_days=sim.future_days,
        initial_share=sim.initial_share,
        seed=config.project.seed,
    )
    paths = simulation_paths(sim)
    # Ground truth first, data last: the data file's presence marks a complete simulation.
    io.write_frame(base.truth, paths["truth"])
    io.write_frame(base.future_transactions, paths["future_transactions"])
    io.write_text(json.dumps(base.params, indent=2), paths["params"])
    io.write_frame(base.interactions, paths["interactions"])
    io.write_frame(base.customers, paths["customers"])
    io.write_frame(base.transactions, paths["transactions"])
    return base, paths


def ensure_data(config: Config) -> bool:
    """Simulate when the configured transactions are absent and the config allows it.

    Returns True when a simulation ran.
    """
    if Path(config.data.transactions.path).exists():
        return False
    if config.simulation is not None and config.simulation.auto:
        run_simulation(config)
        return True
    return False


def load_data(config: Config) -> LoadedData:
    """Read every configured source and validate it."""
    dc = config.data
    tx = io.read_source(dc.transactions)
    cust = io.read_source(dc.customers) if dc.customers is not None else None
    inter = io.read_source(dc.interactions) if dc.interactions is not None else None
    data, report = validate_tables(tx, dc, customers=cust, interactions=inter)
    return LoadedData(data, report)


def check_tracking_store(tracking: TrackingConfig, *, must_exist: bool = False, timeout_s: float = 5.0):
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
    timeout_s : float
        Seconds to wait for a TCP connection to an ``http(s)`` server.

    Raises
    ------
    UserError
        The server refuses or does not answer, or the local store is missing; the message names
        the URI with any password hidden.
    """
    # The redaction lives with the rest of the MLflow code; importing it does not import mlflow.
    from customer_value.tracking import redact

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
    elif must_exist and parts.scheme in ("sqlite", "file", ""):
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
