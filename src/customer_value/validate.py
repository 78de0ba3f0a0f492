"""Raw frames -> validated frames, plus a report of every row read, dropped or changed.

Validation happens once, at the boundary; code downstream trusts the validated frames. Violations
that cannot be fixed by a configured policy raise :class:`~customer_value.errors.DataValidationError`
naming the file, the column, a few offending values and what to do.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from customer_value.config import DataConfig, PolicyConfig
from customer_value.errors import DataValidationError
from customer_value.schema import INTERACTION_KINDS, TABLES, TableSchema

__all__ = ["ValidatedData", "ValidationReport", "validate_tables", "summarize"]

_FLOAT_ID = re.compile(r"^(\d+)\.0+$")
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
# Plausible event dates. Before 1900 is a placeholder (1850-01-01) or a typo; after today is a typo
# (2099 for 2019) or a day/month swap. Either would silently distort every recency and tenure.
_EARLIEST_DATE = pd.Timestamp("1900-01-01")
# Delimiters a user's csv commonly has, as they are written in YAML.
_DELIMITERS = {";": "';'", "\t": '"\\t"', "|": "'|'"}


@dataclass
class ValidationReport:
    """Counts per table and rule: what was read, dropped and changed."""

    rows: list[dict] = field(default_factory=list)
    facts: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # said to the user, not only counted

    def add(self, table: str, rule: str, action: str, n_rows: int) -> None:
        """Record that ``rule`` did ``action`` to ``n_rows`` rows of ``table``."""
        self.rows.append({"table": table, "rule": rule, "action": action, "rows": int(n_rows)})

    def to_frame(self) -> pd.DataFrame:
        """One row per (table, rule)."""
        return pd.DataFrame(self.rows, columns=["table", "rule", "action", "rows"])

    def dropped(self, table: str, rule: str) -> int:
        """Rows dropped by ``rule`` in ``table`` (0 when the rule did nothing)."""
        frame = self.to_frame()
        hit = frame[(frame.table == table) & (frame.rule == rule) & (frame.action == "dropped")]
        return int(hit.rows.sum())


@dataclass
class ValidatedData:
    """The validated contract tables. All but ``transactions`` may be absent."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None = None
    interactions: pd.DataFrame | None = None
    campaigns: pd.DataFrame | None = None


def _require_columns(frame: pd.DataFrame, schema: TableSchema, file: str) -> None:
    missing = [c for c in schema.required if c not in frame.columns]
    if not missing:
        return
    present = list(map(str, frame.columns))
    hint = (
        f"the file has columns {present}; map yours onto the contract under 'columns' "
        f"(source name: contract name) in the config"
    )
    # One column whose name holds a separator: the file was split on the wrong delimiter, and
    # mapping columns would not help.
    seps = [sep for sep in _DELIMITERS if len(present) == 1 and sep in present[0]]
    if seps:
        hint = (
            f"the file has one column {present[0]!r}: it seems to be separated by {seps[0]!r}; "
            f"set delimiter: {_DELIMITERS[seps[0]]} in the source config"
        )
    else:
        # Suggest the mapping itself when an unmapped column looks like a missing one (cust ->
        # customer_id), so the fix can be copied into the config.
        free = [c for c in present if c not in schema.columns]
        pairs = {}
        for want in missing:
            close = [
                c for c in free if len(c) >= 3 and (want.startswith(c.lower()) or c.lower() in want)
            ]
            close = close or difflib.get_close_matches(want, free, n=1, cutoff=0.5)
            if close and close[0] not in pairs:
                pairs[close[0]] = want
        if pairs:
            hint += ", e.g. columns: {" + ", ".join(f"{k}: {v}" for k, v in pairs.items()) + "}"
    raise DataValidationError(
        f"missing required column(s) {missing} for the {schema.name} table", file=file, hint=hint
    )


def _check_plausible_dates(parsed: pd.Series, raw: pd.Series, *, file: str, column: str) -> None:
    """Reject dates before 1900 or after today (see ``_EARLIEST_DATE``)."""
    # One day of slack: timestamps converted from a zone ahead of this machine's clock.
    latest = pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
    for bad, what in (
        (parsed >= latest, f"in the future (after today, {(latest - pd.Timedelta(days=1)).date()})"),
        (parsed < _EARLIEST_DATE, f"before {_EARLIEST_DATE.date()}"),
    ):
        if bad.any():
            raise DataValidationError(
                f"{int(bad.sum())} date(s) {what}",
                file=file,
                column=column,
                examples=raw[bad].astype(str).unique()[:5],
                hint="fix these dates (a typo in the year, or a placeholder date?); if day and month "
                "are swapped, set 'date_format' in the source config",
            )


def _canonical_id(text: str) -> str:
    """One id in canonical form: NFKC, without invisible format characters and outer spaces.

    NFKC turns full-width digits and letters into ASCII and a no-break space into a space; the
    format characters (category Cf) are the zero-width space and joiners, the BOM, the soft hyphen.
    """
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()


def _normalize_ids(values: pd.Series) -> pd.Series:
    """Ids as canonical trimmed strings; ``17850.0`` (ids written as floats) becomes ``17850``.

    Ids that differ only by invisible characters, full-width forms or surrounding spaces are one
    customer: an export that pasted ``１２３４５`` or ``12345\u200b`` must not split a customer in two.
    """
    s = values.astype("string").str.strip()
    odd = s.notna() & ~s.fillna("").str.isascii()
    if odd.any():  # the slow path only for the few non-ASCII ids
        s = s.copy()
        s[odd] = s[odd].map(_canonical_id)
    s = s.mask(s == "")
    return s.str.replace(_FLOAT_ID, r"\1", regex=True)


def _changed_ids(raw: pd.Series, normalized: pd.Series) -> int:
    """How many distinct raw ids were rewritten to another (canonical) id beyond trimming."""
    text = raw.astype("string").str.strip()
    odd = text.notna() & ~text.fillna("").str.isascii()
    return int(text[odd].nunique()) if odd.any() else 0


def rows_label(idx, file: str, limit: int = 5) -> list[str]:
    """Where rows are, as a user finds them.

    ``line N`` of a text file with a header (the header is line 1), ``row N`` (1-based) of a
    parquet file.
    """
    idx = list(idx)[:limit]
    if str(file).lower().endswith((".parquet", ".pq")) or Path(str(file)).is_dir():
        return [f"row {int(i) + 1}" for i in idx]
    return [f"line {int(i) + 2}" for i in idx]


EPOCH_UNITS = {"epoch_s": "s", "epoch_ms": "ms"}  # date_format values for Unix times
_EPOCH_LIKE = re.compile(r"^\d{9,10}$|^\d{12,13}$")


def _parse_epoch(
    values: pd.Series, fmt: str, *, file: str, column: str, timezone: str | None
) -> pd.Series:
    """Unix times (seconds or milliseconds since 1970-01-01 UTC) as naive local timestamps."""
    numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        raise DataValidationError(
            f"{int(bad.sum())} value(s) are not Unix times ({fmt})",
            file=file,
            column=column,
            examples=values[bad].astype(str).unique()[:5],
            hint="epoch_s expects whole seconds such as 1719705600, epoch_ms milliseconds",
        )
    try:
        parsed = pd.to_datetime(numbers, unit=EPOCH_UNITS[fmt], utc=True, errors="raise")
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        raise DataValidationError(
            f"Unix times out of range for {fmt}",
            file=file,
            column=column,
            hint="check the unit: 13 digits are milliseconds (epoch_ms), 10 digits seconds (epoch_s)",
        ) from None
    return parsed.dt.tz_convert(timezone or "UTC")


def _refuse_unmarked_epoch(text: pd.Series, fmt: str | None, *, file: str, column: str) -> None:
    """Integers of 10 or 13 digits are Unix times: say how to read them, not 'fix the format'."""
    present = text.dropna()
    if fmt is None and len(present) and present.str.match(_EPOCH_LIKE).all():
        unit = "epoch_ms" if present.str.len().max() >= 12 else "epoch_s"
        raise DataValidationError(
            "the values look like Unix times (seconds or milliseconds since 1970), not dates",
            file=file,
            column=column,
            examples=present.unique()[:3],
            hint=f"set date_format: {unit} in this source's config "
            f"({'milliseconds' if unit == 'epoch_ms' else 'seconds'})",
        )


def _parse_datetime(
    values: pd.Series, *, file: str, column: str, fmt: str | None, timezone: str | None
) -> pd.Series:
    if fmt in EPOCH_UNITS:
        parsed = _parse_epoch(values, fmt, file=file, column=column, timezone=timezone)
    elif pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("string").str.strip()
        _refuse_unmarked_epoch(text, fmt, file=file, column=column)
        present = text.notna()
        has_tz = text.str.contains(_TZ_SUFFIX, na=False)
        if has_tz.any() and (has_tz != present).any() and timezone is None:
            raise DataValidationError(
                "some timestamps carry a timezone and others do not",
                file=file,
                column=column,
                examples=[*text[has_tz].head(2), *text[present & ~has_tz].head(2)],
                hint="write all timestamps in one form, or set data.timezone so that naive ones "
                "are read in that zone",
            )
        try:
            if has_tz.any():
                parsed = pd.to_datetime(text, format=fmt or "ISO8601", utc=True, errors="coerce")
                if (present & ~has_tz).any():
                    naive = pd.to_datetime(
                        text[~has_tz], format=fmt or "ISO8601", errors="coerce"
                    ).dt.tz_localize(timezone)
                    parsed = parsed.where(has_tz, naive.dt.tz_convert("UTC").reindex(text.index))
            else:
                parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce")
        except (ValueError, TypeError) as exc:
            raise DataValidationError(
                f"cannot parse dates: {exc}",
                file=file,
                column=column,
                hint="set 'date_format' in the source config (e.g. %Y-%m-%d %H:%M:%S or %Y%m%d)",
            ) from None
        bad = parsed.isna() & present
        if bad.any():
            raise DataValidationError(
                f"{int(bad.sum())} value(s) are not dates"
                + (f" in format {fmt!r}" if fmt else " (ISO 8601 expected)"),
                file=file,
                column=column,
                examples=text[bad].unique()[:5],
                hint="fix the values, or set 'date_format' in the source config to match them",
            )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(timezone or "UTC").dt.tz_localize(None)
    # pandas parses 2999-01-05 at a coarser resolution; the cast to nanoseconds below would then
    # fail with OutOfBoundsDatetime. Such a year is a typo, not a format problem.
    odd_year = parsed.notna() & ((parsed < pd.Timestamp.min) | (parsed > pd.Timestamp.max))
    if odd_year.any():
        raise DataValidationError(
            f"{int(odd_year.sum())} date(s) with an impossible year",
            file=file,
            column=column,
            examples=values[odd_year].astype(str).unique()[:5],
            hint="fix these dates (a typo in the year?)",
        )
    return parsed.astype("datetime64[ns]")


def _parse_float(values: pd.Series, *, file: str, column: str) -> pd.Series:
    """Numbers from numbers or text; text that is no number, and any infinite value, is an error.

    Every numeric column of every table goes through here, so ``inf``, ``-Infinity`` or a value
    too large for a float (``1e400``) is refused in amounts, costs and scores alike.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        parsed = values.astype("float64")
    else:
        text = values.astype("string").str.strip()
        parsed = pd.to_numeric(text, errors="coerce")
        bad = parsed.isna() & text.notna()
        if bad.any():
            raise DataValidationError(
                f"{int(bad.sum())} value(s) are not numbers",
                file=file,
                column=column,
                examples=text[bad].unique()[:5],
                hint="remove currency symbols and thousands separators, or map a numeric column",
            )
        parsed = parsed.astype("float64")
    infinite = np.isinf(parsed.to_numpy())
    if infinite.any():
        rows = np.flatnonzero(infinite)
        raise DataValidationError(
            f"{len(rows)} value(s) are infinite or too large for a number, at "
            f"{', '.join(rows_label(rows, file))}",
            file=file,
            column=column,
            examples=values.iloc[rows[:5]].tolist(),
            hint="fix these values (a unit or format error, or a placeholder such as inf)",
        )
    return parsed


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def _parse_bool(values: pd.Series, *, file: str, column: str = "is_return") -> pd.Series:
    """Booleans from bools, 0/1 or text (true/false, yes/no); anything else is an error."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = values.astype("string").str.strip().str.lower().fillna("")
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        raise DataValidationError(
            "values that are not true/false",
            file=file,
            column=column,
            examples=values[bad].unique()[:5],
            hint="use true/false (or 1/0)",
        )
    return text.isin(_TRUE)


EXTREME_FACTOR = 1000.0


def _extreme_amounts(
    frame: pd.DataFrame, keep: pd.Series, policies: PolicyConfig, file: str, report: ValidationReport
) -> pd.Series:
    """Flag amounts over ``EXTREME_FACTOR`` x the 99th percentile of |amount|.

    One customer with amounts of 1e12 decides every total and every rank metric alone (every CLV
    model then scores a normalized Gini of 1.0). Real logs have large wholesale orders, but not a
    thousand times the 99th percentile; such rows are typing or unit errors far more often.
    """
    size = frame["amount"].abs().where(keep)
    scale = float(np.nanpercentile(size.to_numpy(dtype=float), 99)) if keep.any() else 0.0
    extreme = keep & (size > EXTREME_FACTOR * scale) if scale > 0 else keep & False
    n = int(extreme.sum())
    if n and policies.extreme_amounts == "error":
        raise DataValidationError(
            f"{n} amount(s) exceed {EXTREME_FACTOR:,.0f}x the 99th percentile of amounts "
            f"({scale:,.2f}), at {', '.join(rows_label(np.flatnonzero(extreme), file))}",
            file=file,
            column="amount",
            examples=frame.loc[extreme, "amount"].head(5).tolist(),
            hint="fix them, or set data.policies.extreme_amounts to 'drop' or 'keep'",
        )
    action = "dropped" if policies.extreme_amounts == "drop" else "kept (check them)"
    report.add("transactions", "extreme_amounts", action, n)
    if n and policies.extreme_amounts == "keep":
        report.warnings.append(
            f"{n} transaction amount(s) exceed {EXTREME_FACTOR:,.0f}x the 99th percentile "
            f"({scale:,.2f}), e.g. {frame.loc[extreme, 'amount'].iloc[0]:,.2f} at "
            f"{rows_label(np.flatnonzero(extreme), file, 1)[0]} of {Path(file).name}: they dominate "
            "totals and rankings; fix them or set data.policies.extreme_amounts: drop"
        )
    return keep & ~extreme if policies.extreme_amounts == "drop" else keep


def _validate_transactions(
    raw: pd.DataFrame,
    file: str,
    policies: PolicyConfig,
    timezone: str | None,
    date_format: str | None,
    report: ValidationReport,
) -> pd.DataFrame:
    schema = TABLES["transactions"]
    table = "transactions"
    _require_columns(raw, schema, file)
    n_read = len(raw)
    report.add(table, "read", "read", n_read)
    frame = pd.DataFrame(index=raw.index)
    frame["customer_id"] = _normalize_ids(raw["customer_id"])
    report.add(
        table, "ids_normalized", "unified", _changed_ids(raw["customer_id"], frame["customer_id"])
    )
    report.facts[table] = {
        "rows_read": n_read,
        "customers_before_filtering": int(frame["customer_id"].nunique(dropna=True)),
    }

    missing_id = frame["customer_id"].isna()
    if missing_id.any():
        if policies.missing_customer_id == "error":
            raise DataValidationError(
                f"{int(missing_id.sum())} row(s) have no customer id",
                file=file,
                column="customer_id",
                examples=rows_label(np.flatnonzero(missing_id), file),
                hint="set data.policies.missing_customer_id: drop to drop them",
            )
    keep = ~missing_id
    report.add(table, "missing_customer_id", "dropped", int(missing_id.sum()))

    frame["timestamp"] = _parse_datetime(
        raw["timestamp"].where(keep),
        file=file,
        column="timestamp",
        fmt=date_format,
        timezone=timezone,
    )
    _check_plausible_dates(frame["timestamp"], raw["timestamp"], file=file, column="timestamp")
    missing_ts = frame["timestamp"].isna() & keep
    if missing_ts.any():
        raise DataValidationError(
            f"{int(missing_ts.sum())} row(s) have no timestamp",
            file=file,
            column="timestamp",
            examples=rows_label(np.flatnonzero(missing_ts), file),
            hint="every transaction needs a date; fill or remove these rows",
        )
    frame["amount"] = _parse_float(raw["amount"].where(keep), file=file, column="amount")
    missing_amount = frame["amount"].isna() & keep
    if missing_amount.any():
        if policies.missing_amount == "error":
            raise DataValidationError(
                f"{int(missing_amount.sum())} row(s) have no amount",
                file=file,
                column="amount",
                examples=rows_label(np.flatnonzero(missing_amount), file),
                hint="fill them, or set data.policies.missing_amount: drop",
            )
        keep &= ~missing_amount
    report.add(table, "missing_amount", "dropped", int(missing_amount.sum()))
    for col, kind in schema.optional.items():
        if col not in raw.columns or col == "is_return":
            continue
        if kind == "float":
            frame[col] = _parse_float(raw[col].where(keep), file=file, column=col)
        else:
            frame[col] = raw[col].astype("string").str.strip()
    frame["is_return"] = (
        _parse_bool(raw["is_return"], file=file) if "is_return" in raw.columns else False
    )

    if policies.exclude_products:
        if "product_id" not in frame.columns:
            raise DataValidationError(
                "data.policies.exclude_products is set but the file has no product_id column",
                file=file,
                hint="map a product column to product_id, or empty exclude_products",
            )
        pid = frame["product_id"].fillna("")
        uniq = pid[keep].unique()
        hits = {p for p in uniq if any(fnmatch.fnmatchcase(p, pat) for pat in policies.exclude_products)}
        excluded = keep & pid.isin(hits)
        report.add(table, "exclude_products", "dropped", int(excluded.sum()))
        keep &= ~excluded

    keep = _extreme_amounts(frame, keep, policies, file, report)
    zero = keep & (frame["amount"] == 0)
    if policies.zero_amounts == "drop":
        report.add(table, "zero_amounts", "dropped", int(zero.sum()))
        keep &= ~zero

    negative = keep & (frame["amount"] < 0) & ~frame["is_return"]
    if negative.any():
        if policies.negative_amounts == "error":
            raise DataValidationError(
                f"{int(negative.sum())} negative amount(s) not marked as returns",
                file=file,
                column="amount",
                examples=frame.loc[negative, "amount"].head(5).tolist(),
                hint="set data.policies.negative_amounts to 'return' or 'drop', or add a "
                "cancellation rule to the source",
            )
        if policies.negative_amounts == "drop":
            keep &= ~negative
            report.add(table, "negative_amounts", "dropped", int(negative.sum()))
        else:
            frame.loc[negative, "is_return"] = True
            report.add(table, "negative_amounts", "marked as return", int(negative.sum()))

    # A cancellation line with a positive amount would add spend; it is a refund, so flip its sign.
    flip = keep & frame["is_return"] & (frame["amount"] > 0)
    frame.loc[flip, "amount"] = -frame.loc[flip, "amount"]
    report.add(table, "returns_positive_amount", "sign flipped", int(flip.sum()))

    returns = keep & frame["is_return"]
    if policies.returns == "drop":
        keep &= ~returns
        report.add(table, "returns", "dropped", int(returns.sum()))
    else:
        report.add(table, "returns", "kept as negative amounts", int(returns.sum()))

    frame = frame[keep]
    if policies.duplicates in ("drop", "error"):
        # Duplicates are judged on the raw row (every source column), not just the contract columns.
        dup = raw.loc[frame.index].duplicated(keep="first")
        if policies.duplicates == "error" and dup.any():
            raise DataValidationError(
                f"{int(dup.sum())} row(s) repeat an earlier row exactly (duplicates)",
                file=file,
                examples=rows_label(frame.index[dup.to_numpy()], file),
                hint="remove them, or set data.policies.duplicates to 'drop' (double-recorded "
                "lines) or 'keep' (real repeat purchases)",
            )
        report.add(table, "duplicates", "dropped", int(dup.sum()))
        frame = frame[~dup.to_numpy()]
    if frame.empty:
        raise DataValidationError(
            "no transactions are left after validation",
            file=file,
            hint="see the validation report for the rules that dropped rows; relax the policies",
        )
    frame = frame.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    frame["customer_id"] = frame["customer_id"].astype(str)
    report.add(table, "output", "kept", len(frame))
    return frame


def _validate_customers(
    raw: pd.DataFrame,
    file: str,
    date_format: str | None,
    timezone: str | None,
    report: ValidationReport,
    policies: PolicyConfig | None = None,
) -> pd.DataFrame:
    schema = TABLES["customers"]
    _require_columns(raw, schema, file)
    report.add("customers", "read", "read", len(raw))
    frame = pd.DataFrame({"customer_id": _normalize_ids(raw["customer_id"])})
    missing = frame["customer_id"].isna()
    report.add("customers", "missing_customer_id", "dropped", int(missing.sum()))
    if "signup_date" in raw.columns:
        frame["signup_date"] = _parse_datetime(
            raw["signup_date"], file=file, column="signup_date", fmt=date_format, timezone=timezone
        )
        _check_plausible_dates(frame["signup_date"], raw["signup_date"], file=file, column="signup_date")
    if "acquisition_channel" in raw.columns:
        frame["acquisition_channel"] = raw["acquisition_channel"].astype("string")
    if "acquisition_cost" in raw.columns:
        frame["acquisition_cost"] = _parse_float(
            raw["acquisition_cost"], file=file, column="acquisition_cost"
        )
        neg = frame["acquisition_cost"] < 0
        if neg.any():
            raise DataValidationError(
                f"{int(neg.sum())} negative acquisition cost(s)",
                file=file,
                column="acquisition_cost",
                examples=frame.loc[neg, "acquisition_cost"].head(5).tolist(),
                hint="fix these costs: what acquiring a customer cost is 0 or more",
            )
    if "referred_by" in raw.columns:
        frame["referred_by"] = _normalize_ids(raw["referred_by"])
        # A customer cannot refer themselves: their own revenue would be counted twice.
        own = frame["referred_by"].notna() & (frame["referred_by"] == frame["customer_id"])
        frame.loc[own, "referred_by"] = pd.NA
        report.add("customers", "self_referral", "referrer cleared", int(own.sum()))
    frame = frame[~missing]
    dup = frame["customer_id"].duplicated(keep="first")
    if dup.any() and policies is not None and policies.duplicate_customer_id == "error":
        raise DataValidationError(
            f"{int(dup.sum())} row(s) repeat a customer id of an earlier row",
            file=file,
            column="customer_id",
            examples=frame.loc[dup, "customer_id"].unique()[:5],
            hint="keep one row per customer, or set data.policies.duplicate_customer_id: drop to "
            "keep the first row of each",
        )
    report.add("customers", "duplicate_customer_id", "dropped", int(dup.sum()))
    frame = frame[~dup].sort_values("customer_id").reset_index(drop=True)
    frame["customer_id"] = frame["customer_id"].astype(str)
    if "referred_by" in frame.columns:
        frame["referred_by"] = (
            frame["referred_by"].astype(object).where(frame["referred_by"].notna(), None)
        )
    report.add("customers", "output", "kept", len(frame))
    return frame


_SCORE_RANGE = {"nps": (0, 10), "csat": (1, 5)}


def _validate_interactions(
    raw: pd.DataFrame, file: str, date_format: str | None, timezone: str | None, report: ValidationReport
) -> pd.DataFrame:
    schema = TABLES["interactions"]
    _require_columns(raw, schema, file)
    report.add("interactions", "read", "read", len(raw))
    frame = pd.DataFrame({"customer_id": _normalize_ids(raw["customer_id"])})
    missing = frame["customer_id"].isna()
    report.add("interactions", "missing_customer_id", "dropped", int(missing.sum()))
    frame["timestamp"] = _parse_datetime(
        raw["timestamp"].where(~missing),
        file=file,
        column="timestamp",
        fmt=date_format,
        timezone=timezone,
    )
    _check_plausible_dates(frame["timestamp"], raw["timestamp"], file=file, column="timestamp")
    frame["kind"] = raw["kind"].astype("string").str.strip().str.lower()
    unknown = ~frame["kind"].isin(INTERACTION_KINDS) & ~missing
    if unknown.any():
        raise DataValidationError(
            f"{int(unknown.sum())} interaction(s) of unknown kind",
            file=file,
            column="kind",
            examples=frame.loc[unknown, "kind"].unique()[:5],
            hint=f"kind must be one of {', '.join(INTERACTION_KINDS)}",
        )
    if "score" in raw.columns:
        frame["score"] = _parse_float(raw["score"], file=file, column="score")
    else:
        frame["score"] = np.nan
    for kind, (lo, hi) in _SCORE_RANGE.items():
        rows = (frame["kind"] == kind) & frame["score"].notna()
        bad = rows & ((frame["score"] < lo) | (frame["score"] > hi))
        if bad.any():
            raise DataValidationError(
                f"{int(bad.sum())} {kind} score(s) outside {lo}..{hi}",
                file=file,
                column="score",
                examples=frame.loc[bad, "score"].head(5).tolist(),
                hint=f"{kind} answers range from {lo} to {hi}; fix the scores or the kind",
            )
    frame = frame[~missing].sort_values(["customer_id", "timestamp"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["kind"] = frame["kind"].astype(str)
    report.add("interactions", "output", "kept", len(frame))
    return frame


def _validate_campaigns(
    raw: pd.DataFrame, file: str, date_format: str | None, timezone: str | None, report: ValidationReport
) -> pd.DataFrame:
    """One row per customer and contact day, with ``treated`` a real bool and costs ≥ 0.

    A missing ``treated`` is an error rather than "control": guessing the arm of a customer would
    bias every effect estimated from the table.
    """
    schema = TABLES["campaigns"]
    _require_columns(raw, schema, file)
    report.add("campaigns", "read", "read", len(raw))
    frame = pd.DataFrame({"customer_id": _normalize_ids(raw["customer_id"])})
    missing = frame["customer_id"].isna()
    report.add("campaigns", "missing_customer_id", "dropped", int(missing.sum()))
    frame["date"] = _parse_datetime(
        raw["date"], file=file, column="date", fmt=date_format, timezone=timezone
    ).dt.normalize()
    _check_plausible_dates(frame["date"], raw["date"], file=file, column="date")
    undated = frame["date"].isna() & ~missing
    text = raw["treated"].astype("string").str.strip().fillna("")
    no_arm = (text == "").to_numpy(dtype=bool) & ~missing.to_numpy(dtype=bool)
    for bad, column, what in (
        (undated.to_numpy(dtype=bool), "date", "no date"),
        (no_arm, "treated", "no arm"),
    ):
        if bad.any():
            rows = np.flatnonzero(bad)
            raise DataValidationError(
                f"{len(rows)} campaign row(s) with {what}, at {', '.join(rows_label(rows, file))}",
                file=file,
                column=column,
                hint="every row needs the contact date and whether the customer was contacted "
                "(treated true) or held back (false)",
            )
    frame["treated"] = _parse_bool(raw["treated"], file=file, column="treated")
    if "channel" in raw.columns:
        frame["channel"] = raw["channel"].astype("string").str.strip()
    if "cost" in raw.columns:
        frame["cost"] = _parse_float(raw["cost"], file=file, column="cost")
        neg = frame["cost"] < 0
        if neg.any():
            raise DataValidationError(
                f"{int(neg.sum())} negative contact cost(s)",
                file=file,
                column="cost",
                examples=frame.loc[neg, "cost"].head(5).tolist(),
                hint="a contact costs 0 or more",
            )
    frame = frame[~missing]
    key = ["customer_id", "date"]
    arms = frame.groupby(key)["treated"].nunique()
    if (arms > 1).any():
        clash = arms[arms > 1].index[:3]
        raise DataValidationError(
            f"{int((arms > 1).sum())} customer(s) are both treated and control on the same date",
            file=file,
            column="treated",
            examples=[f"{c} on {d.date()}" for c, d in clash],
            hint="keep one arm per customer and date",
        )
    dup = frame.duplicated(key, keep="first")
    report.add("campaigns", "duplicate_customer_date", "dropped", int(dup.sum()))
    frame = frame[~dup].sort_values(key, kind="stable").reset_index(drop=True)
    frame["customer_id"] = frame["customer_id"].astype(str)
    report.add("campaigns", "output", "kept", len(frame))
    return frame


def validate_tables(
    transactions: pd.DataFrame,
    config: DataConfig,
    customers: pd.DataFrame | None = None,
    interactions: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
) -> tuple[ValidatedData, ValidationReport]:
    """Validate raw contract frames (as read by :func:`customer_value.io.read_source`).

    Parameters
    ----------
    transactions, customers, interactions, campaigns : DataFrame
        Raw frames under contract column names; all but the first are optional.
    config : DataConfig
        Sources (for file names and date formats) and policies.

    Returns
    -------
    (ValidatedData, ValidationReport)
        Typed frames sorted by customer and time, and the per-rule report.

    Raises
    ------
    DataValidationError
        When a rule cannot be satisfied by the configured policies.
    """
    report = ValidationReport()
    src = config.transactions
    tx = _validate_transactions(
        transactions, str(src.path), config.policies, config.timezone, src.date_format, report
    )
    cust = inter = None
    if customers is not None and config.customers is not None:
        cust = _validate_customers(
            customers,
            str(config.customers.path),
            config.customers.date_format,
            config.timezone,
            report,
            config.policies,
        )
    if interactions is not None and config.interactions is not None:
        inter = _validate_interactions(
            interactions,
            str(config.interactions.path),
            config.interactions.date_format,
            config.timezone,
            report,
        )
    camp = None
    if campaigns is not None and config.campaigns is not None:
        camp = _validate_campaigns(
            campaigns,
            str(config.campaigns.path),
            config.campaigns.date_format,
            config.timezone,
            report,
        )
    _report_unmatched(tx, cust, inter, report, camp)
    report.facts["summary"] = summarize(tx)
    report.facts["warnings"] = list(report.warnings)
    return ValidatedData(tx, cust, inter, camp), report


def _report_unmatched(tx, cust, inter, report: ValidationReport, camp=None) -> None:
    """Customers-table rows, referrers and interactions whose customer has no transaction.

    They are kept (a customer may not have bought yet) but take no part in any feature, so the
    report says how many; many of them usually means the ids are written differently in the
    two files (a prefix, leading zeros).
    """
    known = pd.Index(tx["customer_id"].unique())
    for name, frame, col in (
        ("customers", cust, "customer_id"),
        ("customers", cust, "referred_by"),
        ("interactions", inter, "customer_id"),
        ("campaigns", camp, "customer_id"),
    ):
        if frame is None or col not in frame.columns:
            continue
        ids = frame[col].dropna().astype(str)
        unmatched = ~ids.isin(known)
        n = int(unmatched.sum())
        rule = (
            "referrer_without_transactions" if col == "referred_by" else "customer_without_transactions"
        )
        report.add(name, rule, "kept, unused", n)
        if n and n == len(ids) and len(ids):
            report.warnings.append(
                f"no {name} {col} matches a transaction's customer_id (e.g. {ids.iloc[0]!r}): "
                "check that both files write ids the same way"
            )


def summarize(transactions: pd.DataFrame) -> dict:
    """Customers, transactions, date range and revenue of a validated transaction table."""
    tx = transactions
    return {
        "customers": int(tx["customer_id"].nunique()),
        "transactions": int(len(tx)),
        "orders": int(tx["order_id"].nunique()) if "order_id" in tx.columns else None,
        "first_date": str(tx["timestamp"].min().date()),
        "last_date": str(tx["timestamp"].max().date()),
        "revenue": round(float(tx["amount"].sum()), 2),
        "returns": int(tx["is_return"].sum()),
    }
