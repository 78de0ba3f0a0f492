"""Batch predictions for the whole base from the registered models, with reasons.

The steps: preflight (the output parsed once into a typed sink and checked, ``--as-of``, the store),
the champion chain from the configured registry, the data, scoring through
:func:`customer_value.chain.score` on the configured engine, then validation against the prediction
schema and an atomic publish (a file renamed into place, one database transaction, or a staged
Spark output swapped in).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from customer_value import engines, tasks, tracking
from customer_value.chain import Chain, ScoringSpec
from customer_value.config import Config
from customer_value.engines.sinks import check_sink, parse_sink
from customer_value.errors import UserError
from customer_value.pipelines.features import parse_as_of
from customer_value.pipelines.options import check_as_of_in_data, check_output

__all__ = ["load_chain", "chain_from_run", "run_predict"]

SPEC_KEY = "scoring_spec"


def _spec(metadata: dict, where: str) -> ScoringSpec:
    if SPEC_KEY not in metadata:
        raise UserError(
            "the model has no scoring spec: it was trained by a version before the spec existed",
            where=where,
            hint="retrain with this version (`make train`), which logs every model with its spec",
        )
    return ScoringSpec.from_dict(metadata[SPEC_KEY])


def _one_spec(specs: dict[str, ScoringSpec], origin: dict[str, str]) -> ScoringSpec:
    """The champions must share one feature definition, or one table cannot feed them all."""
    keys = {name: s.feature_key() for name, s in specs.items()}
    first = next(iter(specs))
    differ = [n for n in specs if keys[n] != keys[first]]
    if differ:
        raise UserError(
            "the champion models were trained on different feature definitions (vocabulary or "
            f"feature settings): {', '.join(f'{n} ({origin[n]})' for n in [first, *differ])}",
            hint="point the alias of every model at versions of one training run, or retrain",
        )
    merged = dict(specs[first].tasks)
    for name, s in specs.items():
        merged[name] = s.tasks[name]
    ranges = {name: s.feature_ranges.get(name, {}) for name, s in specs.items()}
    return ScoringSpec(
        specs[first].as_of,
        specs[first].features,
        specs[first].value,
        specs[first].vocabulary,
        merged,
        {k: v for k, v in ranges.items() if v},
        specs[first].versions,
    )


def load_chain(config: Config, alias: str = "champion") -> Chain:
    """``<prefix>-<task>@alias`` for every registered task, from the configured registry only."""
    # Read only: the registry does not need the experiment, and predict must not create it.
    tracking.setup(config.tracking, config.tracking.experiment or config.project.name, create=False)
    names = tracking.model_names(config.tracking.model_prefix)
    models, specs, versions, runs, origin = {}, {}, {}, {}, {}
    for task in tasks.registered():
        name = names[task.name]
        mv = tracking.champion(name, alias)
        if mv is None:
            raise UserError(
                f"no registered model '{name}' with alias '{alias}'",
                where=f"tracking store {tracking.redact(config.tracking.tracking_uri)}",
                hint="run `make train` (or `customer-value train --config ...`) first, or pass an "
                "alias that exists (champion, challenger)",
            )
        models[task.name] = tracking.load_model(name, alias)
        specs[task.name] = _spec(tracking.model_metadata(f"models:/{name}@{alias}"), name)
        versions[task.name], runs[task.name] = str(mv.version), str(mv.run_id)
        origin[task.name] = f"v{mv.version}, run {mv.run_id}"
    return Chain(_one_spec(specs, origin), models, tasks.registered(), versions, runs)


def chain_from_run(run_id: str, versions: dict[str, str]) -> Chain:
    """The chain one training run logged (its own model artifacts), for review and notebooks."""
    models, specs = {}, {}
    for task in tasks.registered():
        uri = f"runs:/{run_id}/{task.column_prefix}_model"
        models[task.name] = tracking.load_run_model(run_id, f"{task.column_prefix}_model")
        specs[task.name] = _spec(tracking.model_metadata(uri), uri)
    origin = dict.fromkeys(specs, f"run {run_id}")
    return Chain(
        _one_spec(specs, origin),
        models,
        tasks.registered(),
        versions,
        dict.fromkeys(models, run_id),
    )


def _sqlite_file(sink) -> str | None:
    """The database file of a ``sqlite:///`` output (it must not be an input either)."""
    url = getattr(sink, "url", "") or ""
    return url[len("sqlite:///") :] if url.startswith("sqlite:///") else None


def run_predict(
    config: Config,
    as_of: str | pd.Timestamp | None,
    alias: str,
    output: str,
    table: str = "predictions",
    progress_bar: bool = True,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[pd.DataFrame, int, str]:
    """Load the champion chain, build features at ``as_of``, score everyone, validate, publish.

    Returns the predictions (or, from Spark, the top rows), the number of rows written, and where
    they went (credentials hidden).
    """
    # Preflight, before the store is opened (which would create an empty one) or data is read:
    # the output parses and can be written, --as-of is a date, the store exists and answers.
    engine = engines.get(config)
    sink = parse_sink(output, table, engine.name)
    check_sink(sink, engine.name)
    check_output(getattr(sink, "path", None) or _sqlite_file(sink), config, "--output")
    wanted = parse_as_of(as_of)
    tracking.check_store(config.tracking, must_exist=True)
    steps = 4

    def step(i: int, text: str) -> None:
        say(f"[{i}/{steps}] {text}")

    step(1, f"loading the {alias} models")
    chain = load_chain(config, alias)
    step(2, f"reading and validating the data ({engine.name})")
    loaded = engine.load(config, summary=False)
    when = loaded.last.normalize() if wanted is None else wanted
    # The same rule as training: after the data, customers would be aged by unobserved days.
    check_as_of_in_data(when, loaded.facts.get("summary", {}).get("first_date"), loaded.last)
    step(3, f"features and scores at {when.date()}")
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=None, unit="customers", desc="scoring", leave=False)
    try:
        scored = engine.score(
            loaded, chain, when, config, bar.update if bar is not None else None, alias
        )
    finally:
        if bar is not None:
            bar.close()
    step(4, "validating and publishing the predictions")
    return engine.publish(scored, sink, chain.schema)
