"""Sinks: outputs parsed once, checked early, validated against the schema, published atomically."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_value import io
from customer_value.engines.sinks import (
    FileSink,
    SqlSink,
    TableSink,
    check_sink,
    parse_sink,
    publish,
)
from customer_value.errors import UserError
from customer_value.schema import Column, PredictionSchema

# The rules of today's predictions, on a few columns: probabilities in [0, 1], CLV >= 0, ranks
# 1..n, unique ids; reasons optional and nullable.
SCHEMA = PredictionSchema(
    (
        Column("customer_id", "string", 0),
        Column("as_of", "datetime", 1),
        Column("persona", "string", 10),
        Column("churn_probability", "float", 20, low=0.0, high=1.0),
        Column("predicted_clv", "float", 40, low=0.0),
        Column("p_alive", "float", 50, nullable=True, low=0.0, high=1.0),
        Column("value_at_risk", "float", 70, nullable=True),
        Column("retention_rank", "int", 80, low=1.0),
        Column("churn_driver_1_reason", "string", 100.1, nullable=True, required=False),
        Column("churn_model_version", "string", 200),
    )
)


def predictions(n: int = 4, as_of: str = "2024-03-31", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    q, clv = rng.uniform(0, 1, n), rng.uniform(0, 500, n)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "as_of": pd.Timestamp(as_of),
            "persona": "loyal",
            "churn_probability": q,
            "predicted_clv": clv,
            "p_alive": np.where(np.arange(n) % 2, np.nan, 0.5),
            "value_at_risk": q * clv,
            "churn_driver_1_reason": ["no purchase for 90 days", None] * (n // 2) + [None] * (n % 2),
            "churn_model_version": "3",
        }
    )
    frame["retention_rank"] = (
        frame["value_at_risk"].rank(ascending=False, method="first").astype("int64")
    )
    return frame[[c for c in SCHEMA.names if c in frame.columns]]


def _raises(fn, *fragments):
    with pytest.raises(UserError) as info:
        fn()
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, text
    return info.value


# --------------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("output", "engine", "expected"),
    [
        ("out/p.parquet", "pandas", FileSink(Path("out/p.parquet"), "parquet")),
        ("p.PQ", "pandas", FileSink(Path("p.PQ"), "parquet")),
        ("p.csv", "pandas", FileSink(Path("p.csv"), "csv")),
        ("p.csv.gz", "pandas", FileSink(Path("p.csv.gz"), "csv")),
        ("sqlite:///p.db", "pandas", SqlSink("sqlite:///p.db", "scores")),
        ("postgresql://u:pw@h/db", "pandas", SqlSink("postgresql://u:pw@h/db", "scores")),
        ("out/p.parquet", "spark", FileSink(Path("out/p.parquet"), "parquet")),
        ("out/p.parquet/", "spark", FileSink(Path("out/p.parquet"), "parquet")),
        ("s3a://bucket/p.parquet", "spark", FileSink("s3a://bucket/p.parquet", "parquet")),
        ("table:predictions", "spark", TableSink("predictions")),
        ("table:analytics.p_2024", "spark", TableSink("analytics.p_2024")),
    ],
)
def test_parse_sink_forms(output, engine, expected):
    assert parse_sink(output, table="scores", engine=engine) == expected


@pytest.mark.parametrize(
    ("output", "table", "engine", "fragments"),
    [
        ("", "t", "pandas", ["the output is empty"]),
        ("p.json", "t", "pandas", ["unsupported output", ".csv.gz"]),
        ("p", "t", "pandas", ["unsupported output"]),
        ("table:p", "t", "pandas", ["table:p", "need engine: spark"]),
        ("p.csv", "t", "spark", ["parquet folder or a catalog table", "need engine: pandas"]),
        ("sqlite:///p.db", "t", "spark", ["parquet folder or a catalog table"]),
        ("postgresql://u:secret@h/db", "t", "spark", ["postgresql://u:***@h/db"]),
        ("table:", "t", "spark", ["the table name is empty"]),
        ("table:a b", "t", "spark", ["'a b' is not a Spark table name"]),
        ("table:a;drop", "t", "spark", ["not a Spark table name"]),
        ("table:a.b.c", "t", "spark", ["not a Spark table name"]),
        ("table:1abc", "t", "spark", ["not a Spark table name"]),
        ("table:a`b", "t", "spark", ["not a Spark table name"]),
        ("p.parquet", "t", "polars", ["unknown engine"]),
        ("://nothing", "t", "pandas", ["cannot parse the database URL"]),
        ("postgresql://u:secret@h:port/db", "t", "pandas", ["cannot parse", "***"]),
        ("sqlite://", "t", "pandas", ["in-memory SQLite", "would keep nothing"]),
        ("sqlite:///:memory:", "t", "pandas", ["in-memory SQLite"]),
        ("sqlite:///p.db", "", "pandas", ["the table name is empty"]),
        ("sqlite:///p.db", "   ", "pandas", ["the table name is empty"]),
        ("sqlite:///p.db", "x" * 64, "pandas", ["longer than 63 bytes"]),
        ("sqlite:///p.db", "é" * 32, "pandas", ["longer than 63 bytes"]),
        ("sqlite:///p.db", "a\x00b", "pandas", ["control characters"]),
        ("sqlite:///p.db", "a\nb", "pandas", ["control characters"]),
        ("sqlite:///p.db", "SQLite_master", "pandas", ["reserved by SQLite"]),
    ],
)
def test_parse_sink_refuses_with_what_where_and_what_to_do(output, table, engine, fragments):
    error = _raises(lambda: parse_sink(output, table=table, engine=engine), *fragments)
    assert error.where and error.hint  # where it is wrong and what to do
    assert "secret" not in str(error)


def test_parse_sink_user_errors_exit_2_from_the_cli(tmp_path):
    # The CLI turns any UserError into one message and exit code 2; parse errors are UserErrors.
    code = (
        "import sys; from customer_value.engines.sinks import parse_sink\n"
        "from customer_value.errors import UserError\n"
        "try:\n    parse_sink('p.json')\nexcept UserError as e:\n"
        "    print(e, file=sys.stderr); sys.exit(2)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and "unsupported output" in out.stderr and "hint:" in out.stderr
    assert os.listdir(tmp_path) == []


def test_sql_sink_never_shows_its_password():
    sink = parse_sink("postgresql://me:hunter2@db.example/p", table="p")
    assert "hunter2" not in repr(sink) and "hunter2" not in sink.describe()
    assert sink.describe() == "postgresql://me:***@db.example/p (table 'p')"


# --------------------------------------------------------------------------------------------------
# Preflight


def test_check_sink_refuses_what_cannot_be_written_and_creates_nothing(tmp_path):
    (tmp_path / "folder.parquet").mkdir()
    (tmp_path / "afile").write_text("x")
    before = sorted(os.listdir(tmp_path))
    _raises(lambda: check_sink(parse_sink(str(tmp_path / "folder.parquet"))), "is a folder")
    check_sink(parse_sink(str(tmp_path / "folder.parquet"), engine="spark"), engine="spark")
    _raises(lambda: check_sink(parse_sink(str(tmp_path / "afile" / "p.csv"))), "is a file")
    check_sink(parse_sink(str(tmp_path / "new" / "deeper" / "p.parquet")))  # made on write
    missing = f"sqlite:///{tmp_path}/nofolder/p.db"
    _raises(lambda: check_sink(parse_sink(missing)), "does not exist", "not its folder")
    check_sink(parse_sink(f"sqlite:///{tmp_path}/p.db"))
    error = _raises(lambda: check_sink(parse_sink("nosuchdb://u:pw@h/db")), "no database driver", "***")
    assert "pw@" not in str(error)
    check_sink(TableSink("predictions"))  # nothing to check without a session
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_sink_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        _raises(lambda: check_sink(parse_sink(str(folder / "p.parquet"))), "no permission")
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------------------------------
# Schema rules (pandas)


def test_a_valid_frame_passes_with_or_without_the_optional_columns():
    frame = predictions()
    SCHEMA.validate(frame, expected_customers=4)
    SCHEMA.validate(frame.drop(columns=["churn_driver_1_reason"]))
    SCHEMA.validate(frame.iloc[:0])  # nobody to score is not an error


def test_schema_names_ddl_and_definition_errors():
    assert SCHEMA.names[:3] == ["customer_id", "as_of", "persona"]
    assert SCHEMA.names[-2:] == ["churn_driver_1_reason", "churn_model_version"]
    ddl = SCHEMA.spark_ddl(exclude=("as_of",))
    assert ddl.startswith("`customer_id` string, `persona` string, `churn_probability` double")
    assert "`retention_rank` long" in ddl and "as_of" not in ddl
    assert "`as_of` timestamp" in SCHEMA.spark_ddl()
    tied = PredictionSchema(
        (Column("customer_id", "string", 1), Column("b", "string", 1)), rank_column=None, partition=None
    )
    assert tied.names == ["customer_id", "b"]  # ties keep declaration order
    with pytest.raises(ValueError, match="declared more than once"):
        PredictionSchema((Column("customer_id", "string", 0),) * 2, rank_column=None, partition=None)
    with pytest.raises(ValueError, match="unknown dtypes"):
        PredictionSchema((Column("customer_id", "text", 0),), rank_column=None, partition=None)
    with pytest.raises(ValueError, match="rank_column 'retention_rank' is not one of"):
        PredictionSchema((Column("customer_id", "string", 0),), partition=None)


def _bad(**changes):
    frame = predictions()
    for column, values in changes.items():
        frame[column] = values
    return frame


# Bad frames, each with the problem it must produce (and nothing else that matters here).
BAD_FRAMES = {
    "missing": (
        lambda: predictions().drop(columns=["persona", "p_alive"]),
        "missing columns ['persona', 'p_alive']",
    ),
    "extra": (lambda: _bad(score=1.0), "unexpected columns ['score']"),
    "duplicate id": (
        lambda: _bad(customer_id=["a", "a", "b", None]),
        "1 duplicate customer_id value(s)",
    ),
    "null id": (lambda: _bad(customer_id=["a", "b", "c", None]), "1 missing value(s) in 'customer_id'"),
    "probability > 1": (
        lambda: _bad(churn_probability=[0.1, 1.5, 0.2, 0.3]),
        "1 value(s) of 'churn_probability' outside [0, 1] (min 0.1, max 1.5)",
    ),
    "probability NaN": (
        lambda: _bad(churn_probability=[0.1, np.nan, 0.2, 0.3]),
        "1 missing value(s) in 'churn_probability'",
    ),
    "negative clv": (
        lambda: _bad(predicted_clv=[-1.0, 2.0, -3.0, 4.0]),
        "2 value(s) of 'predicted_clv' outside >= 0 (min -3, max 4)",
    ),
    "p_alive out of range": (
        lambda: _bad(p_alive=[np.nan, 1.25, 0.5, np.nan]),
        "1 value(s) of 'p_alive' outside [0, 1]",
    ),
    "ranks repeat": (
        lambda: _bad(retention_rank=[1, 1, 2, 3]),
        "'retention_rank' is not exactly 1..4 (4 values from 1 to 3, 3 distinct)",
    ),
    "ranks from 0": (
        lambda: _bad(retention_rank=[0, 1, 2, 3]),
        "'retention_rank' is not exactly 1..4",
    ),
    "ranks are floats": (
        lambda: _bad(retention_rank=[1.0, 2.0, 3.0, 4.5]),
        "'retention_rank' holds float values where int is declared",
    ),
    "text clv": (
        lambda: _bad(predicted_clv=["1", "2", "3", "4"]),
        "'predicted_clv' holds string values where float is declared",
    ),
    "numeric persona": (lambda: _bad(persona=[1, 2, 3, 4]), "'persona' holds int values"),
    "text date": (lambda: _bad(as_of="2024-03-31"), "'as_of' holds string values where datetime"),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_each_rule_is_reported(case):
    make, fragment = BAD_FRAMES[case]
    error = _raises(lambda: SCHEMA.validate(make()), fragment, "nothing was written")
    assert error.hint == "this is a bug or a broken model; report it with the config used"


def test_every_problem_is_listed_at_once():
    frame = _bad(churn_probability=[0.1, 1.5, np.nan, 0.2], retention_rank=[1, 1, 2, 3], score=0)
    error = _raises(lambda: SCHEMA.validate(frame, expected_customers=5))
    assert error.message == (
        "predictions failed their schema check: unexpected columns ['score']; 4 rows for 5 "
        "customers; 1 missing value(s) in 'churn_probability'; 1 value(s) of 'churn_probability' "
        "outside [0, 1] (min 0.1, max 1.5); 'retention_rank' is not exactly 1..4 (4 values from 1 "
        "to 3, 3 distinct); nothing was written"
    )


def test_repeated_column_names_are_reported_not_crashed_on():
    frame = predictions()
    frame = pd.concat([frame, frame[["predicted_clv"]]], axis=1)
    _raises(lambda: SCHEMA.validate(frame), "repeated columns ['predicted_clv']")


# --------------------------------------------------------------------------------------------------
# Publishing with pandas: files


@pytest.mark.parametrize("name", ["p.parquet", "p.csv", "p.csv.gz"])
def test_publish_file_round_trips(tmp_path, name):
    frame = predictions()
    where = publish(frame, parse_sink(str(tmp_path / name)), SCHEMA, expected_customers=4)
    assert where == str(tmp_path / name)
    back = pd.read_parquet(tmp_path / name) if name.endswith("parquet") else pd.read_csv(tmp_path / name)
    assert list(back.columns) == list(frame.columns) and len(back) == 4
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_a_schema_failure_writes_no_file(tmp_path):
    target = tmp_path / "p.parquet"
    bad = _bad(churn_probability=[0.1, 1.5, 0.2, 0.3])
    _raises(lambda: publish(bad, parse_sink(str(target)), SCHEMA), "nothing was written")
    assert list(tmp_path.iterdir()) == []
    publish(predictions(), parse_sink(str(target)), SCHEMA)
    before = target.read_bytes()
    _raises(lambda: publish(bad, parse_sink(str(target)), SCHEMA), "nothing was written")
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


def test_pandas_refuses_catalog_tables_and_remote_paths():
    _raises(lambda: publish(predictions(), TableSink("p"), SCHEMA), "local files and databases")
    remote = FileSink("s3a://bucket/p.parquet", "parquet")
    _raises(lambda: publish(predictions(), remote, SCHEMA), "local files and databases")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o664])
def test_an_existing_file_keeps_its_permission_bits(tmp_path, mode):
    target = tmp_path / "p.parquet"
    target.write_bytes(b"old")
    target.chmod(mode)
    publish(predictions(), parse_sink(str(target)), SCHEMA)
    assert stat.S_IMODE(target.stat().st_mode) == mode
    io.write_text("x", tmp_path / "t.txt")
    (tmp_path / "t.txt").chmod(mode)
    io.write_text("y", tmp_path / "t.txt")
    assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == mode


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_a_new_file_gets_the_umask_mode_not_0600(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert io.current_umask() == umask
        publish(predictions(), parse_sink(str(tmp_path / "p.csv")), SCHEMA)
        io.write_text("x", tmp_path / "t.txt")
    finally:
        os.umask(old)
    for name in ("p.csv", "t.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_the_umask_is_read_in_a_fresh_process_too(tmp_path):
    code = "from customer_value import io; print(oct(io.current_umask()))"
    out = subprocess.run(
        ["sh", "-c", f"umask 0037 && {sys.executable} -c '{code}'"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0o37"


# --------------------------------------------------------------------------------------------------
# Publishing with pandas: SQL


def _sqlite_with_other(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (id INTEGER, note TEXT)")
        db.executemany("INSERT INTO other VALUES (?, ?)", [(1, "keep"), (2, "me")])


def _rows(path: Path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        quoted = '"' + table.replace('"', '""') + '"'
        return db.execute(f"SELECT * FROM {quoted} ORDER BY 1, 2").fetchall()


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'"))


@pytest.mark.parametrize("table", ['x"; DROP TABLE other; --', "a b", "p;q", "it's", "dots.in.name"])
def test_sql_table_names_are_stored_literally_never_executed(tmp_path, table):
    # Identifiers are quoted by SQLAlchemy's dialect, so these names are legal, literal table
    # names: the rows go to a table of exactly that name and 'other' is untouched.
    db = tmp_path / "p.db"
    _sqlite_with_other(db)
    sink = parse_sink(f"sqlite:///{db}", table=table)
    check_sink(sink)
    where = publish(predictions(), sink, SCHEMA)
    assert where == f"sqlite:///{db} (table '{table}')"
    assert _tables(db) == sorted(["other", table])
    assert _rows(db, "other") == [(1, "keep"), (2, "me")]
    got = _rows(db, table)
    assert len(got) == 4 and {r[1] for r in got} == {"2024-03-31"}  # as_of as YYYY-MM-DD text


def test_sql_rewriting_an_as_of_replaces_it_and_another_as_of_appends(tmp_path):
    db = tmp_path / "p.db"
    sink = parse_sink(f"sqlite:///{db}", table="predictions")
    publish(predictions(4, "2024-03-31"), sink, SCHEMA)
    publish(predictions(4, "2024-03-31", seed=1), sink, SCHEMA)
    assert len(_rows(db, "predictions")) == 4
    publish(predictions(3, "2024-04-30"), sink, SCHEMA)
    rows = pd.read_sql('SELECT * FROM "predictions"', sqlite3.connect(db))
    assert rows.groupby("as_of").size().to_dict() == {"2024-03-31": 4, "2024-04-30": 3}
    fresh = predictions(4, "2024-03-31", seed=1)
    got = rows[rows["as_of"] == "2024-03-31"].sort_values("customer_id")
    np.testing.assert_allclose(got["churn_probability"], fresh["churn_probability"])
    assert got["churn_driver_1_reason"].isna().sum() == 2  # None stored as NULL
    assert rows["retention_rank"].dtype == np.int64


def test_sql_schema_failure_leaves_the_table_unchanged(tmp_path):
    db = tmp_path / "p.db"
    sink = parse_sink(f"sqlite:///{db}", table="predictions")
    bad = _bad(retention_rank=[1, 1, 2, 3])
    _raises(lambda: publish(bad, sink, SCHEMA), "nothing was written")
    assert not db.exists()
    publish(predictions(), sink, SCHEMA)
    before = _rows(db, "predictions")
    _raises(lambda: publish(bad, sink, SCHEMA), "nothing was written")
    assert _rows(db, "predictions") == before


def test_sql_table_lacking_columns_is_refused_and_rolled_back(tmp_path):
    db = tmp_path / "p.db"
    sink = parse_sink(f"sqlite:///{db}", table="predictions")
    publish(predictions().drop(columns=["churn_driver_1_reason"]), sink, SCHEMA)
    before = _rows(db, "predictions")
    _raises(
        lambda: publish(predictions(), sink, SCHEMA),
        "lacks the column(s) ['churn_driver_1_reason']",
        "new --table",
    )
    assert _rows(db, "predictions") == before


def test_a_failed_sql_insert_is_rolled_back_whole(tmp_path):
    db = tmp_path / "p.db"
    with sqlite3.connect(db) as conn:  # a table whose constraint the last row breaks
        conn.execute(
            'CREATE TABLE "predictions" (customer_id TEXT, as_of TEXT, persona TEXT, '
            "churn_probability REAL, predicted_clv REAL, p_alive REAL, value_at_risk REAL, "
            "retention_rank INTEGER CHECK (retention_rank < 4), churn_driver_1_reason TEXT, "
            "churn_model_version TEXT)"
        )
    sink = SqlSink(f"sqlite:///{db}", "predictions")
    _raises(lambda: publish(predictions(), sink, SCHEMA), "failed and was rolled back")
    assert _rows(db, "predictions") == []


# --------------------------------------------------------------------------------------------------
# Spark (local mode)


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install -e '.[spark]')")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+, which is not on this machine")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("test-sinks")
        .config("spark.driver.memory", "512m")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_pandas_and_spark_report_the_same_problems(spark, case):
    from customer_value.engines.sinks import validate_spark

    frame = BAD_FRAMES[case][0]()
    pandas_error = _raises(lambda: SCHEMA.validate(frame, expected_customers=5))
    spark_error = _raises(lambda: validate_spark(spark.createDataFrame(frame), SCHEMA, 5))
    assert spark_error.message == pandas_error.message


@pytest.mark.slow
def test_spark_validation_of_a_good_frame_and_of_empty_and_all_null_columns(spark):
    from customer_value.engines.sinks import validate_spark

    validate_spark(spark.createDataFrame(predictions()), SCHEMA, 4)
    empty = spark.createDataFrame(
        predictions().iloc[:0], schema=spark.createDataFrame(predictions()).schema
    )
    validate_spark(empty, SCHEMA)
    no_reasons = _bad(churn_driver_1_reason=[None] * 4, p_alive=[np.nan] * 4)
    validate_spark(spark.createDataFrame(no_reasons), SCHEMA)
    SCHEMA.validate(no_reasons)


@pytest.mark.slow
def test_spark_counts_nan_as_missing_not_as_out_of_range(spark):
    # Spark keeps NaN apart from null and sorts it above every number; pandas treats it as
    # missing. The Spark check must read it the pandas way.
    from pyspark.sql import functions as F

    from customer_value.engines.sinks import validate_spark

    sdf = spark.createDataFrame(predictions()).withColumn(
        "churn_probability",
        F.when(F.col("retention_rank") == 1, F.lit(float("nan"))).otherwise(F.col("churn_probability")),
    )
    error = _raises(lambda: validate_spark(sdf, SCHEMA), "1 missing value(s) in 'churn_probability'")
    assert "outside" not in error.message


@pytest.mark.slow
def test_publish_spark_parquet_swaps_in_and_a_failure_keeps_the_previous_output(spark, tmp_path):
    from customer_value.engines.sinks import publish_spark

    target = tmp_path / "out" / "p.parquet"
    sink = parse_sink(str(target), engine="spark")
    check_sink(sink, engine="spark")
    assert publish_spark(spark.createDataFrame(predictions(4)), sink, SCHEMA, spark) == str(target)
    assert len(pd.read_parquet(target)) == 4
    publish_spark(spark.createDataFrame(predictions(6, seed=2)), sink, SCHEMA, spark, 6)
    again = pd.read_parquet(target).sort_values("customer_id")
    assert len(again) == 6 and again["as_of"].iloc[0] == pd.Timestamp("2024-03-31")
    bad = spark.createDataFrame(_bad(retention_rank=[1, 1, 2, 3]))
    _raises(lambda: publish_spark(bad, sink, SCHEMA, spark), "not exactly 1..4", "nothing was written")
    assert len(pd.read_parquet(target)) == 6
    assert os.listdir(target.parent) == ["p.parquet"]  # no staging or old folder left


@pytest.mark.slow
def test_publish_spark_cleans_up_after_a_dead_writer(spark, tmp_path):
    from customer_value.engines.sinks import publish_spark

    target = tmp_path / "p.parquet"
    sink = parse_sink(str(target), engine="spark")
    publish_spark(spark.createDataFrame(predictions(4)), sink, SCHEMA, spark)
    # A writer killed between the two renames: the target is gone, the old one lies aside, and
    # its half-written staging folder is still there.
    pid = _dead_pid()
    target.rename(tmp_path / f".p.parquet.old-{pid}")
    (tmp_path / f".p.parquet.staging-{pid}").mkdir()
    (tmp_path / f".p.parquet.staging-{pid}" / "part-0.parquet").write_bytes(b"half")
    _raises(
        lambda: publish_spark(
            spark.createDataFrame(_bad(churn_probability=[2.0] * 4)), sink, SCHEMA, spark
        ),
        "outside [0, 1]",
    )
    assert os.listdir(tmp_path) == ["p.parquet"] and len(pd.read_parquet(target)) == 4
    live = tmp_path / f".p.parquet.staging-{os.getppid()}"  # a running writer's: left alone
    live.mkdir()
    publish_spark(spark.createDataFrame(predictions(5)), sink, SCHEMA, spark)
    assert sorted(os.listdir(tmp_path)) == sorted(["p.parquet", live.name])


@pytest.mark.slow
def test_publish_spark_table_swaps_in_and_a_failure_keeps_the_previous_table(spark):
    from customer_value.engines.sinks import publish_spark

    sink = parse_sink("table:sink_predictions", engine="spark")
    assert publish_spark(spark.createDataFrame(predictions(4)), sink, SCHEMA, spark) == (
        "table:sink_predictions"
    )
    publish_spark(spark.createDataFrame(predictions(5, seed=3)), sink, SCHEMA, spark, 5)
    assert spark.table("sink_predictions").count() == 5
    bad = spark.createDataFrame(_bad(customer_id=["a", "a", "b", "c"]))
    _raises(lambda: publish_spark(bad, sink, SCHEMA, spark), "1 duplicate customer_id value(s)")
    assert spark.table("sink_predictions").count() == 5
    names = {t.name for t in spark.catalog.listTables()}
    assert "sink_predictions" in names and not [n for n in names if "__staging_" in n or "__old_" in n]


@pytest.mark.slow
def test_publish_spark_table_restores_an_old_table_a_dead_writer_left_aside(spark):
    from customer_value.engines.sinks import publish_spark

    sink = TableSink("sink_recover")
    publish_spark(spark.createDataFrame(predictions(4)), sink, SCHEMA, spark)
    pid = _dead_pid()
    spark.sql(f"ALTER TABLE sink_recover RENAME TO sink_recover__old_{pid}")
    spark.createDataFrame(predictions(2)).write.saveAsTable(f"sink_recover__staging_{pid}")
    bad = spark.createDataFrame(_bad(predicted_clv=[-1.0] * 4))
    _raises(lambda: publish_spark(bad, sink, SCHEMA, spark), "outside >= 0")
    names = sorted(t.name for t in spark.catalog.listTables() if t.name.startswith("sink_recover"))
    assert names == ["sink_recover"] and spark.table("sink_recover").count() == 4


@pytest.mark.slow
def test_publish_spark_refuses_what_it_cannot_write(spark):
    from customer_value.engines.sinks import publish_spark

    frame = spark.createDataFrame(predictions())
    _raises(lambda: publish_spark(frame, FileSink(Path("p.csv"), "csv"), SCHEMA, spark), "parquet")
    _raises(lambda: publish_spark(frame, SqlSink("sqlite:///p.db", "t"), SCHEMA, spark), "parquet")
    _raises(lambda: publish_spark(frame, TableSink("a;b"), SCHEMA, spark), "not a Spark table name")
