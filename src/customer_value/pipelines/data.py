"""Simulate, load and validate: the data stage of every job."""

from __future__ import annotations

import json
from pathlib import Path

from customer_value import io
from customer_value.config import Config, SimulationConfig
from customer_value.engines.pandas import LoadedData, load_data
from customer_value.errors import ConfigError
from customer_value.synthetic import (
    CAMPAIGN_EFFECTS,
    PERSONAS,
    CampaignParams,
    DriftParams,
    SimulatedBase,
    add_campaign,
    simulate,
)

__all__ = [
    "LoadedData",
    "load_data",
    "run_simulation",
    "simulation_paths",
    "ensure_data",
]


def simulation_paths(sim: SimulationConfig) -> dict[str, Path]:
    """Where :func:`run_simulation` writes each table and the ground truth."""
    ext = sim.format
    paths = {
        "transactions": sim.output_dir / f"transactions.{ext}",
        "customers": sim.output_dir / f"customers.{ext}",
        "interactions": sim.output_dir / f"interactions.{ext}",
        "truth": sim.truth_dir / "truth.parquet",
        "future_transactions": sim.truth_dir / "future_transactions.parquet",
        "params": sim.truth_dir / "params.json",
    }
    if sim.campaign is not None:  # only a simulation with a campaign writes one
        paths["campaigns"] = sim.output_dir / f"campaigns.{ext}"
    return paths


def run_simulation(config: Config) -> tuple[SimulatedBase, dict[str, Path]]:
    """Simulate the configured base and write the tables and the ground truth (atomically)."""
    sim = config.simulation
    if sim is None:
        raise ConfigError(
            "this config has no 'simulation' section",
            where=str(config.source_path),
            hint="use configs/default.yaml, or add a simulation section",
        )
    # Both folders are checked before minutes of simulation, not when the first table is written.
    io.check_writable(Path(sim.output_dir) / "transactions.parquet", "simulation.output_dir")
    io.check_writable(Path(sim.truth_dir) / "truth.parquet", "simulation.truth_dir")
    drift = None
    if sim.kind == "drift":
        # Checked here, not in config (which may not import the simulator), before anything is written.
        try:
            drift = DriftParams.from_overrides(sim.drift)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"simulation.drift: {exc}",
                where=str(config.source_path),
                hint="see docs/simulation.md, 'The drift base', for the parameters and their ranges",
            ) from None
    campaign = None
    if sim.campaign is not None:  # checked before the simulation, like the drift parameters
        c = sim.campaign
        unknown = sorted(set(c.effects or {}) - {p.name for p in PERSONAS})
        if unknown:
            raise ConfigError(
                f"simulation.campaign.effects names unknown persona(s): {', '.join(unknown[:5])}",
                where=str(config.source_path),
                hint="the simulated personas are " + ", ".join(p.name for p in PERSONAS),
            )
        campaign = CampaignParams(
            c.date,
            c.window_days,
            c.treat_share,
            {**CAMPAIGN_EFFECTS, **(c.effects or {})},
            c.contact_cost,
        )
    base = simulate(
        sim.kind,
        drift=drift,
        n_customers=sim.n_customers,
        start_date=sim.start_date,
        end_date=sim.end_date,
        future_days=sim.future_days,
        initial_share=sim.initial_share,
        seed=config.project.seed,
    )
    if campaign is not None:
        base = add_campaign(base, campaign, seed=config.project.seed)
    paths = simulation_paths(sim)
    # Ground truth first, data last: the data file's presence marks a complete simulation.
    io.write_frame(base.truth, paths["truth"])
    io.write_frame(base.future_transactions, paths["future_transactions"])
    io.write_text(json.dumps(base.params, indent=2), paths["params"])
    io.write_frame(base.interactions, paths["interactions"])
    if base.campaigns is not None:
        io.write_frame(base.campaigns, paths["campaigns"])
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
