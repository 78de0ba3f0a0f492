"""Shared fixtures: tiny hand-made sources and configs in tmp_path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = (
    REPO.parent / "shared" / "data" / "online_retail" / "online_retail_2010-12_2011-12.csv.gz"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


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
