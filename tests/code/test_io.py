import gzip

import numpy as np
import pandas as pd
import pytest

from conftest import write
from customer_value import io
from customer_value.config import load_config
from customer_value.errors import DataValidationError
from customer_value.pipelines.data import load_data


def _load(make_config, body):
    return load_data(load_config(make_config(body)))


def test_column_mapping_derived_columns_and_cancellations(tmp_path, make_config):
    write(
        tmp_path / "log.csv",
        """
        Invoice,Cust,When,Qty,Price,Item
        1001,17850.0,2011-01-02 10:00:00,2,1.50,A
        C1002,17850.0,2011-01-03 11:00:00,-1,1.50,A
        1003,13047.0,2011-01-04 12:00:00,3,2.00,B
    """,
    )
    loaded = _load(
        make_config,
        """
        data:
          transactions:
            path: log.csv
            columns: {Cust: customer_id, When: timestamp, Invoice: order_id, Qty: quantity, Item: product_id}
            derive: {amount: Qty * Price}
            cancellation: {column: order_id, prefix: C}
    """,
    )
    tx = loaded.data.transactions
    expected = pd.DataFrame(
        {
            "customer_id": ["13047", "17850", "17850"],
            "timestamp": pd.to_datetime(["2011-01-04 12:00", "2011-01-02 10:00", "2011-01-03 11:00"]),
            "amount": [6.0, 3.0, -1.5],
            "order_id": ["1003", "1001", "C1002"],
            "quantity": [3.0, 2.0, -1.0],
            "product_id": ["B", "A", "A"],
            "is_return": [False, False, True],
        }
    )
    pd.testing.assert_frame_equal(tx, expected, check_dtype=False)
    assert tx["timestamp"].dtype == "datetime64[ns]"


@pytest.mark.parametrize(
    "fmt,header", [("csv.gz", True), ("txt", True), ("txt", False), ("parquet", True)]
)
def test_formats(tmp_path, make_config, fmt, header):
    frame = pd.DataFrame(
        {"cid": ["a", "b", "a"], "day": ["20240102", "20240103", "20240105"], "amt": [1.0, 2.5, 3.0]}
    )
    path = tmp_path / f"tx.{fmt}"
    if fmt == "csv.gz":
        with gzip.open(path, "wt") as fh:
            frame.to_csv(fh, index=False)
    elif fmt == "txt":
        text = frame.to_csv(sep=" ", index=False, header=header)
        path.write_text(text.replace(" ", "   "))  # runs of spaces are one separator
    else:
        frame.to_parquet(path)
    names = "" if header else "\n    names: [cid, day, amt]"
    body = f"""
data:
  transactions:
    path: {path.name}
    header: {str(header).lower()}{names}
    columns: {{cid: customer_id, day: timestamp, amt: amount}}
    date_format: "%Y%m%d"
"""
    tx = _load(make_config, body).data.transactions
    assert tx["customer_id"].tolist() == ["a", "a", "b"]
    assert tx["timestamp"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-05", "2024-01-03"]
    assert tx["amount"].tolist() == [1.0, 3.0, 2.5]


def test_expression_language_is_arithmetic_only():
    df = pd.DataFrame({"a": ["2", "4"], "b b": ["3", "5"]})
    assert io.evaluate_expression("(a + `b b`) / 2 - -1", df).tolist() == [3.5, 5.5]
    for bad in ["__import__('os').system('true')", "a.real", "a ** 2", "[a]", "a if a else a"]:
        with pytest.raises(DataValidationError):
            io.evaluate_expression(bad, df)
    with pytest.raises(DataValidationError, match="column 'zz'"):
        io.evaluate_expression("a * zz", df)
    with pytest.raises(DataValidationError, match="non-numeric") as err:
        io.evaluate_expression("a * 2", pd.DataFrame({"a": ["1", "x1"]}))
    assert "'x1'" in str(err.value)


def test_unknown_extension_needs_a_format(tmp_path, make_config):
    write(tmp_path / "tx.xlsx", "x")
    with pytest.raises(DataValidationError, match="cannot tell the file format"):
        _load(make_config, "data:\n  transactions:\n    path: tx.xlsx\n")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    io.write_frame(pd.DataFrame({"a": [1, 2]}), target)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise Boom
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_write_frame_csv_and_bad_extension(tmp_path):
    io.write_frame(pd.DataFrame({"a": [1.5]}), tmp_path / "x.csv")
    assert (tmp_path / "x.csv").read_text() == "a\n1.5\n"
    with pytest.raises(DataValidationError, match="unsupported output extension"):
        io.write_frame(pd.DataFrame({"a": [1]}), tmp_path / "x.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]
    assert np.isclose(pd.read_csv(tmp_path / "x.csv")["a"][0], 1.5)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("1/0", "divides by the constant 0"),
        ("a / -0.0", "divides by the constant 0"),
        ("9" * 400, "too large"),
        ("a * 1e300", "out of range"),
        ("+".join(["a"] * 3000), "characters long"),
        ("+".join(["a"] * 300), "more than 200 terms"),
        ("(a+" * 50 + "a" + ")" * 50, "nested more than 40 levels"),
        ("-" * 45 + "a", "nested more than 40 levels"),
        ("`a * 2", "not closed"),
        ("", "empty"),
    ],
)
def test_expressions_are_bounded_before_evaluation(expr, says):
    from customer_value.expressions import ExpressionError, parse

    with pytest.raises(ExpressionError, match=says):
        parse(expr)
    with pytest.raises(DataValidationError, match=says):
        io.evaluate_expression(expr, pd.DataFrame({"a": ["1"]}))


def test_division_by_a_zero_column_names_the_rows():
    df = pd.DataFrame({"q": ["1", "2", "3", "4"], "p": ["0", "2", "0", "x"]})
    with pytest.raises(DataValidationError, match="non-numeric"):
        io.evaluate_expression("q / p", df)  # a text cell is its own error, first
    df["p"] = ["0", "2", "0", "4"]
    with pytest.raises(
        DataValidationError, match=r"non-finite value .* 2 row\(s\), e.g. data row\(s\) 1, 3"
    ):
        io.evaluate_expression("q / p", df)
    df["p"] = ["1", "2", "4", "4"]
    assert io.evaluate_expression("q / p", df).tolist() == [1.0, 1.0, 0.75, 1.0]


def test_devices_and_pipes_are_never_read_or_replaced(tmp_path, make_config):
    """A named pipe (like /dev/zero or /dev/null) is neither read as data (it would block or never
    end) nor replaced by an output file (the atomic rename would swap a file in for it)."""
    import os
    import stat

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    cfg = load_config(make_config("data:\n  transactions: {path: pipe.csv}\n"))
    with pytest.raises(DataValidationError, match="device, pipe or socket, not a data file"):
        load_data(cfg)
    with pytest.raises(DataValidationError, match="device, pipe or socket, not a file"):
        io.check_writable(fifo, "--output")
    with pytest.raises(DataValidationError, match="device, pipe or socket"):
        io.write_text("x", fifo)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the pipe
