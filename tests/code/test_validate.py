"""Each validation error on tiny hand-made files, and every policy's counts."""

import pandas as pd
import pytest

from conftest import write
from customer_value.config import load_config
from customer_value.errors import DataValidationError
from customer_value.pipelines.data import load_data

BODY = """
data:
  transactions:
    path: tx.csv
{extra}
"""


def run(tmp_path, make_config, csv_text, extra="", name="tx.csv"):
    write(tmp_path / name, csv_text)
    return load_data(load_config(make_config(BODY.format(extra=extra))))


def expect_error(tmp_path, make_config, csv_text, *fragments, extra=""):
    with pytest.raises(DataValidationError) as err:
        run(tmp_path, make_config, csv_text, extra)
    text = str(err.value)
    assert str(tmp_path / "tx.csv") in text, text
    for frag in fragments:
        assert frag in text, text
    return text


def test_missing_required_column(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "customer_id,timestamp\n1,2024-01-01\n",
        "missing required column(s) ['amount']",
        "map yours onto the contract",
    )


def test_unparseable_date_names_values(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "customer_id,timestamp,amount\n1,2024-01-01,5\n2,31/02/2024,5\n3,yesterday,1\n",
        "column 'timestamp'",
        "2 value(s) are not dates",
        "'31/02/2024'",
        "'yesterday'",
        "date_format",
    )


def test_date_format_mismatch(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "customer_id,timestamp,amount\n1,2024-01-01,5\n",
        "not dates in format '%Y%m%d'",
        extra='    date_format: "%Y%m%d"',
    )


def test_non_numeric_amount(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "customer_id,timestamp,amount\n1,2024-01-01,£5\n",
        "column 'amount'",
        "not numbers",
        "'£5'",
        "currency symbols",
    )


def test_empty_file_and_header_only(tmp_path, make_config):
    expect_error(tmp_path, make_config, "", "the file is empty")
    expect_error(tmp_path, make_config, "customer_id,timestamp,amount\n", "header but no rows")


def test_missing_amount_error_or_drop(tmp_path, make_config):
    text = "customer_id,timestamp,amount\n1,2024-01-01,\n2,2024-01-02,3\n"
    expect_error(tmp_path, make_config, text, "1 row(s) have no amount", "line 2")
    loaded = run(tmp_path, make_config, text, "  policies: {missing_amount: drop}")
    assert loaded.data.transactions["customer_id"].tolist() == ["2"]
    assert loaded.report.dropped("transactions", "missing_amount") == 1


def test_mixed_timezones(tmp_path, make_config):
    text = "customer_id,timestamp,amount\n1,2024-01-01T10:00:00+02:00,5\n2,2024-01-01 10:00:00,5\n"
    expect_error(tmp_path, make_config, text, "some timestamps carry a timezone", "data.timezone")
    loaded = run(tmp_path, make_config, text, "  timezone: Europe/Berlin")
    ts = loaded.data.transactions.set_index("customer_id")["timestamp"]
    assert ts["1"] == pd.Timestamp("2024-01-01 09:00") and ts["2"] == pd.Timestamp("2024-01-01 10:00")


def test_all_aware_timestamps_become_utc(tmp_path, make_config):
    text = "customer_id,timestamp,amount\n1,2024-01-01T10:00:00+02:00,5\n1,2024-01-02T10:00:00Z,5\n"
    ts = run(tmp_path, make_config, text).data.transactions["timestamp"].tolist()
    assert ts == [pd.Timestamp("2024-01-01 08:00"), pd.Timestamp("2024-01-02 10:00")]


def test_policies_and_report_counts(tmp_path, make_config):
    csv_text = """
        customer_id,timestamp,amount,product_id
        1,2024-01-01,10,A
        1,2024-01-01,10,A
        ,2024-01-02,7,A
        2,2024-01-03,0,A
        2,2024-01-04,-4,A
        2,2024-01-05,3,POST
        3,2024-01-06,8,gift_0001_10
        3,2024-01-07,9,B
    """
    extra = "  policies: {exclude_products: [POST, 'gift_0001_*']}"
    loaded = run(tmp_path, make_config, csv_text, extra)
    tx, rep = loaded.data.transactions, loaded.report
    assert tx[["customer_id", "amount", "is_return"]].values.tolist() == [
        ["1", 10.0, False],
        ["2", -4.0, True],
        ["3", 9.0, False],
    ]
    assert rep.dropped("transactions", "duplicates") == 1
    assert rep.dropped("transactions", "missing_customer_id") == 1
    assert rep.dropped("transactions", "zero_amounts") == 1
    assert rep.dropped("transactions", "exclude_products") == 2
    assert rep.facts["transactions"]["customers_before_filtering"] == 3
    assert rep.facts["summary"]["customers"] == 3

    kept = run(
        tmp_path,
        make_config,
        csv_text,
        "  policies: {duplicates: keep, zero_amounts: keep, returns: drop, negative_amounts: return}",
    )
    assert len(kept.data.transactions) == 6  # 8 rows - no id - the return
    assert kept.report.dropped("transactions", "returns") == 1


def test_missing_customer_id_error_policy(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "customer_id,timestamp,amount\n,2024-01-01,5\n",
        "1 row(s) have no customer id",
        "missing_customer_id: drop",
        extra="  policies: {missing_customer_id: error}",
    )


def test_negative_amount_error_policy(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "customer_id,timestamp,amount\n1,2024-01-01,-5\n",
        "negative amount(s) not marked as returns",
        "-5.0",
        extra="  policies: {negative_amounts: error}",
    )


def test_nothing_left(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "customer_id,timestamp,amount\n1,2024-01-01,0\n",
        "no transactions are left",
    )


def test_non_utf8_bytes(tmp_path, make_config):
    (tmp_path / "tx.csv").write_bytes(b"customer_id,timestamp,amount\n\xff\xfe1,2024-01-01,5\n")
    load = lambda: load_data(load_config(make_config(BODY.format(extra=""))))  # noqa: E731
    with pytest.raises(DataValidationError, match="(?s)line 2.*not valid utf-8.*encoding"):
        load()


def test_truncated_parquet(tmp_path, make_config):
    frame = pd.DataFrame(
        {"customer_id": ["1"] * 100, "timestamp": ["2024-01-01"] * 100, "amount": [1.0] * 100}
    )
    frame.to_parquet(tmp_path / "tx.parquet")
    data = (tmp_path / "tx.parquet").read_bytes()
    (tmp_path / "tx.parquet").write_bytes(data[: len(data) // 2])
    cfg = load_config(make_config("data:\n  transactions:\n    path: tx.parquet\n"))
    with pytest.raises(DataValidationError, match="cannot read the file as parquet.*truncated"):
        load_data(cfg)


def test_mapping_names_missing_source_column(tmp_path, make_config):
    expect_error(
        tmp_path,
        make_config,
        "cid,timestamp,amount\n1,2024-01-01,5\n",
        "source column(s) ['Cust']",
        "the file's columns are: cid, timestamp, amount",
        extra="    columns: {Cust: customer_id}",
    )


def test_customers_and_interactions_tables(tmp_path, make_config):
    write(tmp_path / "tx.csv", "customer_id,timestamp,amount\n1,2024-01-01,5\n2,2024-01-02,6\n")
    write(
        tmp_path / "cust.csv",
        "customer_id,signup_date,acquisition_cost,referred_by\n"
        "1,2023-12-01,10,\n2,2023-12-05,20,1.0\n2,2023-12-06,1,\n",
    )
    write(
        tmp_path / "inter.csv",
        "customer_id,timestamp,kind,score\n1,2024-01-03,NPS,9\n2,2024-01-03,support_ticket,\n",
    )
    body = BODY.format(extra="  customers: {path: cust.csv}\n  interactions: {path: inter.csv}")
    loaded = load_data(load_config(make_config(body)))
    cust = loaded.data.customers
    assert cust["customer_id"].tolist() == ["1", "2"]
    assert cust["referred_by"].tolist() == [None, "1"]
    assert loaded.report.dropped("customers", "duplicate_customer_id") == 1
    inter = loaded.data.interactions
    assert inter["kind"].tolist() == ["nps", "support_ticket"]

    write(tmp_path / "inter.csv", "customer_id,timestamp,kind,score\n1,2024-01-03,tweet,9\n")
    with pytest.raises(
        DataValidationError, match="(?s)unknown kind.*'tweet'.*nps, csat, support_ticket"
    ):
        load_data(load_config(make_config(body)))
    write(tmp_path / "inter.csv", "customer_id,timestamp,kind,score\n1,2024-01-03,nps,11\n")
    with pytest.raises(DataValidationError, match="nps score.*outside 0..10"):
        load_data(load_config(make_config(body)))


def test_row_numbers_are_file_lines_for_csv_and_rows_for_parquet(tmp_path, make_config):
    """A csv's header is line 1, so its first data row is line 2; a parquet file has no header."""
    frame = pd.DataFrame(
        {"customer_id": ["a", None, "b"], "timestamp": ["2024-01-01"] * 3, "amount": [1.0, 2.0, 3.0]}
    )
    frame.to_csv(tmp_path / "tx.csv", index=False)
    frame.to_parquet(tmp_path / "tx.parquet", index=False)
    for name, where in (("tx.csv", "line 3"), ("tx.parquet", "row 2")):
        cfg = load_config(
            make_config(
                f"data:\n  transactions: {{path: {name}}}\n  policies: {{missing_customer_id: error}}\n"
            )
        )
        with pytest.raises(DataValidationError, match=where):
            load_data(cfg)


CAMPAIGN_TX = "customer_id,timestamp,amount\n1,2024-01-01,5\n2,2024-01-02,6\n3,2024-01-03,7\n"


def load_campaigns(tmp_path, make_config, text, name="camp.csv"):
    write(tmp_path / "tx.csv", CAMPAIGN_TX)
    write(tmp_path / name, text)
    return load_data(load_config(make_config(BODY.format(extra=f"  campaigns: {{path: {name}}}"))))


def test_campaigns_table_typed_deduplicated_and_counted(tmp_path, make_config):
    loaded = load_campaigns(
        tmp_path,
        make_config,
        "customer_id,date,treated,channel,cost\n"
        "1,2024-02-01 10:30,yes,email,1.5\n"
        "2,2024-02-01,0,email,0\n"
        "2,2024-02-01,false,email,0\n"  # the same row again: dropped
        "9,2024-02-01,1,sms,0.2\n"  # no transactions: kept, counted as unused
        ",2024-02-01,1,sms,0.2\n",  # no customer id: dropped
    )
    camp = loaded.data.campaigns
    assert camp["customer_id"].tolist() == ["1", "2", "9"]
    assert camp["treated"].tolist() == [True, False, True]
    assert camp["date"].tolist() == [pd.Timestamp("2024-02-01")] * 3  # the contact day
    assert camp["cost"].tolist() == [1.5, 0.0, 0.2]
    report = loaded.report
    assert report.dropped("campaigns", "duplicate_customer_date") == 1
    assert report.dropped("campaigns", "missing_customer_id") == 1
    rows = report.to_frame().set_index(["table", "rule"])["rows"]
    assert rows[("campaigns", "customer_without_transactions")] == 1


@pytest.mark.parametrize(
    "body, fragments",
    [
        ("customer_id,date\n1,2024-02-01\n", ["missing required column(s) ['treated']"]),
        ("customer_id,date,treated\n1,2024-02-01,\n", ["with no arm", "line 2", "held back"]),
        ("customer_id,date,treated\n1,,true\n", ["with no date", "line 2"]),
        ("customer_id,date,treated\n1,2024-02-01,maybe\n", ["not true/false", "'maybe'"]),
        ("customer_id,date,treated\n1,someday,1\n", ["column 'date'", "not dates"]),
        (
            "customer_id,date,treated\n1,2024-02-01,1\n1,2024-02-01 18:00,0\n",
            ["both treated and control on the same date", "1 on 2024-02-01"],
        ),
        ("customer_id,date,treated,cost\n1,2024-02-01,1,-2\n", ["negative contact cost"]),
        ("customer_id,date,treated,cost\n1,2024-02-01,1,inf\n", ["infinite"]),
    ],
)
def test_bad_campaigns_table_is_a_clear_error(tmp_path, make_config, body, fragments):
    with pytest.raises(DataValidationError) as err:
        load_campaigns(tmp_path, make_config, body)
    text = str(err.value)
    assert str(tmp_path / "camp.csv") in text, text
    for frag in fragments:
        assert frag in text, text
