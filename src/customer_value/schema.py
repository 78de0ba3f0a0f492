"""The column vocabulary of the data contract (DESIGN.md §4).

Names carry units where they have one. Validated frames hold exactly these columns, with these dtypes;
optional columns are present only when the source had them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from customer_value.errors import UserError

__all__ = [
    "TABLES",
    "TableSchema",
    "INTERACTION_KINDS",
    "Column",
    "CheckPlan",
    "FrameStats",
    "PredictionSchema",
    "pandas_kind",
    "pandas_stats",
]

INTERACTION_KINDS = ("nps", "csat", "support_ticket")


@dataclass(frozen=True)
class TableSchema:
    """Required and optional columns of one contract table, with their logical types."""

    name: str
    required: dict[str, str]
    optional: dict[str, str]

    @property
    def columns(self) -> dict[str, str]:
        """All contract columns, required first."""
        return {**self.required, **self.optional}


TRANSACTIONS = TableSchema(
    name="transactions",
    required={"customer_id": "string", "timestamp": "datetime", "amount": "float"},
    optional={
        "order_id": "string",
        "quantity": "float",
        "product_id": "string",
        "category": "string",
        "channel": "string",
        "cost": "float",
        "discount": "float",
        "is_return": "bool",
    },
)

CUSTOMERS = TableSchema(
    name="customers",
    required={"customer_id": "string"},
    optional={
        "signup_date": "datetime",
        "acquisition_channel": "string",
        "acquisition_cost": "float",
        "referred_by": "string",
    },
)

INTERACTIONS = TableSchema(
    name="interactions",
    required={"customer_id": "string", "timestamp": "datetime", "kind": "string"},
    optional={"score": "float"},
)

#: One row per customer contacted (treated) or held back (control) by a retention campaign on a date.
CAMPAIGNS = TableSchema(
    name="campaigns",
    required={"customer_id": "string", "date": "datetime", "treated": "bool"},
    optional={"channel": "string", "cost": "float"},
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (TRANSACTIONS, CUSTOMERS, INTERACTIONS, CAMPAIGNS)}


# --------------------------------------------------------------------------------------------------
# Predictions


@dataclass(frozen=True)
class Column:
    """One prediction column: its name, logical type, position and the values it may hold.

    ``order`` places the column in the output (ascending; ties keep declaration order), so a task
    added later can put its columns where a reader expects them. ``required=False`` marks columns
    that may be absent (the reason columns of predictions made without reasons).
    """

    name: str
    dtype: str  # "string" | "datetime" | "float" | "int"
    order: float
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    required: bool = True


DTYPES = ("string", "datetime", "float", "int")

# The kinds of values (read from a pandas or a Spark column type) that satisfy each declared dtype.
# Integers are numbers, so they fit "float". "null" is a column without one value: it fits any
# dtype, and whether it may be empty is the null rule's business.
_FITS = {
    "string": frozenset({"string", "null"}),
    "datetime": frozenset({"datetime", "null"}),
    "float": frozenset({"float", "int", "null"}),
    "int": frozenset({"int", "null"}),
}

# Spark SQL types of the declared dtypes (DDL spelling).
_SPARK_TYPES = {"string": "string", "datetime": "timestamp", "float": "double", "int": "long"}


@dataclass(frozen=True)
class CheckPlan:
    """What a schema check measures in one frame: the aggregates either engine computes.

    The plan is made from the frame's column names and kinds alone, by
    :meth:`PredictionSchema.plan`, so the pandas and the Spark engine measure the same things.

    Attributes
    ----------
    kinds : dict
        Column name -> the kind of its values (``string``, ``datetime``, ``float``, ``int``,
        ``bool``, ``null`` or ``other``), in the frame's order.
    repeated : tuple of str
        Names that label more than one column (measured no further).
    key : str or None
        The key column, when present with values of its declared kind (non-null and distinct
        values are counted).
    nulls : tuple of str
        Present non-nullable columns; their missing values (NaN included) are counted.
    bounded : tuple of Column
        Present numeric columns with bounds; values outside are counted, min and max taken.
    rank : str or None
        The rank column, when present with integer values (count, min, max, distinct count).
    """

    kinds: Mapping[str, str]
    repeated: tuple[str, ...]
    key: str | None
    nulls: tuple[str, ...]
    bounded: tuple[Column, ...]
    rank: str | None


@dataclass(frozen=True)
class FrameStats:
    """The measurements a :class:`CheckPlan` asks for, as plain Python numbers.

    Attributes
    ----------
    rows : int
        Rows in the frame.
    keys, distinct_keys : int
        Non-null and distinct values of the key column (0 when the plan has no key).
    nulls : dict
        Column -> missing values, for ``plan.nulls``.
    outside : dict
        Column -> (values outside its bounds, min, max) for ``plan.bounded``; min and max are
        None when the column has no value.
    rank : tuple or None
        (non-null values, min, max, distinct values) of ``plan.rank``.
    """

    rows: int
    keys: int = 0
    distinct_keys: int = 0
    nulls: Mapping[str, int] = field(default_factory=dict)
    outside: Mapping[str, tuple[int, float | None, float | None]] = field(default_factory=dict)
    rank: tuple[int, int | None, int | None, int] | None = None


@dataclass(frozen=True)
class PredictionSchema:
    """The prediction table as data: its columns, its key, its rank and how it is replaced.

    One description serves the pandas check (:meth:`validate`), the Spark check
    (:func:`customer_value.engines.sinks.validate_spark`), Spark's output type
    (:meth:`spark_ddl`) and the SQL table a sink creates. The rules themselves live in one place,
    :meth:`problems`, which reads measurements either engine makes (:class:`FrameStats`).

    Attributes
    ----------
    columns : tuple of Column
        Every column a prediction table may have.
    key : str
        The column whose values identify a row; duplicates are refused.
    rank_column : str or None
        An integer column that must hold exactly 1..n (n = rows).
    partition : str or None
        The column a table sink replaces by: publishing deletes the rows with the partition values
        the new frame holds, then inserts the frame.
    """

    columns: tuple[Column, ...]
    key: str = "customer_id"
    rank_column: str | None = "retention_rank"
    partition: str | None = "as_of"

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"columns declared more than once: {repeated}")
        unknown = sorted({c.dtype for c in self.columns} - set(DTYPES))
        if unknown:
            raise ValueError(f"unknown dtypes {unknown}; use one of {list(DTYPES)}")
        for role in ("key", "rank_column", "partition"):
            name = getattr(self, role)
            if name is not None and name not in names:
                raise ValueError(f"{role} {name!r} is not one of the columns")
        if self.rank_column is not None and self.column(self.rank_column).dtype != "int":
            raise ValueError(f"rank_column {self.rank_column!r} must be an int column")

    @property
    def names(self) -> list[str]:
        """Column names in output order (by ``order``; ties keep declaration order)."""
        return [c.name for c in sorted(self.columns, key=lambda c: c.order)]

    def column(self, name: str) -> Column:
        """The declared column called ``name`` (KeyError when there is none)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def spark_ddl(self, exclude: Iterable[str] = ()) -> str:
        """The columns as Spark DDL (``name type, ...``, names backticked), in output order."""
        skip = set(exclude)
        return ", ".join(
            f"`{c.name.replace('`', '``')}` {_SPARK_TYPES[c.dtype]}"
            for c in sorted(self.columns, key=lambda c: c.order)
            if c.name not in skip
        )

    def plan(self, kinds: Iterable[tuple[str, str]]) -> CheckPlan:
        """Decide what to measure in a frame with these (column name, kind) pairs, in its order.

        Values are only compared (bounds, key, rank) in columns whose kind fits the declared
        dtype: a text column where numbers belong is reported as such, not compared with numbers.
        """
        pairs = list(kinds)
        seen = [n for n, _ in pairs]
        repeated = tuple(dict.fromkeys(n for n in seen if seen.count(n) > 1))
        present = dict(pairs)
        fits = {
            c.name: present[c.name] in _FITS[c.dtype]
            for c in self.columns
            if c.name in present and c.name not in repeated
        }
        ordered = [n for n in self.names if n in fits]
        return CheckPlan(
            kinds=present,
            repeated=repeated,
            key=self.key if fits.get(self.key) else None,
            nulls=tuple(n for n in ordered if not self.column(n).nullable),
            bounded=tuple(
                self.column(n)
                for n in ordered
                if fits[n]
                and present[n] in ("int", "float")
                and (self.column(n).low is not None or self.column(n).high is not None)
            ),
            rank=self.rank_column
            if fits.get(self.rank_column) and present[self.rank_column] == "int"
            else None,
        )

    def problems(
        self, plan: CheckPlan, stats: FrameStats, expected_customers: int | None = None
    ) -> list[str]:
        """Every rule the frame breaks, in a fixed order (the one list of rules).

        Parameters
        ----------
        plan : CheckPlan
            What was measured (from :meth:`plan`).
        stats : FrameStats
            The measurements, from pandas or Spark.
        expected_customers : int, optional
            The number of rows the frame must have.

        Returns
        -------
        list of str
            One entry per broken rule; empty when the frame is valid.
        """
        out = []
        declared = {c.name: c for c in self.columns}
        missing = [n for n in self.names if n not in plan.kinds and declared[n].required]
        if missing:
            out.append(f"missing columns {missing}")
        extra = [n for n in plan.kinds if n not in declared]
        if extra:
            out.append(f"unexpected columns {extra}")
        if plan.repeated:
            out.append(f"repeated columns {list(plan.repeated)}")
        for name in self.names:
            kind = plan.kinds.get(name)
            if (
                name not in plan.repeated
                and kind is not None
                and kind not in _FITS[declared[name].dtype]
            ):
                out.append(f"'{name}' holds {kind} values where {declared[name].dtype} is declared")
        if plan.key is not None and stats.keys > stats.distinct_keys:
            out.append(f"{stats.keys - stats.distinct_keys} duplicate {plan.key} value(s)")
        if expected_customers is not None and stats.rows != expected_customers:
            out.append(f"{stats.rows} rows for {expected_customers} customers")
        out += [f"{stats.nulls[n]} missing value(s) in '{n}'" for n in plan.nulls if stats.nulls[n]]
        for col in plan.bounded:
            count, low, high = stats.outside[col.name]
            if count:
                out.append(
                    f"{count} value(s) of '{col.name}' outside {_interval(col)} "
                    f"(min {low:g}, max {high:g})"
                )
        if plan.rank is not None:
            count, low, high, distinct = stats.rank
            n = stats.rows
            if not (count == distinct == n and (n == 0 or (low == 1 and high == n))):
                out.append(
                    f"'{plan.rank}' is not exactly 1..{n} ({count} values from {low} to {high}, "
                    f"{distinct} distinct)"
                )
        return out

    def enforce(self, plan: CheckPlan, stats: FrameStats, expected_customers: int | None = None) -> None:
        """Raise :class:`~customer_value.errors.UserError` listing every problem, if any."""
        problems = self.problems(plan, stats, expected_customers)
        if problems:
            raise UserError(
                "predictions failed their schema check: "
                + "; ".join(problems)
                + "; nothing was written",
                hint="this is a bug or a broken model; report it with the config used",
            )

    def validate(self, frame: pd.DataFrame, expected_customers: int | None = None) -> None:
        """Check a pandas frame against the schema; raise listing every problem.

        Parameters
        ----------
        frame : DataFrame
            The predictions, one row per customer.
        expected_customers : int, optional
            The number of rows the frame must have.

        Raises
        ------
        UserError
            Missing, unexpected or repeated columns, values of the wrong type, duplicate keys, a
            wrong row count, missing values in non-nullable columns, values out of bounds, or a
            rank that is not exactly 1..n.
        """
        plan = self.plan(
            (str(name), pandas_kind(frame.iloc[:, i])) for i, name in enumerate(frame.columns)
        )
        self.enforce(plan, pandas_stats(frame, plan), expected_customers)


def _interval(col: Column) -> str:
    if col.low is not None and col.high is not None:
        return f"[{col.low:g}, {col.high:g}]"
    return f">= {col.low:g}" if col.low is not None else f"<= {col.high:g}"


# What pandas' infer_dtype says about an object column, as a kind.
_INFERRED = {
    "string": "string",
    "empty": "null",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "boolean": "bool",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}


def pandas_kind(values: pd.Series) -> str:
    """The kind of values a pandas column holds (see :class:`CheckPlan`)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if pd.api.types.is_object_dtype(dtype):
        return _INFERRED.get(pd.api.types.infer_dtype(values, skipna=True), "other")
    return "other"


def pandas_stats(frame: pd.DataFrame, plan: CheckPlan) -> FrameStats:
    """Measure what ``plan`` asks for in a pandas frame (NaN and None count as missing)."""
    keys = distinct = 0
    if plan.key is not None:
        keys, distinct = int(frame[plan.key].notna().sum()), int(frame[plan.key].nunique())
    outside = {}
    for col in plan.bounded:
        values = frame[col.name].astype("float64")
        low = values < col.low if col.low is not None else False
        high = values > col.high if col.high is not None else False
        valid = values.notna().any()
        outside[col.name] = (
            int((low | high).sum()),
            float(values.min()) if valid else None,
            float(values.max()) if valid else None,
        )
    rank = None
    if plan.rank is not None:
        values = frame[plan.rank]
        count = int(values.notna().sum())
        rank = (
            count,
            int(values.min()) if count else None,
            int(values.max()) if count else None,
            int(values.nunique()),
        )
    return FrameStats(
        rows=len(frame),
        keys=keys,
        distinct_keys=distinct,
        nulls={n: int(frame[n].isna().sum()) for n in plan.nulls},
        outside=outside,
        rank=rank,
    )
