"""Engines: where the data is read, the features computed and the predictions published.

``pandas`` (one machine) and ``spark`` (Apache Spark) implement one small protocol,
:class:`Engine`, and :func:`get` picks one from ``config.engine`` once, at the start of a job. The
pipelines never test the engine's name again. Outputs are parsed once into typed sinks
(:mod:`customer_value.engines.sinks`); both engines validate predictions against the same schema
and publish atomically.
"""

from __future__ import annotations

from customer_value.engines.base import Engine, Loaded

__all__ = ["Engine", "Loaded", "get"]


def get(config) -> Engine:
    """The engine ``config.engine`` names (Spark is imported only when asked for)."""
    if config.engine == "spark":
        from customer_value.engines.spark import SparkEngine

        return SparkEngine(config.spark, config.tracking)
    from customer_value.engines.pandas import PandasEngine

    return PandasEngine()
