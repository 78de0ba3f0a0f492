"""Shared fixtures: tiny hand-made sources and configs in tmp_path."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = (
    REPO.parent / "shared" / "data" / "online_retail" / "online_retail_2010-12_2011-12.csv.gz"
)

# Files a test run leaves for people to look at (screenshots, executed notebooks, figures).
ARTIFACTS = Path(os.environ.get("CUSTOMER_VALUE_TEST_ARTIFACTS", REPO / "reports" / "test-artifacts"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def training_set(tables, as_of, cfg):
    """Training snapshots of every labelled task, exactly as ``train`` builds them (pandas)."""
    from customer_value.features.build import build_training_set
    from customer_value.pipelines.train import label_windows

    return build_training_set(tables, as_of, cfg.features, cfg.snapshots, label_windows(cfg))


@pytest.fixture
def make_config(tmp_path):
    """Write a YAML config next to the sources in tmp_path and return its path."""

    def _make(body: str, name: str = "config.yaml") -> Path:
        return write(tmp_path / name, body)

    return _make


@pytest.fixture
def online_retail_path() -> Path:
    if not ONLINE_RETAIL.exists():
        pytest.skip(f"shared Online Retail data not found at {ONLINE_RETAIL}")
    return ONLINE_RETAIL


TRAIN_CONFIG = """
project: {{name: test-run, seed: 7}}
simulation: {{n_customers: 3000, output_dir: raw, truth_dir: truth}}
data:
  transactions: {{path: raw/transactions.parquet}}
  customers: {{path: raw/customers.parquet}}
  interactions: {{path: raw/interactions.parquet}}
snapshots: {{n_snapshots: 4, spacing_days: 45}}
personas: {{k_max: 6, silhouette_sample: 1500, stability_bootstraps: 2, min_share: 0.02,
           features: [frequency_per_year, revenue_per_year, monetary_mean, days_since_last_purchase,
                      tenure_days, distinct_categories, discount_share, return_rate,
                      channel_share_app, channel_share_store, items_per_order]}}
churn: {{tuning: {{n_trials: {trials}, max_estimators: 300}}}}
clv: {{tuning: {{n_trials: {trials}, max_estimators: 300}}}}
explain: {{sample_size: 300}}
tracking: {{db_path: mlflow.db, artifact_dir: mlartifacts}}
"""


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory):
    """A small simulated base trained twice with one seed into its own MLflow store."""
    from customer_value.config import load_config
    from customer_value.pipelines.train import run_train

    root = tmp_path_factory.mktemp("train")
    path = root / "config.yaml"
    path.write_text(TRAIN_CONFIG.format(trials=3))
    cfg = load_config(path)
    first = run_train(cfg, say=lambda _msg: None)
    second = run_train(cfg, say=lambda _msg: None)
    return cfg, first, second


def simulated_features(n_customers: int, seed: int, *as_ofs: str):
    """A simulated base and its point-in-time feature frames at ``as_ofs`` (default settings)."""
    import warnings

    import pandas as pd

    from customer_value.config import FeatureConfig
    from customer_value.features.build import build_feature_set
    from customer_value.synthetic import simulate_base
    from customer_value.validate import ValidatedData

    sim = simulate_base(n_customers, seed=seed)
    tables = ValidatedData(sim.transactions, sim.customers, sim.interactions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        frames = [build_feature_set(tables, pd.Timestamp(d), FeatureConfig()).frame for d in as_ofs]
    return sim, frames
