"""Where predictions go: outputs parsed once into typed sinks, checked early, published atomically.

``--output`` (with ``--table``) is parsed once, at the start of a job, by :func:`parse_sink` into a
:class:`FileSink`, :class:`SqlSink` or :class:`TableSink`, and :func:`check_sink` refuses a target
that cannot be written before any data is read. At the end :func:`publish` (pandas) or
:func:`publish_spark` validates the predictions against their
:class:`~customer_value.schema.PredictionSchema` and publishes them whole, or writes nothing.

SQL goes through SQLAlchemy Core only (``Table`` objects, bound parameters): a table name is quoted
by the dialect, so a name such as ``x"; DROP TABLE other; --`` names a table of exactly that text
and is never executed.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from customer_value import io
from customer_value.errors import UserError
from customer_value.processes import pid_alive
from customer_value.redaction import redact_url, scrub
from customer_value.schema import CheckPlan, FrameStats, PredictionSchema

__all__ = [
    "FileSink",
    "SqlSink",
    "TableSink",
    "Sink",
    "parse_sink",
    "check_sink",
    "publish",
    "publish_spark",
    "validate_spark",
    "spark_kind",
    "spark_stats",
]

# pandas writes these files; Spark writes parquet only (a folder of parts).
_PANDAS_FILES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".csv.gz": "csv"}
_SPARK_FILES = (".parquet", ".pq")
_SPARK_NAME = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*")
# PostgreSQL cuts identifiers to 63 bytes without an error; two long names could then collide.
_SQL_NAME_BYTES = 63
_SQL_CHUNK = 10_000


# --------------------------------------------------------------------------------------------------
# Sinks


@dataclass(frozen=True)
class FileSink:
    """A parquet or csv file (pandas), or a parquet folder (Spark).

    Attributes
    ----------
    path : Path or str
        A local path; for Spark also a Hadoop URI such as ``s3a://bucket/p.parquet``, kept as text
        (``Path`` would fold its ``//``).
    format : str
        ``parquet`` or ``csv`` (``.csv.gz`` is csv, compressed by the writer).
    """

    path: Path | str
    format: str = "parquet"

    def describe(self) -> str:
        """The target as a user reads it."""
        return str(self.path)


@dataclass(frozen=True, repr=False)
class SqlSink:
    """A table in a database reached through an SQLAlchemy URL.

    Attributes
    ----------
    url : str
        E.g. ``sqlite:///predictions.db`` or ``postgresql+psycopg2://user:pw@host/db``. Never shown
        with its password: see :meth:`describe`.
    table : str
        The table's exact name (quoted by the dialect, stored literally).
    """

    url: str
    table: str

    def __repr__(self) -> str:
        return f"SqlSink(url={_redact_url(self.url)!r}, table={self.table!r})"

    def describe(self) -> str:
        """The target as a user reads it, without the password."""
        return f"{_redact_url(self.url)} (table '{self.table}')"


@dataclass(frozen=True)
class TableSink:
    """A Spark catalog table, ``table:<name>`` on the command line (``db.name`` allowed)."""

    name: str

    def describe(self) -> str:
        """The target as a user reads it."""
        return f"table:{self.name}"


Sink = FileSink | SqlSink | TableSink


def _redact_url(url: str) -> str:
    """``url`` with its password hidden (the project's one redactor)."""
    return redact_url(url)


def _scrub(text: object, url: str) -> str:
    """``text`` (e.g. a driver's error) with the URL's secrets replaced by ``***``."""
    return scrub(text, url)


# --------------------------------------------------------------------------------------------------
# Parsing


def parse_sink(output: str, table: str = "predictions", engine: str = "pandas") -> Sink:
    """Parse ``--output`` (and ``--table``) once into a typed sink.

    Parameters
    ----------
    output : str
        A file (``.parquet``, ``.pq``, ``.csv``, ``.csv.gz``), a database URL (pandas), or
        ``table:<name>`` (Spark). With Spark a file is a parquet folder, local or a Hadoop URI.
    table : str
        The database table, for a database URL.
    engine : str
        ``pandas`` or ``spark``.

    Returns
    -------
    FileSink, SqlSink or TableSink

    Raises
    ------
    UserError
        An output the engine cannot write, a URL that does not parse, an in-memory SQLite
        database, or a table name that is empty, reserved or not an identifier (Spark).
    """
    if engine not in ("pandas", "spark"):
        raise UserError(f"unknown engine {engine!r}", where="engine", hint="use pandas or spark")
    text = str(output)
    if not text.strip():
        raise UserError("the output is empty", where="--output", hint="give a file, URL or table:<name>")
    if text.startswith("table:"):
        return _table_sink(text[len("table:") :], engine)
    if engine == "spark":
        return _spark_file(text)
    if "://" in text:
        return _sql_sink(text, table)
    return _pandas_file(text)


def _pandas_file(text: str) -> FileSink:
    name = text.lower()
    for ext, fmt in sorted(_PANDAS_FILES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(ext):
            return FileSink(Path(text), fmt)
    raise UserError(
        "unsupported output: cannot tell the file format from its name",
        where=text,
        hint="use a .parquet, .pq, .csv or .csv.gz file, or a database URL such as "
        "sqlite:///predictions.db (table:<name> needs engine: spark)",
    )


def _spark_file(text: str) -> FileSink:
    if text.lower().rstrip("/").endswith(_SPARK_FILES):
        path = text.rstrip("/") or text
        return FileSink(path if "://" in path else Path(path), "parquet")
    raise UserError(
        "with engine: spark, predictions are written as a parquet folder or a catalog table",
        where=_redact_url(text) if "://" in text else text,
        hint="use a path ending in .parquet (local, hdfs://, s3a:// ...) or table:<name>; csv files "
        "and database URLs need engine: pandas",
    )


def _table_sink(name: str, engine: str) -> TableSink:
    if engine != "spark":
        raise UserError(
            "table:<name> outputs need engine: spark",
            where=f"table:{name}",
            hint="write a .parquet/.csv file or a database URL, or set engine: spark",
        )
    _check_spark_table(name)
    return TableSink(name)


def _check_spark_table(name: str) -> None:
    """Refuse what is not ``[db.]identifier``: such names are pasted into Spark SQL, backticked."""
    if not _SPARK_NAME.fullmatch(name):
        raise UserError(
            f"{name!r} is not a Spark table name" if name else "the table name is empty",
            where=f"table:{name}",
            hint="use letters, digits and underscores, not starting with a digit, optionally after "
            "one database name: table:predictions or table:analytics.predictions",
        )


def _sql_sink(url: str, table: str) -> SqlSink:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise UserError(
            f"cannot parse the database URL: {_scrub(exc, url)}",
            where=_redact_url(url),
            hint="use dialect[+driver]://user:password@host/database, e.g. sqlite:///predictions.db",
        ) from None
    memory = parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    if parsed.get_backend_name() == "sqlite" and memory:
        raise UserError(
            "an in-memory SQLite database would keep nothing after the run",
            where=_redact_url(url),
            hint="name a file: sqlite:///predictions.db (relative) or sqlite:////abs/path.db",
        )
    _check_sql_table(table)
    return SqlSink(url, table)


def _check_sql_table(name: str) -> None:
    """Refuse table names no database keeps faithfully (quotes and spaces are fine: quoted)."""
    problem = None
    if not name.strip():
        problem = "the table name is empty"
    elif len(name.encode("utf-8")) > _SQL_NAME_BYTES:
        problem = f"the table name is longer than {_SQL_NAME_BYTES} bytes (PostgreSQL would cut it)"
    elif any(unicodedata.category(ch) == "Cc" for ch in name):
        problem = "the table name contains control characters"
    elif name.lower().startswith("sqlite_"):
        problem = "table names starting with 'sqlite_' are reserved by SQLite"
    if problem:
        raise UserError(
            problem, where=f"--table {name!r}", hint="choose another --table, e.g. predictions"
        )


# --------------------------------------------------------------------------------------------------
# Preflight


def check_sink(sink: Sink, engine: str = "pandas") -> None:
    """Refuse a target that cannot be written, before any data is read. Creates nothing.

    Parameters
    ----------
    sink : FileSink, SqlSink or TableSink
        From :func:`parse_sink`.
    engine : str
        ``spark`` may replace a folder (parquet parts); pandas writes a file.

    Raises
    ------
    UserError
        A file target that is a folder (pandas) or under a file or an unwritable folder; a
        database whose SQLAlchemy driver is not installed; a SQLite file whose folder is missing.
    """
    if isinstance(sink, FileSink):
        if "://" not in str(sink.path):  # remote storage answers only when Spark writes
            io.check_writable(sink.path, "--output", folder_ok=engine == "spark")
    elif isinstance(sink, SqlSink):
        _check_sql_target(sink)
    # A catalog table can only be checked through a Spark session: publish_spark does.


def _check_sql_target(sink: SqlSink) -> None:
    io.check_database_url(sink.url, "--output")


# --------------------------------------------------------------------------------------------------
# Publishing with pandas


def publish(
    frame: pd.DataFrame, sink: Sink, schema: PredictionSchema, expected_customers: int | None = None
) -> str:
    """Validate ``frame`` against ``schema``, then publish it atomically; return where it went.

    A file is written to a temporary name beside the target and renamed into place
    (:func:`customer_value.io.write_frame`). A database gets one transaction that deletes the
    rows of the partition values (``as_of`` dates) the frame holds and inserts the frame, so a
    rerun for a date replaces that date and other dates stay. Nothing is written when the
    frame fails its schema check.

    Parameters
    ----------
    frame : DataFrame
        The predictions.
    sink : FileSink or SqlSink
        The target (a :class:`TableSink` needs :func:`publish_spark`).
    schema : PredictionSchema
        What the frame must look like.
    expected_customers : int, optional
        The number of rows it must have.

    Returns
    -------
    str
        The target, password hidden.
    """
    if isinstance(sink, TableSink) or (isinstance(sink, FileSink) and "://" in str(sink.path)):
        raise UserError(
            "the pandas engine writes local files and databases only",
            where=sink.describe(),
            hint="set engine: spark for catalog tables and remote storage",
        )
    schema.validate(frame, expected_customers)
    if isinstance(sink, FileSink):
        io.write_frame(frame, sink.path)
    else:
        _write_sql(frame, sink, schema)
    return sink.describe()


def _write_sql(frame: pd.DataFrame, sink: SqlSink, schema: PredictionSchema) -> None:
    import sqlalchemy as sa

    records = _sql_records(frame, schema)
    engine = sa.create_engine(sink.url)
    try:
        with engine.begin() as conn:
            table = _sql_table(conn, sink.table, list(frame.columns), schema)
            if schema.partition is not None and schema.partition in frame.columns:
                values = sorted({r[schema.partition] for r in records} - {None})
                conn.execute(table.delete().where(table.c[schema.partition].in_(values)))
            for start in range(0, len(records), _SQL_CHUNK):
                conn.execute(table.insert(), records[start : start + _SQL_CHUNK])
    except sa.exc.SQLAlchemyError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"writing the predictions failed and was rolled back: {_scrub(first, sink.url)}",
            where=sink.describe(),
        ) from None
    finally:
        engine.dispose()


def _sql_table(conn, name: str, columns: list[str], schema: PredictionSchema):
    """The target table: reflected when it exists (it must have our columns), else created."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    if sa.inspect(conn).has_table(name):
        table = sa.Table(name, metadata, autoload_with=conn)
        lacking = [c for c in columns if c not in table.c]
        if lacking:
            raise UserError(
                f"the existing table lacks the column(s) {lacking}",
                where=f"table '{name}'",
                hint="write to a new --table, or add the columns to this one",
            )
        return table
    types = {"string": sa.Text, "datetime": sa.Text, "float": lambda: sa.Float(53), "int": sa.BigInteger}
    table = sa.Table(
        name,
        metadata,
        *(
            sa.Column(c, types[schema.column(c).dtype](), nullable=schema.column(c).nullable)
            for c in columns
        ),
    )
    table.create(conn)
    return table


def _sql_records(frame: pd.DataFrame, schema: PredictionSchema) -> list[dict]:
    """Rows as plain Python values (None for missing); dates as ``YYYY-MM-DD`` text, as before."""
    out = frame.copy()
    for name in out.columns:
        if schema.column(name).dtype == "datetime":
            stamps = pd.to_datetime(out[name])
            daily = (stamps.dropna() == stamps.dropna().dt.normalize()).all()
            out[name] = stamps.dt.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M:%S")
    # object dtype turns numpy scalars into Python ones, which every DB-API driver binds.
    out = out.astype(object).where(out.notna(), None)
    return out.to_dict("records")


# --------------------------------------------------------------------------------------------------
# Spark: validation with aggregates


def spark_kind(dtype) -> str:
    """The kind of values a Spark column type holds (see :class:`~customer_value.schema.CheckPlan`)."""
    from pyspark.sql import types as T

    kinds = (
        ((T.StringType, T.VarcharType, T.CharType), "string"),
        ((T.BooleanType,), "bool"),
        ((T.TimestampType, T.TimestampNTZType, T.DateType), "datetime"),
        ((T.IntegralType,), "int"),
        ((T.FractionalType,), "float"),
        ((T.NullType,), "null"),
    )
    return next((kind for types, kind in kinds if isinstance(dtype, types)), "other")


def spark_stats(sdf, plan: CheckPlan) -> FrameStats:
    """Measure what ``plan`` asks for with one Spark aggregation (NaN counts as missing)."""
    from pyspark.sql import functions as F

    def col(name):
        return F.col("`" + name.replace("`", "``") + "`")

    def valid(name):
        c = col(name)
        return c.isNotNull() & ~F.isnan(c) if plan.kinds[name] == "float" else c.isNotNull()

    aggs = [F.count(F.lit(1)).alias("rows")]
    if plan.key is not None:
        aggs += [F.count(col(plan.key)).alias("keys"), F.countDistinct(col(plan.key)).alias("dkeys")]
    # count(when(...)) rather than sum: sum over no rows is null, count is 0.
    aggs += [F.count(F.when(~valid(n), 1)).alias(f"null{i}") for i, n in enumerate(plan.nulls)]
    for i, c in enumerate(plan.bounded):
        value = F.when(valid(c.name), col(c.name))  # NaN sorts above every number in Spark
        low = value < c.low if c.low is not None else F.lit(False)
        high = value > c.high if c.high is not None else F.lit(False)
        aggs += [
            F.count(F.when(low | high, 1)).alias(f"out{i}"),
            F.min(value).alias(f"min{i}"),
            F.max(value).alias(f"max{i}"),
        ]
    if plan.rank is not None:
        r = col(plan.rank)
        rank = (F.count(r), F.min(r), F.max(r), F.countDistinct(r))
        aggs += [a.alias(f"rank{i}") for i, a in enumerate(rank)]
    row = sdf.agg(*aggs).collect()[0]
    return _stats_from_row(row.asDict(), plan)


def _stats_from_row(row: dict, plan: CheckPlan) -> FrameStats:
    def num(v):
        return None if v is None else float(v)

    return FrameStats(
        rows=int(row["rows"]),
        keys=int(row.get("keys", 0)),
        distinct_keys=int(row.get("dkeys", 0)),
        nulls={n: int(row[f"null{i}"]) for i, n in enumerate(plan.nulls)},
        outside={
            c.name: (int(row[f"out{i}"]), num(row[f"min{i}"]), num(row[f"max{i}"]))
            for i, c in enumerate(plan.bounded)
        },
        rank=(
            tuple(None if row[f"rank{i}"] is None else int(row[f"rank{i}"]) for i in range(4))
            if plan.rank is not None
            else None
        ),
    )


def validate_spark(sdf, schema: PredictionSchema, expected_customers: int | None = None) -> None:
    """:meth:`PredictionSchema.validate` for a Spark DataFrame: the same rules, one aggregation.

    Raises
    ------
    UserError
        The same problems, worded the same, as the pandas check of the same rows.
    """
    plan = schema.plan((f.name, spark_kind(f.dataType)) for f in sdf.schema.fields)
    schema.enforce(plan, spark_stats(sdf, plan), expected_customers)


# --------------------------------------------------------------------------------------------------
# Spark: staged, validated, swapped


def publish_spark(
    sdf, sink: Sink, schema: PredictionSchema, spark, expected_customers: int | None = None
) -> str:
    """Write ``sdf`` to a staging copy beside the target, validate the copy, then swap it in.

    The staging copy is what is validated, with Spark aggregates (:func:`validate_spark`): the
    scoring runs once, and the rows checked are the rows published. A failed check removes the
    staging copy; the target is not touched.

    **Parquet folder.** Spark writes ``.<name>.staging-<pid>`` beside the target; the swap renames
    the target to ``.<name>.old-<pid>``, the staging folder to the target, and deletes the old one
    (through Hadoop's FileSystem, so hdfs:// and s3a:// work as local paths do). Each rename is
    atomic on a local disk and on HDFS; the swap as a whole is not: between the two renames (a few
    milliseconds) the target does not exist, and a reader then fails rather than seeing half an
    output. On object stores (S3) a rename is a copy and a delete, so readers there can see a
    partial folder during the swap. A crash leaves the old or the new output complete, plus a
    staging or old folder named with the dead writer's pid; the next write removes it, and if the
    crash fell between the renames it first renames the old folder back into place.

    **Catalog table.** ``saveAsTable`` into ``<name>__staging_<pid>``, then ``ALTER TABLE <name>
    RENAME TO <name>__old_<pid>``, ``ALTER TABLE <name>__staging_<pid> RENAME TO <name>``, ``DROP
    TABLE <name>__old_<pid>``. The catalog makes each statement atomic (one metastore operation; a
    managed table's folder moves with it), not the pair: in between, ``<name>`` does not exist.
    Crash leftovers are handled as for folders. Leftovers are judged by pid on this machine, so
    run one writer per target at a time. (Delta or Iceberg tables would allow a single
    atomic ``CREATE OR REPLACE``; the plain session catalog does not.)

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        The predictions.
    sink : FileSink or TableSink
        A parquet target or a catalog table.
    schema : PredictionSchema
        What the rows must look like.
    spark : SparkSession
        The session that writes.
    expected_customers : int, optional
        The number of rows the output must have.

    Returns
    -------
    str
        The target.
    """
    if isinstance(sink, TableSink):
        _publish_table(sdf, sink.name, schema, spark, expected_customers)
    elif isinstance(sink, FileSink) and sink.format == "parquet":
        _publish_folder(sdf, str(sink.path), schema, spark, expected_customers)
    else:
        raise UserError(
            "with engine: spark, predictions are written as parquet or a table",
            where=sink.describe(),
            hint="use a path ending in .parquet, or table:<name>",
        )
    return sink.describe()


class _HadoopFiles:
    """The few file operations a swap needs, through Hadoop's FileSystem (any scheme Spark reads)."""

    def __init__(self, spark, path: str):
        self._path = spark._jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(path).getFileSystem(spark._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(self._path(path)))

    def rename(self, src: str, dst: str) -> None:
        # Hadoop answers False instead of raising; an unnoticed failed rename would lose the output.
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"cannot rename {src} to {dst}")

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def children(self, folder: str) -> list[str]:
        if not self.exists(folder):
            return []
        return [s.getPath().getName() for s in self._fs.listStatus(self._path(folder))]


class _LocalFiles:
    """The same operations on the local disk (a Spark Connect session has no JVM to ask)."""

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def delete(self, path: str) -> None:
        import shutil

        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)

    def children(self, folder: str) -> list[str]:
        return os.listdir(folder) if os.path.isdir(folder) else []


def _files(spark, target: str):
    if getattr(spark, "_jsc", None) is not None:
        return _HadoopFiles(spark, target)
    if "://" not in target:
        return _LocalFiles()
    raise UserError(
        "publishing to remote storage needs a classic Spark session (with a JVM)",
        where=target,
        hint="write to a catalog table (table:<name>) from Spark Connect",
    )


def _publish_folder(sdf, target: str, schema, spark, expected_customers) -> None:
    if "://" not in target:
        # The JVM resolves relative paths against its own start folder, not Python's.
        target = os.path.abspath(target)
    files = _files(spark, target)
    parent, name = target.rstrip("/").rsplit("/", 1)
    parent = parent or "/"
    staging, old = f"{parent}/.{name}.staging-{os.getpid()}", f"{parent}/.{name}.old-{os.getpid()}"
    _recover_folders(files, parent, name, target)
    try:
        sdf.write.mode("overwrite").parquet(staging)
        validate_spark(spark.read.parquet(staging), schema, expected_customers)
        _swap(files.exists(target), files.rename, files.delete, staging, target, old)
    finally:
        if files.exists(staging):
            files.delete(staging)


def _recover_folders(files, parent: str, name: str, target: str) -> None:
    """Clean up after writers that died: restore an old output the crash left aside, drop the rest."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(staging|old)-(\d+)")
    for child in sorted(files.children(parent)):  # "old" sorts before "staging"
        m = pattern.fullmatch(child)
        if m is None or pid_alive(int(m[2])):
            continue
        path = f"{parent}/{child}"
        if m[1] == "old" and not files.exists(target):
            files.rename(path, target)  # the crash fell between the two renames of a swap
        else:
            files.delete(path)


def _swap(had_target: bool, rename, drop, staging: str, target: str, old: str) -> None:
    """Put ``staging`` in ``target``'s place: target aside, staging in, old dropped."""
    if had_target:
        rename(target, old)
    try:
        rename(staging, target)
    except BaseException:
        if had_target:
            rename(old, target)
        raise
    if had_target:
        drop(old)


def _quote(name: str) -> str:
    """A checked Spark table name (``[db.]name``) with each part backticked."""
    return ".".join(f"`{part}`" for part in name.split("."))


def _publish_table(sdf, name: str, schema, spark, expected_customers) -> None:
    _check_spark_table(name)  # a TableSink made by hand skipped the parser
    staging, old = f"{name}__staging_{os.getpid()}", f"{name}__old_{os.getpid()}"

    def rename(src: str, dst: str) -> None:
        spark.sql(f"ALTER TABLE {_quote(src)} RENAME TO {_quote(dst)}")

    def drop(table: str) -> None:
        spark.sql(f"DROP TABLE IF EXISTS {_quote(table)}")

    _recover_tables(spark, name, rename, drop)
    try:
        sdf.write.mode("overwrite").saveAsTable(_quote(staging))
        validate_spark(spark.table(_quote(staging)), schema, expected_customers)
        _swap(spark.catalog.tableExists(name), rename, drop, staging, name, old)
    finally:
        drop(staging)


def _recover_tables(spark, name: str, rename, drop) -> None:
    """:func:`_recover_folders` for catalog tables (``<name>__staging_<pid>``, ``__old_<pid>``)."""
    db, _, base = name.rpartition(".")
    pattern = re.compile(rf"{re.escape(base)}__(staging|old)_(\d+)", re.IGNORECASE)
    found = sorted(t.name for t in spark.catalog.listTables(db or None) if not t.isTemporary)
    for table in found:
        m = pattern.fullmatch(table)
        if m is None or pid_alive(int(m[2])):
            continue
        full = f"{db}.{table}" if db else table
        if m[1] == "old" and not spark.catalog.tableExists(name):
            rename(full, name)
        else:
            drop(full)
