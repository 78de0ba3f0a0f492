"""The ``customer-value`` command line.

Parses the config once, calls a pipeline, and turns known user errors into a clear message on stderr
with exit code 2 (no traceback). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from customer_value.errors import UserError

app = typer.Typer(
    name="customer-value",
    help="What each customer is worth, and why: features, personas, churn and CLV models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="YAML config, e.g. configs/default.yaml.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: dotted.key=value (repeatable)."),
]
ScoringAsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Scoring date (default: the last date in the data).")
]


_INTERRUPTED: list[int] = []  # signal numbers received, so any exception they caused reads as such


def _on_signal(signum, frame):  # noqa: ARG001 - the signal module's handler signature
    """Remember the signal, then interrupt the main thread like Ctrl-C does."""
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def _install_signal_handlers() -> None:
    """Ctrl-C and ``kill`` (SIGTERM) both end in one clear line and exit 128 + signal number.

    The handler records the signal before raising: libraries that catch the KeyboardInterrupt
    and re-raise something else (xgboost raises ``XGBoostError`` from its C++ callback, Optuna
    wraps failed trials) are still reported as an interrupt, not as their own traceback.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)


def _user_errors(func):
    """Print :class:`UserError` as ``error: ...`` and exit 2, without a traceback.

    Also the two other ways a command can end early: an interrupt (Ctrl-C or SIGTERM, whatever
    exception the library that was running turned it into) prints one line and exits 130 (143 for
    SIGTERM); an unexpected exception is a bug and prints one ``error:`` line naming it, exit 1,
    with the traceback only when ``CUSTOMER_VALUE_DEBUG=1``. Every message is redacted, so a
    password in a URL the user typed is never echoed back.
    """
    import os
    import signal

    from customer_value.redaction import redact

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _INTERRUPTED.clear()
        _install_signal_handlers()
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except UserError as exc:
            if _INTERRUPTED:
                _interrupted()
            typer.echo(f"error: {redact(exc.render())}", err=True)
            raise typer.Exit(code=2) from None
        except BaseException as exc:  # noqa: BLE001 - the CLI's last line of defence
            if _INTERRUPTED or isinstance(exc, KeyboardInterrupt):
                _interrupted()
            if os.environ.get("CUSTOMER_VALUE_DEBUG") == "1":
                raise
            first = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            typer.echo(
                f"error: internal error ({type(exc).__name__}{': ' + first[:300] if first else ''})"
                "\n  hint: this is a bug in customer-value, not in your input; run again with "
                "CUSTOMER_VALUE_DEBUG=1 to see the traceback and report it",
                err=True,
            )
            raise typer.Exit(code=1) from None

    def _interrupted():
        signum = _INTERRUPTED[-1] if _INTERRUPTED else signal.SIGINT
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        typer.echo(
            f"error: interrupted ({name}); stopped before finishing (outputs are written "
            "atomically, so none is half-written)",
            err=True,
        )
        raise typer.Exit(code=128 + int(signum)) from None

    return wrapper


def _load(config: Path, overrides: list[str] | None):
    from customer_value.config import load_config

    return load_config(config, overrides or [])


TABLE_EXTENSIONS = (".parquet", ".pq", ".csv", ".csv.gz")


def _check_output(path: Path | None, cfg, option: str, extensions: tuple[str, ...] = TABLE_EXTENSIONS):
    """An output option, checked before any work: its extension, its folder, not an input."""
    from customer_value import io
    from customer_value.pipelines.options import check_output

    if path is None:
        return
    if extensions and not str(path).lower().endswith(extensions):
        raise UserError(
            "unsupported output extension", where=str(path), hint=f"use {', '.join(extensions)}"
        )
    io.check_writable(path, option)
    check_output(path, cfg, option)


def _check_bootstrap(n: int) -> None:
    if n < 0:
        raise UserError(f"--bootstrap must be 0 or more (got {n})", hint="e.g. --bootstrap 200")


def _format_table(rows: list[dict], columns: list[str], digits: int = 2) -> str:
    widths = {
        c: max(len(c), *(len(_fmt(r.get(c), digits)) for r in rows)) if rows else len(c) for c in columns
    }
    head = "  ".join(c.ljust(widths[c]) for c in columns)
    lines = [head, "  ".join("-" * widths[c] for c in columns)]
    for r in rows:
        lines.append(
            "  ".join(
                _fmt(r.get(c), digits).rjust(widths[c])
                if isinstance(r.get(c), int | float)
                else _fmt(r.get(c), digits).ljust(widths[c])
                for c in columns
            )
        )
    return "\n".join(lines)


def _fmt(value, digits: int = 2) -> str:
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _print_validation(loaded) -> None:
    report = loaded.report
    typer.echo("Validation report (rows per rule):")
    typer.echo(_format_table(report.rows, ["table", "rule", "action", "rows"]))
    tx = report.facts["transactions"]
    typer.echo(
        f"\ncustomer ids before filtering: {tx['customers_before_filtering']:,} "
        f"(rows read: {tx['rows_read']:,})"
    )
    s = report.facts["summary"]
    typer.echo(
        f"Summary: {s['customers']:,} customers, {s['transactions']:,} transactions"
        + (f" in {s['orders']:,} orders" if s.get("orders") else "")
        + f", {s['first_date']} .. {s['last_date']}, revenue {s['revenue']:,.2f} "
        f"(net of {s['returns']:,} return rows)"
    )
    if loaded.data.customers is not None:
        typer.echo(f"Customers table: {len(loaded.data.customers):,} rows")
    if loaded.data.interactions is not None:
        counts = loaded.data.interactions["kind"].value_counts().to_dict()
        typer.echo("Interactions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    camp = loaded.data.campaigns
    if camp is not None:
        typer.echo(
            f"Campaigns: {len(camp):,} rows on {camp['date'].nunique():,} date(s), "
            f"{int(camp['treated'].sum()):,} contacted, {int((~camp['treated']).sum()):,} held back"
        )
    for text in report.warnings:
        typer.echo(f"warning: {text}", err=True)


@app.command()
@_user_errors
def simulate(config: ConfigOpt = Path("configs/default.yaml"), set_: SetOpt = None) -> None:
    """Simulate the default customer base (data and ground truth) as configured."""
    from customer_value.pipelines.data import run_simulation

    cfg = _load(config, set_)
    t = time.perf_counter()
    base, paths = run_simulation(cfg)
    typer.echo(
        f"Simulated {len(base.truth):,} customers, {len(base.transactions):,} transaction rows "
        f"({len(base.future_transactions):,} more in the future window) "
        f"in {time.perf_counter() - t:.1f}s"
    )
    for name, path in paths.items():
        typer.echo(f"  {name:<20} {path}")


@app.command()
@_user_errors
def validate(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the report as JSON to this path.")
    ] = None,
) -> None:
    """Read and validate the configured data; print the validation report and a summary."""
    from customer_value import io
    from customer_value.pipelines.data import load_data

    cfg = _load(config, set_)
    # Checked before reading: a report that cannot be written fails now, not after the work.
    _check_output(report, cfg, "--report", extensions=())
    loaded = load_data(cfg)
    _print_validation(loaded)
    if report is not None:
        payload = {"rules": loaded.report.rows, "facts": loaded.report.facts}
        io.write_text(json.dumps(payload, indent=2, default=str), report)
        typer.echo(f"Report written to {report}")


@app.command()
@_user_errors
def features(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Cutoff date (default: the last date in the data).")
    ] = None,
    output: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")] = Path(
        "data/processed/features.parquet"
    ),
) -> None:
    """Build the point-in-time feature table at --as-of and write it."""
    from customer_value.pipelines.features import run_features

    cfg = _load(config, set_)
    t = time.perf_counter()
    frame, when = run_features(cfg, as_of, output)
    typer.echo(
        f"Features at {when.date()}: {len(frame):,} customers x {frame.shape[1] - 2} features "
        f"in {time.perf_counter() - t:.1f}s -> {output}"
    )


@app.command()
@_user_errors
def catalog(
    output: Annotated[Path, typer.Option(help="Markdown file to write.")] = Path("docs/features.md"),
) -> None:
    """Regenerate the feature catalog page."""
    from customer_value import io
    from customer_value.features.catalog import catalog_markdown

    io.write_text(catalog_markdown(), output)
    typer.echo(f"Feature catalog written to {output}")


@app.command()
@_user_errors
def train(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Training cutoff (default: the last date in the data).")
    ] = None,
) -> None:
    """The main job: personas, churn and CLV models with baselines, SHAP, tracked in MLflow."""
    from customer_value.pipelines.features import parse_as_of
    from customer_value.pipelines.train import run_train

    when = parse_as_of(as_of)  # parsed once, here, before the config's data is touched
    cfg = _load(config, set_)
    result = run_train(cfg, as_of=when, say=typer.echo)
    _print_train_summary(cfg, result)


def _print_train_summary(cfg, result) -> None:
    from customer_value import tasks

    m = result.metrics
    typer.echo(
        f"\nDone in {result.seconds:.0f}s. Run {result.run_id} "
        f"(experiment {cfg.tracking.experiment or cfg.project.name}, as_of {result.as_of.date()})"
    )
    for task in tasks.registered():
        sub = m[m["task"] == task.name]
        if sub.empty:
            continue
        metrics = [k for k in (task.primary, *task.guards) if k in set(sub["metric"])]
        sub = sub[sub["metric"].isin(metrics)]
        table = sub.pivot(index="model", columns="metric", values="value")[metrics]
        order = [i for i in table.index if i == task.model_label] + sorted(
            i for i in table.index if i != task.model_label
        )
        rows = [
            {
                "model": idx,
                **{k: (None if v != v else round(float(v), 4)) for k, v in table.loc[idx].items()},
            }
            for idx in order
        ]
        typer.echo(f"\n{task.name.upper()} on the out-of-time snapshot:")
        typer.echo(_format_table(rows, ["model", *metrics], digits=4))
    p = result.personas
    cols = [
        "persona_id",
        "persona",
        "customers",
        "churn_rate_actual",
        "predicted_clv_mean",
        "net_value_total",
        "clv_to_cac",
        "value_at_risk_share",
    ]
    rows = [
        {c: (round(float(r[c]), 3) if isinstance(r[c], float) else r[c]) for c in cols if c in r}
        for _, r in p.iterrows()
    ]
    typer.echo("\nPERSONAS:")
    typer.echo(_format_table(rows, cols))
    if result.decisions:
        typer.echo("\nREGISTRY:")
        for key, text in result.decisions.items():
            typer.echo(f"  {key:<9} {text}")
    typer.echo("\nOpen the MLflow UI with `make ui` (http://127.0.0.1:5000 by default).")


@app.command()
@_user_errors
def predict(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    as_of: ScoringAsOfOpt = None,
    alias: Annotated[str, typer.Option(help="Registry alias of the models to use.")] = "champion",
    output: Annotated[
        str, typer.Option(help="A .parquet/.csv file, or a database URL (sqlite:///predictions.db).")
    ] = "data/processed/predictions.parquet",
    table: Annotated[str, typer.Option(help="Table name when --output is a database URL.")] = (
        "predictions"
    ),
) -> None:
    """Score the whole base with the registered models: persona, churn, CLV, value, reasons."""
    from customer_value import tasks
    from customer_value.pipelines.predict import run_predict
    from customer_value.tracking import redact

    cfg = _load(config, set_)
    t = time.perf_counter()
    frame, rows_written, where = run_predict(cfg, as_of, alias, output, table, say=typer.echo)
    v = frame.iloc[0]
    versions = ", ".join(
        f"{task.name} v{v[f'{task.column_prefix}_model_version']}" for task in tasks.registered()
    )
    typer.echo(
        f"Scored {rows_written:,} customers at {v['as_of'].date()} "
        f"in {time.perf_counter() - t:.1f}s with {versions} (@{alias}) -> {redact(where)}"
    )
    top = frame.sort_values("retention_rank").head(5)
    rows = [
        {
            "rank": int(r.retention_rank),
            "customer_id": r.customer_id,
            "persona": r.persona,
            "churn_probability": round(float(r.churn_probability), 3),
            "predicted_clv": round(float(r.predicted_clv), 2),
            "value_at_risk": round(float(r.value_at_risk), 2),
            "top churn reason": getattr(r, "churn_driver_1_reason", ""),
        }
        for r in top.itertuples()
    ]
    typer.echo("Call first (most value at risk):")
    typer.echo(_format_table(rows, list(rows[0]) if rows else []))


@app.command()
@_user_errors
def target(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    budget: Annotated[
        float | None, typer.Option(help="Campaign budget (default: targeting.budget).")
    ] = None,
    contact_cost: Annotated[
        float | None,
        typer.Option("--contact-cost", help="Cost of one contact (default: targeting.contact_cost)."),
    ] = None,
    predictions: Annotated[Path, typer.Option(help="The predictions file `predict` wrote.")] = Path(
        "data/processed/predictions.parquet"
    ),
    output: Annotated[Path, typer.Option(help="The contact list (.parquet/.csv).")] = Path(
        "data/processed/contacts.csv"
    ),
    report: Annotated[
        str, typer.Option(help="The targeting report (.html); --report '' for none.")
    ] = "reports/targeting.html",
    uplift: Annotated[
        Path | None,
        typer.Option(help="Learned uplift (`customer-value uplift`) instead of config save rates."),
    ] = None,
) -> None:
    """Whom to contact for a retention budget: gain = P(churn) x CLV x save rate - contact cost."""
    from customer_value.pipelines.target import run_target

    cfg = _load(config, set_)
    res = run_target(
        cfg,
        predictions,
        budget,
        contact_cost,
        output,
        Path(report) if report.strip() else None,
        uplift,
    )
    s = res.plan.summary
    typer.echo(
        f"Contact {s['contacts']:,} of {s['customers']:,} customers for {s['cost']:,.2f} "
        f"(budget {s['budget']:,.2f}, {s['contact_cost']:,.2f} each): expected saved value "
        f"{s['expected_saved_value']:,.2f}, expected net return {s['expected_net_gain']:,.2f}"
    )
    typer.echo(
        "Limited by the budget: more contacts would still pay."
        if s["limited_by"] == "budget"
        else "Limited by gain: further contacts are expected to lose money, so "
        f"{s['budget'] - s['cost']:,.2f} of the budget is left unspent."
    )
    scored = s["customers"] - s["unscored"]
    typer.echo(
        f"Break-even depth {s['break_even_depth']:,} customers"
        + (" (contacting everyone still pays)" if s["break_even_depth"] == scored else "")
        + f"; best depth {s['best_depth']:,}."
    )
    rows = res.plan.personas.to_dict("records")
    typer.echo(
        _format_table(
            rows,
            [
                "persona",
                "customers",
                "save_rate",
                "contacted",
                "cost",
                "expected_net_gain",
                "return_on_cost",
                "best_depth",
                "break_even_depth",
            ],
        )
    )
    typer.echo(f"-> {res.output}" + (f" and {res.report}" if res.report else ""))


@app.command()
@_user_errors
def uplift(
    config: ConfigOpt = Path("configs/campaign.yaml"),
    set_: SetOpt = None,
    output: Annotated[
        Path, typer.Option(help="Each customer's uplift at the latest date (.parquet/.csv).")
    ] = Path("data/processed/uplift.parquet"),
    report: Annotated[
        str, typer.Option(help="The uplift report (.html); --report '' for none.")
    ] = "reports/uplift.html",
) -> None:
    """Learn who a retention contact changes from a randomized campaign (data.campaigns)."""
    from customer_value.pipelines.uplift import run_uplift

    cfg = _load(config, set_)
    res = run_uplift(cfg, output, Path(report) if report.strip() else None, say=typer.echo)
    m = res.metrics
    for note in res.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"Held out {int(m['held_out_customers']):,} contacts: observed effect "
        f"{m['observed_effect']:+.3f} (± {1.96 * m['observed_effect_se']:.3f}), predicted "
        f"{m['predicted_effect']:+.3f}; Qini coefficient {m['qini_coefficient']:.3f}"
    )
    tops = {k: v for k, v in m.items() if k.startswith("uplift_at_")}
    typer.echo("  " + ", ".join(f"uplift@{k[10:]}% {v:+.3f}" for k, v in tops.items()))
    typer.echo(_format_table(res.deciles.to_dict("records"), list(res.deciles.columns), 3))
    typer.echo(f"-> {res.output}" + (f" and {res.report}" if res.report else ""))


@app.command()
@_user_errors
def monitor(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    as_of: ScoringAsOfOpt = None,
    alias: Annotated[str, typer.Option(help="Registry alias of the models to check.")] = "champion",
    predictions: Annotated[
        Path | None,
        typer.Option(help="An earlier predictions file: its realised metrics once its window ended."),
    ] = None,
    report: Annotated[
        str, typer.Option(help="The monitoring report (.html); --report '' for none.")
    ] = "reports/monitor.html",
) -> None:
    """Drift of the latest scoring against the training snapshot; exit 3 when a threshold passes."""
    from customer_value import io
    from customer_value.pipelines.features import parse_as_of
    from customer_value.pipelines.monitor import read_previous, run_monitor
    from customer_value.report import render_monitor

    when = parse_as_of(as_of)
    cfg = _load(config, set_)
    out = Path(report) if report.strip() else None
    if out is not None:
        _check_output(out, cfg, "--report", (".html", ".htm"))
    previous = read_previous(predictions) if predictions is not None else None
    res = run_monitor(cfg, when, alias, previous, say=typer.echo)
    feats = res.features
    typer.echo(
        f"\nFeatures at {res.current_date.date()} against the training snapshot "
        f"({res.reference_date.date()}): {int(feats['drifted'].sum()) if len(feats) else 0} of "
        f"{len(feats)} drifted"
    )
    typer.echo(
        _format_table(feats.head(8).to_dict("records"), ["column", "psi", "ks_statistic", "drifted"], 3)
    )
    typer.echo("\nPredictions:")
    typer.echo(
        _format_table(
            res.predictions.to_dict("records"),
            ["column", "psi", "ks_statistic", "reference_mean", "current_mean", "drifted"],
            3,
        )
    )
    typer.echo("\nChurn performance to expect from the calibrated probabilities (label-free):")
    typer.echo(_format_table(res.label_free.to_dict("records"), list(res.label_free.columns), 3))
    if res.realised is not None:
        typer.echo("\nRealised metrics of the earlier predictions:")
        typer.echo(_format_table(res.realised.to_dict("records"), list(res.realised.columns), 4))
    if out is not None:
        facts = {
            "training snapshot": str(res.reference_date.date()),
            "scoring date": str(res.current_date.date()),
            "MLflow run": res.run_id,
        }
        tables = {
            "Feature drift (PSI, KS)": feats,
            "Prediction drift": res.predictions,
            "Persona shares": res.personas,
            "Persona migration": res.migration,
            "Churn performance without labels": res.label_free,
            "Realised metrics of the earlier predictions": res.realised,
        }
        io.write_text(render_monitor("Monitoring", facts, res.alerts, tables), out)
        typer.echo(f"\nReport -> {out}")
    typer.echo(f"MLflow run {res.run_id}")
    if res.alerts:
        for line in res.alerts:
            typer.echo(f"alert: {line}", err=True)
        raise typer.Exit(3)
    typer.echo("no drift past the configured thresholds")


@app.command()
@_user_errors
def backtest(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    cutoffs: Annotated[str, typer.Option(help="Comma-separated cutoff dates.")] = "",
    horizon_days: Annotated[
        int | None, typer.Option("--horizon-days", help="CLV horizon (default: the config's).")
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 100,
    output: Annotated[Path | None, typer.Option(help="Also write the table (csv).")] = None,
) -> None:
    """Train at each cutoff as `train` would and score the window after it, with baselines."""
    from customer_value import io
    from customer_value.errors import UserError
    from customer_value.pipelines.backtest import run_backtest

    cfg = _load(config, set_)
    dates = [c.strip() for c in cutoffs.split(",") if c.strip()]
    if not dates:
        raise UserError("no cutoffs given", hint="e.g. --cutoffs 2011-06-30,2011-09-09")
    _check_bootstrap(bootstrap)
    _check_output(output, cfg, "--output")
    res = run_backtest(cfg, dates, horizon_days, bootstrap, say=typer.echo)
    t = res.table
    if output is not None:
        io.write_frame(t, output)
    _print_backtest(t)
    typer.echo(f"\nBacktest run {res.run_id} ({res.seconds:.0f}s)")


@app.command()
@_user_errors
def evaluate(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    cal_end: Annotated[
        str, typer.Option("--cal-end", help="Calibration end date(s), comma-separated.")
    ] = "",
    holdout_days: Annotated[int, typer.Option("--holdout-days", help="Holdout window length.")] = 91,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 200,
    output: Annotated[Path | None, typer.Option(help="Also write the verdicts (csv/parquet).")] = None,
) -> None:
    """Protocol-R style holdout: ours vs BG/NBD, MBG/NBD, Gamma-Gamma and naive rates, verdicts."""
    from customer_value import io
    from customer_value.errors import UserError
    from customer_value.pipelines.evaluate import run_evaluate

    cfg = _load(config, set_)
    dates = [c.strip() for c in cal_end.split(",") if c.strip()]
    if not dates:
        raise UserError("no calibration end given", hint="e.g. --cal-end 2011-09-09")
    _check_bootstrap(bootstrap)
    _check_output(output, cfg, "--output")
    res = run_evaluate(cfg, dates, holdout_days, bootstrap, say=typer.echo)
    if output is not None:
        io.write_frame(res.verdicts, output)
    typer.echo("\n" + verdict_markdown(res.verdicts))
    head = res.verdicts[res.verdicts["headline"]]
    wins, n = int((head["verdict"] == "win").sum()), len(head)
    typer.echo(f"\n{wins} of {n} headline metrics beat the best classical model ({res.seconds:.0f}s)")


def verdict_markdown(v) -> str:
    """The verdict table as markdown: ours with its 95 % interval beside the best classical model."""
    lines = [
        "| cal end | metric | ours (95 % CI) | best classical | verdict |",
        "|---|---|---:|---|---|",
    ]
    for r in v.itertuples():
        pct = "aggregate" in r.metric
        fmt = (lambda x: f"{x:+.1%}") if pct else (lambda x: f"{x:.4f}")
        ci = f" ({fmt(r.ci_low)} .. {fmt(r.ci_high)})" if r.ci_low == r.ci_low else ""
        best = f"{r.best_classical} {fmt(r.classical)}"
        name = r.metric if r.headline else f"{r.metric} (not headline)"
        lines.append(f"| {r.cal_end} | {name} | {fmt(r.ours)}{ci} | {best} | {r.verdict} |")
    return "\n".join(lines)


def _print_backtest(t) -> None:
    from customer_value import tasks

    show = {
        task.name: [k for k in task.backtest_metrics if k in (task.primary, *task.guards)]
        for task in tasks.registered()
    }
    show["transactions"] = ["aggregate_transactions_error"]
    for task, metrics in show.items():
        sub = t[(t["task"] == task) & t["metric"].isin(metrics)]
        if sub.empty:
            continue
        wide = sub.pivot_table(
            index=["cutoff", "model"], columns="metric", values="value", sort=False, dropna=False
        )
        rows = [
            {
                "cutoff": c,
                "model": m,
                **{
                    k: (
                        None
                        if k not in wide or wide.loc[(c, m), k] != wide.loc[(c, m), k]
                        else round(float(wide.loc[(c, m), k]), 4)
                    )
                    for k in metrics
                },
            }
            for c, m in wide.index
        ]
        typer.echo(f"\n{task.upper()} (95% bootstrap intervals in backtest/metrics.csv):")
        typer.echo(_format_table(rows, ["cutoff", "model", *metrics], digits=4))


@app.command()
@_user_errors
def ui(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind (default: tracking.ui_host, loopback)."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: tracking.ui_port).")] = None,
) -> None:
    """Start the MLflow UI on the configured tracking store."""
    import os
    import subprocess

    from customer_value import tracking
    from customer_value.tracking import redact

    cfg = _load(config, set_)
    # A missing driver or a server that does not answer is said here, in one line, instead of
    # as the MLflow server's own traceback.
    tracking.check_store(cfg.tracking)
    uri = cfg.tracking.tracking_uri
    host = host or cfg.tracking.ui_host
    port = port or cfg.tracking.ui_port
    typer.echo(f"MLflow UI on http://{host}:{port} for {redact(uri)} (Ctrl-C to stop)")
    # The store URI travels in the child's environment, never on its command line: argv is
    # readable by every local user (``ps``), the environment only by the same user.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri}
    env.pop("MLFLOW_REGISTRY_STORE_URI", None)  # the registry follows the backend store
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        host,
        "--port",
        str(port),
    ]
    # The server's own output goes through the redactor too (its errors may quote the URI).
    child = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    try:
        for line in child.stdout:
            typer.echo(redact(line.rstrip("\n")))
        raise typer.Exit(child.wait())
    except KeyboardInterrupt:
        child.terminate()
        child.wait()
        raise typer.Exit(0) from None


@app.command()
@_user_errors
def doctor(
    config: ConfigOpt = Path("configs/default.yaml"),
    set_: SetOpt = None,
    check_only: Annotated[
        bool, typer.Option("--check-only", help="Report only; repair nothing.")
    ] = False,
    folder: Annotated[
        list[Path] | None,
        typer.Option("--folder", help="Also clean this folder of killed writers' temp files."),
    ] = None,
) -> None:
    """Check the tracking store and repair what killed runs left (exit 1 if problems remain).

    Marks runs whose process is gone as KILLED, completes interrupted alias moves, checks that
    every alias points at a finished run and that the SQLite file is intact, and removes temp
    files of killed writers.
    """
    from customer_value.pipelines.doctor import run_doctor

    cfg = _load(config, set_)
    report = run_doctor(cfg, fix=not check_only, folders=folder or [Path("data/processed")])
    typer.echo(_format_table(report.rows, ["check", "status", "detail"]))
    if report.problems:
        typer.echo(f"\n{report.problems} problem(s) left", err=True)
        raise typer.Exit(1)
    typer.echo(
        "\nhealthy" + (" (after repairs)" if any(r["status"] == "fixed" for r in report.rows) else "")
    )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="customer-value")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
