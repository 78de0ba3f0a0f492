"""``customer-value target``: the contact list for a retention budget, from a predictions file.

The steps: preflight (budget, contact cost, save rates, the two outputs), the predictions read and
checked, the plan (:func:`customer_value.modeling.targeting.plan_contacts`), then the list and its
report each written atomically. Reading a predictions file rather than scoring again keeps the
list tied to the exact scores a team reviewed, and lets the list be rebuilt for another budget in
a second.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value import io
from customer_value.config import Config, SourceConfig
from customer_value.errors import DataValidationError, UserError
from customer_value.modeling.targeting import (
    TargetingPlan,
    plan_contacts,
    save_rates_for,
    save_rates_from_uplift,
)
from customer_value.pipelines.options import check_output

__all__ = ["TargetResult", "read_predictions", "read_uplift", "resolve_terms", "run_target"]

REQUIRED = ("customer_id", "persona", "churn_probability", "predicted_clv")
LIST_EXTENSIONS = (".parquet", ".pq", ".csv", ".csv.gz")


@dataclass(frozen=True)
class TargetResult:
    """The plan, and where its list and report were written."""

    plan: TargetingPlan
    output: Path
    report: Path | None


def resolve_terms(
    config: Config, budget: float | None, contact_cost: float | None
) -> tuple[float, float]:
    """The budget and contact cost: the options, else the config's; both finite and > 0."""
    terms = {}
    for name, given, default in (
        ("budget", budget, config.targeting.budget),
        ("contact-cost", contact_cost, config.targeting.contact_cost),
    ):
        value = given if given is not None else default
        if value is None:
            raise UserError(
                f"no --{name} given and none in the config",
                hint=f"pass --{name} (e.g. --budget 5000 --contact-cost 2.5) or set "
                f"targeting.{name.replace('-', '_')}",
            )
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name} must be a finite amount above 0 (got {value})")
        terms[name] = float(value)
    if terms["contact-cost"] > terms["budget"]:
        raise UserError(
            f"one contact ({terms['contact-cost']:,.2f}) costs more than the whole budget "
            f"({terms['budget']:,.2f}): the list would be empty",
            hint="raise --budget or lower --contact-cost",
        )
    return terms["budget"], terms["contact-cost"]


def _numeric(
    frame: pd.DataFrame,
    column: str,
    file: str,
    low: float,
    high: float,
    hint: str = "pass the file `customer-value predict` wrote, unedited",
) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    text = frame[column].astype("string")
    bad = values.isna() | ~np.isfinite(values.astype(float)) | (values < low) | (values > high)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        raise DataValidationError(
            f"{int(bad.sum()):,} value(s) are not numbers between {low:g} and {high:g}; first at "
            f"data row {rows[0] + 1}",
            file=file,
            column=column,
            examples=text.iloc[rows[:3]].fillna("<missing>").tolist(),
            hint=hint,
        )
    return values.astype(float)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions file (parquet or csv), checked for what targeting needs.

    Raises
    ------
    UserError
        The file is missing or unreadable, lacks a required column, has a customer twice, or a
        churn probability outside [0, 1] or a CLV that is negative or not a number.
    """
    file = str(path)
    frame = _readable_table(
        path,
        "predictions",
        "--predictions",
        "predict",
        absent_hint="score the base first (`make predict`, or `customer-value predict --config C`), "
        "or pass --predictions with the file it wrote",
    )
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"not a predictions file: missing column(s) {', '.join(missing)}",
            file=file,
            hint="pass the file `customer-value predict` wrote",
        )
    if frame.empty:
        raise DataValidationError("the predictions file has no rows", file=file)
    out = frame.copy()
    out["customer_id"] = out["customer_id"].astype("string")
    for column in ("customer_id", "persona"):
        gaps = out[column].isna() | (out[column].astype("string").str.strip() == "")
        if gaps.any():
            raise DataValidationError(
                f"{int(gaps.sum()):,} row(s) have no {column}; first at data row "
                f"{int(np.flatnonzero(gaps.to_numpy())[0]) + 1}",
                file=file,
                column=column,
            )
    twice = out["customer_id"].duplicated(keep=False)
    if twice.any():
        raise DataValidationError(
            f"{int(out.loc[twice, 'customer_id'].nunique()):,} customer(s) appear more than once",
            file=file,
            column="customer_id",
            examples=out.loc[twice, "customer_id"].unique()[:3].tolist(),
            hint="a predictions file has one row per customer; pass one scoring's file",
        )
    out["persona"] = out["persona"].astype(str)
    out["churn_probability"] = _numeric(out, "churn_probability", file, 0.0, 1.0)
    out["predicted_clv"] = _numeric(out, "predicted_clv", file, 0.0, math.inf)
    if "persona_id" in out:
        ids = pd.to_numeric(out["persona_id"], errors="coerce")
        out["persona_id"] = ids.round().astype("Int64") if ids.notna().all() else pd.NA
    if "as_of" in out:
        out["as_of"] = pd.to_datetime(out["as_of"], errors="coerce")
    return out


def _readable_table(
    path: str | Path, what: str, option: str, writer: str, absent_hint: str
) -> pd.DataFrame:
    """Read the parquet or csv file that `customer-value <writer>` wrote.

    Refused clearly (exit 2) when absent, not a regular file, or of another extension.
    """
    p, file = Path(path), str(path)
    if not p.exists():
        raise UserError(f"no {what} file here", where=file, hint=absent_hint)
    if not p.is_file():
        kind = "a folder" if p.is_dir() else "a device, pipe or socket"
        raise UserError(
            f"is {kind}, not {'an' if what[0] in 'aeiou' else 'a'} {what} file",
            where=file,
            hint=f"pass {option} the .parquet or .csv file `customer-value {writer}` wrote",
        )
    if not file.lower().endswith(LIST_EXTENSIONS):
        raise UserError(
            f"unsupported {option} extension",
            where=file,
            hint=f"use {', '.join(LIST_EXTENSIONS)} (what `customer-value {writer}` writes)",
        )
    return io.read_source(SourceConfig(path=p))


def read_uplift(path: str | Path, predictions: pd.DataFrame) -> pd.Series:
    """The uplift of every customer of ``predictions``, from the file `customer-value uplift` wrote.

    Raises
    ------
    UserError
        The file is unreadable, lacks ``customer_id`` or ``uplift``, has a customer twice or a value
        outside [-1, 1], misses customers of the predictions, or was scored on another date.
    """
    file = str(path)
    hint = "pass the file `customer-value uplift` wrote (make uplift), scored on the predictions' date"
    frame = _readable_table(path, "uplift", "--uplift", "uplift", absent_hint=hint)
    missing = [c for c in ("customer_id", "uplift") if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"not an uplift file: missing column(s) {', '.join(missing)}", file=file, hint=hint
        )
    ids = frame["customer_id"].astype("string")
    if ids.isna().any() or ids.duplicated().any():
        raise DataValidationError(
            "customer ids are missing or repeated", file=file, column="customer_id", hint=hint
        )
    tau = _numeric(frame, "uplift", file, -1.0, 1.0, hint)
    if "as_of" in frame and "as_of" in predictions:
        days = {
            str(pd.Timestamp(d).date()) for d in pd.to_datetime(frame["as_of"], errors="coerce").dropna()
        }
        pred_days = {str(pd.Timestamp(d).date()) for d in predictions["as_of"].dropna()}
        if days and pred_days and days != pred_days:
            raise DataValidationError(
                f"the uplift was scored on {', '.join(sorted(days))} and the predictions on "
                f"{', '.join(sorted(pred_days))}",
                file=file,
                column="as_of",
                hint="score both on the same data: rerun `customer-value uplift` and `predict`",
            )
    out = pd.Series(tau.to_numpy(), index=pd.Index(ids.astype(str)), name="uplift")
    absent = ~predictions["customer_id"].astype(str).isin(out.index)
    if absent.any():
        raise DataValidationError(
            f"{int(absent.sum()):,} customer(s) of the predictions have no uplift",
            file=file,
            column="customer_id",
            examples=predictions.loc[absent, "customer_id"].head(3).tolist(),
            hint=hint,
        )
    return out


def _save_rates(config: Config, predictions: pd.DataFrame) -> pd.Series:
    try:
        return save_rates_for(predictions, config.targeting.save_rate, config.targeting.save_rates)
    except KeyError as exc:
        names = sorted(predictions["persona"].astype(str).unique())
        raise UserError(
            f"targeting.save_rates names persona {exc.args[0]!r}, which no customer has",
            where="config targeting.save_rates",
            hint=f"use the personas of these predictions: {', '.join(names[:12])}",
        ) from None


def _same_file(a: str | Path, b: str | Path) -> bool:
    """One file under two names (the same path, a symbolic or a hard link)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_paths(
    config: Config, predictions: str | Path, output: str | Path, report: str | Path | None
) -> None:
    """The outputs, before any work: extensions, writable, not an input, not each other."""
    outputs = {"--output": (output, LIST_EXTENSIONS), "--report": (report, (".html", ".htm"))}
    for option, (path, extensions) in outputs.items():
        if path is None:
            continue
        if not str(path).lower().endswith(extensions):
            raise UserError(
                f"unsupported {option} extension", where=str(path), hint=f"use {', '.join(extensions)}"
            )
        io.check_writable(path, option)
        check_output(path, config, option)
        if _same_file(path, predictions):
            raise UserError(
                f"{option} is the predictions file: writing it would replace the input",
                where=str(path),
                hint=f"choose another {option}",
            )
    if report is not None and Path(report).expanduser().resolve() == Path(output).expanduser().resolve():
        raise UserError("--report and --output are the same file", where=str(output))


def run_target(
    config: Config,
    predictions: str | Path,
    budget: float | None,
    contact_cost: float | None,
    output: str | Path,
    report: str | Path | None,
    uplift: str | Path | None = None,
) -> TargetResult:
    """Plan the contacts under the budget and write the list (and its report) atomically.

    With ``uplift`` (the file `customer-value uplift` wrote), each customer's save rate comes from
    the learned uplift (:func:`customer_value.modeling.targeting.save_rates_from_uplift`) instead
    of the config's assumptions.
    """
    from customer_value import plots
    from customer_value.report import figure_png, png_data_uri, render_targeting

    budget, contact_cost = resolve_terms(config, budget, contact_cost)
    check_paths(config, predictions, output, report)
    if uplift is not None and (
        _same_file(uplift, output) or (report is not None and _same_file(uplift, report))
    ):
        raise UserError("--uplift is also an output: writing would replace it", where=str(uplift))
    frame = read_predictions(predictions)
    rates = (
        _save_rates(config, frame)
        if uplift is None
        else save_rates_from_uplift(frame, read_uplift(uplift, frame))
    )
    plan = plan_contacts(frame, budget, contact_cost, rates)
    if report is not None:
        fig = plots.return_curve(
            plan.curve,
            plan.summary["contacts"],
            plan.summary["break_even_depth"],
            "expected return of the contact list",
        )
        facts = {**plan.summary, "predictions": str(predictions), "list": str(output)}
        facts["save rates"] = "config" if uplift is None else f"learned uplift ({uplift})"
        page = render_targeting(
            "Retention targeting",
            facts,
            plan.personas,
            # The page's table leaves out what is the same on every row; the list keeps it all.
            plan.contacts.head(20).drop(
                columns=["as_of", "persona_id", "contact_cost"], errors="ignore"
            ),
            png_data_uri(figure_png(fig)),
        )
    # Both written only after all the work succeeded; each write is atomic.
    io.write_frame(plan.contacts, output)
    if report is not None:
        io.write_text(page, report)
    return TargetResult(plan, Path(output), None if report is None else Path(report))
