"""`customer-value target`: the list and report from a predictions file; bad input is exit 2, nothing written."""

import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import REPO
from customer_value.cli import app

runner = CliRunner()
PREDICTIONS = REPO / "tests" / "fixtures" / "chain" / "expected.parquet"


@pytest.fixture
def setup(make_config, tmp_path):
    preds = tmp_path / "predictions.parquet"
    shutil.copy(PREDICTIONS, preds)
    cfg = make_config("""
        data: {transactions: {path: raw/transactions.parquet}}
        targeting: {save_rate: 0.25, save_rates: {Champions: 0.4}}
    """)
    return cfg, preds, tmp_path


def invoke(*args):
    return runner.invoke(app, ["target", *map(str, args)])


def test_target_writes_the_list_and_report_that_match_the_predictions(setup):
    cfg, preds, tmp = setup
    out, rep = tmp / "out" / "contacts.csv", tmp / "out" / "targeting.html"
    res = invoke(
        "--config",
        cfg,
        "--predictions",
        preds,
        "--budget",
        120,
        "--contact-cost",
        3,
        "--output",
        out,
        "--report",
        rep,
    )
    assert res.exit_code == 0, res.output
    contacts = pd.read_csv(out)
    p = pd.read_parquet(preds).set_index("customer_id")
    assert len(contacts) == 40  # 120 / 3, and the 40th still pays at these values
    assert contacts["cumulative_cost"].iloc[-1] == pytest.approx(120.0)
    rate = np.where(p["persona"] == "Champions", 0.4, 0.25)
    gain = pd.Series(p["churn_probability"] * p["predicted_clv"] * rate - 3.0, index=p.index)
    expected = gain.sort_values(ascending=False, kind="stable").head(40)
    assert contacts["customer_id"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(contacts["expected_net_gain"], expected.to_numpy())
    assert "Contact 40 of 300 customers for 120.00" in res.output
    page = rep.read_text(encoding="utf-8")
    assert '<section id="targeting">' in page and "Break-even depth" in page
    assert "data:image/png;base64," in page


def test_target_takes_budget_and_cost_from_the_config(setup, make_config):
    _, preds, tmp = setup
    cfg = make_config(
        """
        data: {transactions: {path: raw/transactions.parquet}}
        targeting: {budget: 10, contact_cost: 2.5}
    """,
        name="c2.yaml",
    )
    res = invoke("--config", cfg, "--predictions", preds, "--output", tmp / "c.parquet", "--report", "")
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(tmp / "c.parquet")) == 4
    assert not (tmp / "reports").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "nan", "--contact-cost", 1], "--budget must be a finite amount above 0"),
        (["--budget", 100, "--contact-cost", "-1"], "--contact-cost must be a finite amount above 0"),
        (["--budget", 1, "--contact-cost", 2], "costs more than the whole budget"),
        (["--contact-cost", 2], "no --budget given and none in the config"),
        (["--budget", 10, "--contact-cost", 1, "--output", "{tmp}/list.txt"], "unsupported --output"),
        (["--budget", 10, "--contact-cost", 1, "--report", "{tmp}/r.pdf"], "unsupported --report"),
        (["--budget", 10, "--contact-cost", 1, "--output", "{preds}"], "is the predictions file"),
        (
            ["--budget", 10, "--contact-cost", 1, "--output", "{tmp}/link.parquet"],
            "is the predictions file",
        ),
        (
            [
                "--budget",
                10,
                "--contact-cost",
                1,
                "--output",
                "{tmp}/same.html",
                "--report",
                "{tmp}/same.html",
            ],
            "unsupported --output",
        ),
        (
            ["--budget", 10, "--contact-cost", 1, "--output", "{tmp}/l.csv", "--report", "{tmp}/l.csv"],
            "unsupported --report",
        ),
        (
            ["--budget", 10, "--contact-cost", 1, "--predictions", "{tmp}/none.parquet"],
            "no predictions file here",
        ),
        (["--budget", 10, "--contact-cost", 1, "--predictions", "{tmp}"], "is a folder"),
        (["--budget", 10, "--contact-cost", 1, "--predictions", "/dev/null"], "is a device"),
        (
            ["--budget", 10, "--contact-cost", 1, "--predictions", "{tmp}/config.yaml"],
            "unsupported --predictions extension",
        ),
        (
            ["--budget", 10, "--contact-cost", 1, "--output", "/proc/no-such/list.csv"],
            "no permission to write in '/proc'",
        ),
    ],
)
def test_bad_terms_and_paths_are_exit_2_before_any_work(setup, args, message):
    cfg, preds, tmp = setup
    (tmp / "link.parquet").hardlink_to(preds)
    args = [str(a).format(tmp=tmp, preds=preds) for a in args]
    if "--predictions" not in args:
        args += ["--predictions", str(preds)]
    if "--output" not in args:
        args += ["--output", str(tmp / "list.csv")]
    res = invoke("--config", cfg, *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (tmp / "list.csv").exists() and not (tmp / "reports").exists()


def _edited(preds, tmp, edit, name="bad.csv"):
    frame = pd.read_parquet(preds)
    frame = edit(frame)
    path = tmp / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.drop(columns="predicted_clv"), "missing column(s) predicted_clv"),
        (
            lambda f: f.assign(churn_probability=f["churn_probability"].where(f.index != 5, 1.5)),
            "first at data row 6",
        ),
        (
            lambda f: f.assign(
                predicted_clv=f["predicted_clv"].astype(object).where(f.index != 2, "lots")
            ),
            "'lots'",
        ),
        (
            lambda f: f.assign(predicted_clv=f["predicted_clv"].where(f.index != 0, -3.0)),
            "not numbers between 0 and inf",
        ),
        (
            lambda f: f.assign(churn_probability=f["churn_probability"].where(f.index != 9)),
            "'<missing>'",
        ),
        (lambda f: pd.concat([f, f.head(2)]), "2 customer(s) appear more than once"),
        (lambda f: f.assign(persona=f["persona"].where(f.index != 3)), "have no persona"),
        (lambda f: f.head(0), "but no rows"),
    ],
)
def test_bad_predictions_files_are_exit_2_and_leave_the_old_list(setup, edit, message):
    cfg, preds, tmp = setup
    bad = _edited(preds, tmp, edit)
    out = tmp / "list.csv"
    out.write_text("old list\n", encoding="utf-8")
    res = invoke(
        "--config",
        cfg,
        "--predictions",
        bad,
        "--budget",
        10,
        "--contact-cost",
        1,
        "--output",
        out,
        "--report",
        tmp / "r.html",
    )
    assert res.exit_code == 2, res.output
    assert message in res.output, res.output
    assert out.read_text(encoding="utf-8") == "old list\n"
    assert not (tmp / "r.html").exists()


def test_a_save_rate_for_an_unknown_persona_is_named(setup, make_config):
    _, preds, tmp = setup
    cfg = make_config(
        """
        data: {transactions: {path: raw/transactions.parquet}}
        targeting: {save_rates: {Loyalists: 0.3}}
    """,
        name="c3.yaml",
    )
    res = invoke(
        "--config",
        cfg,
        "--predictions",
        preds,
        "--budget",
        10,
        "--contact-cost",
        1,
        "--output",
        tmp / "l.csv",
    )
    assert res.exit_code == 2
    assert "names persona 'Loyalists', which no customer has" in res.output
    assert "Champions" in res.output  # the personas that exist
    assert not (tmp / "l.csv").exists()


def test_save_rates_outside_zero_one_are_a_config_error(setup, make_config):
    _, preds, tmp = setup
    cfg = make_config(
        """
        data: {transactions: {path: raw/transactions.parquet}}
        targeting: {save_rates: {Champions: 1.4}}
    """,
        name="c4.yaml",
    )
    res = invoke("--config", cfg, "--predictions", preds, "--budget", 10, "--contact-cost", 1)
    assert res.exit_code == 2
    assert "save rates are shares between 0 and 1" in res.output


HOSTILE = [
    "",
    "nan",
    "inf",
    "-inf",
    "-1",
    "1e309",
    "NULL",
    " 0.5 ",
    "0x1",
    "1,5",
    "é",
    "x" * 5000,
    "2024-06-30",
    "True",
    "0",
    "1",
]


@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cells=st.lists(
        st.tuples(
            st.integers(0, 299),
            st.sampled_from(
                ["customer_id", "persona", "persona_id", "churn_probability", "predicted_clv", "as_of"]
            ),
            st.sampled_from(HOSTILE),
        ),
        min_size=1,
        max_size=4,
    ),
    budget=st.sampled_from(["10", "0.5", "1e12", "1e-300", "nan", "-5", "abc"]),
)
def test_fuzz_hostile_cells_are_exit_0_or_2_never_a_bug(setup, cells, budget):
    """Whatever lands in a predictions cell or the budget: a list (exit 0) or one clear error
    (exit 2) with nothing written; never an internal error or a traceback."""
    cfg, preds, tmp = setup
    frame = pd.read_parquet(preds).astype(object)
    for row, col, value in cells:
        frame.loc[row, col] = value
    bad = tmp / "hostile.csv"
    frame.to_csv(bad, index=False)
    out, rep = tmp / "h" / "list.csv", tmp / "h" / "r.html"
    shutil.rmtree(tmp / "h", ignore_errors=True)
    res = invoke(
        "--config",
        cfg,
        "--predictions",
        bad,
        "--budget",
        budget,
        "--contact-cost",
        "0.5",
        "--output",
        out,
        "--report",
        rep,
    )
    assert res.exit_code in (0, 2), res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    if res.exit_code == 2:
        assert not out.exists() and not rep.exists()
    else:
        listed = pd.read_csv(out)
        assert listed["cumulative_cost"].max() <= float(budget) + 1e-9


def _uplift_file(preds, path, tau):
    p = pd.read_parquet(preds)
    frame = pd.DataFrame({"customer_id": p["customer_id"], "as_of": p["as_of"], "uplift": tau})
    frame.to_parquet(path) if str(path).endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def test_learned_uplift_replaces_the_config_save_rates(setup):
    """gain = min(max(uplift, 0), P(churn)) x CLV - cost, customer by customer."""
    cfg, preds, tmp = setup
    p = pd.read_parquet(preds)
    rng = np.random.default_rng(3)
    tau = rng.uniform(-0.2, 0.6, len(p))  # some negative, some above P(churn)
    up = _uplift_file(preds, tmp / "uplift.parquet", tau)
    out, rep = tmp / "contacts.csv", tmp / "t.html"
    res = invoke(
        "--config", cfg, "--predictions", preds, "--uplift", up, "--budget", 1e6,
        "--contact-cost", 1, "--output", out, "--report", rep,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    saved = np.minimum(np.clip(tau, 0, None), p["churn_probability"]) * p["predicted_clv"]
    gain = pd.Series(saved.to_numpy() - 1.0, index=p["customer_id"])
    expected = gain[gain > 0].sort_values(ascending=False, kind="stable")
    contacts = pd.read_csv(out)
    assert contacts["customer_id"].tolist() == expected.index.tolist()  # the gain limits the list
    np.testing.assert_allclose(contacts["expected_net_gain"], expected.to_numpy())
    assert not set(p.loc[tau <= 0, "customer_id"]) & set(contacts["customer_id"])
    page = rep.read_text(encoding="utf-8")
    assert "learned uplift" in page and "assumptions from the config" not in page


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda f: f.drop(columns="uplift"), "missing column(s) uplift"),
        (lambda f: f.iloc[1:], "customer(s) of the predictions have no uplift"),
        (lambda f: f.assign(uplift=f["uplift"].where(f.index != 5, 1.5)), "between -1 and 1"),
        (lambda f: f.assign(uplift=f["uplift"].astype(str).where(f.index != 2, "n/a")), "'n/a'"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "missing or repeated"),
        (lambda f: f.assign(as_of=pd.Timestamp("2020-01-01")), "scored on 2020-01-01"),
    ],
)
def test_bad_uplift_file_is_exit_2_and_writes_nothing(setup, edit, fragment):
    cfg, preds, tmp = setup
    p = pd.read_parquet(preds)
    good = pd.DataFrame({"customer_id": p["customer_id"], "as_of": p["as_of"], "uplift": 0.1})
    edit(good).to_csv(tmp / "uplift.csv", index=False)
    out = tmp / "contacts.csv"
    res = invoke(
        "--config", cfg, "--predictions", preds, "--uplift", tmp / "uplift.csv", "--budget", 100,
        "--contact-cost", 1, "--output", out, "--report", "",
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert fragment in res.output, res.output
    assert "Traceback" not in res.output and not out.exists()


def test_uplift_file_missing_or_the_output_itself(setup):
    cfg, preds, tmp = setup
    args = ["--config", cfg, "--predictions", preds, "--budget", 100, "--contact-cost", 1]
    res = invoke(*args, "--uplift", tmp / "nope.parquet", "--output", tmp / "c.csv", "--report", "")
    assert res.exit_code == 2 and "no uplift file here" in res.output, res.output
    up = _uplift_file(preds, tmp / "u.csv", 0.1)
    res = invoke(*args, "--uplift", up, "--output", up, "--report", "")
    assert res.exit_code == 2 and "also an output" in res.output, res.output
    assert pd.read_csv(up)["uplift"].eq(0.1).all()
