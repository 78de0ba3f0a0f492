"""The scoring chain, tested from the committed fixture (tiny models, tables, expected output).

No training: ``tests/fixtures/make_chain.py`` fitted the models once; these tests score the saved
chain and compare with the predictions saved beside it.
"""

import pickle
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from make_chain import AS_OF, HERE, tables  # noqa: E402

from customer_value.chain import (  # noqa: E402
    ScoringSpec,
    build_features,
    prediction_schema,
    score,
    score_input,
    score_tables,
)
from customer_value.config import DataConfig  # noqa: E402
from customer_value.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def chain():
    with open(HERE / "chain.pkl", "rb") as fh:
        return pickle.load(fh)


@pytest.fixture(scope="module")
def expected():
    return pd.read_parquet(HERE / "expected.parquet")


def test_saved_chain_scores_exactly_the_saved_predictions(chain, expected):
    got = score_tables(chain, tables(), AS_OF, reasons="exact")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    optional = {"previous_persona_id", "previous_persona"}  # only when asked for (predict does)
    assert list(got.columns) == [c for c in prediction_schema().names if c not in optional]
    chain.schema.validate(got)
    assert set(got["churn_model_version"]) == {"7"} and set(got["persona_model_version"]) == {"9"}
    with_previous = score_tables(chain, tables(), AS_OF, previous_days=90, reasons="exact")
    assert list(with_previous.columns) == prediction_schema().names
    chain.schema.validate(with_previous)
    pd.testing.assert_frame_equal(with_previous.drop(columns=list(optional)), got)


def test_chunks_and_reasons_do_not_change_the_numbers(chain, expected):
    fs = build_features(chain, tables(), AS_OF)
    chunked = score(chain, fs.frame, AS_OF, fs.btyd, reasons="exact", chunk_size=7)
    pd.testing.assert_frame_equal(chunked, expected, check_exact=True)
    bare = score(chain, fs.frame, AS_OF, fs.btyd, reasons="none")
    cols = [c for c in bare.columns]
    pd.testing.assert_frame_equal(bare, expected[cols], check_exact=True)
    assert not any("_driver_" in c for c in bare.columns)


def test_feature_rows_score_like_tables(chain, expected):
    """The pyfunc's feature-row path (what spark_udf sends) gives the same rows."""
    fs = build_features(chain, tables(), AS_OF)
    rows = fs.frame.reset_index().assign(as_of=str(AS_OF.date()))
    got = score_input(chain, rows, DataConfig.model_validate({"transactions": {"path": "x.csv"}}))
    got = got.sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_spec_round_trips_and_refuses_a_missing_key(chain):
    d = chain.spec.to_dict()
    assert ScoringSpec.from_dict(d) == chain.spec
    del d["vocabulary"]
    with pytest.raises(UserError, match="scoring spec is incomplete"):
        ScoringSpec.from_dict(d)


def test_missing_model_inputs_are_a_clear_error(chain):
    fs = build_features(chain, tables(), AS_OF)
    with pytest.raises(UserError, match="lack 1 column"):
        score(chain, fs.frame.drop(columns=["recency_days"]), AS_OF, fs.btyd)


def test_schema_check_refuses_bad_predictions(chain, expected):
    bad = expected.copy()
    bad.loc[0, "churn_probability"] = 1.5
    bad.loc[1, "retention_rank"] = bad.loc[2, "retention_rank"]
    with pytest.raises(UserError) as err:
        chain.schema.validate(bad)
    assert "churn_probability" in str(err.value) and "retention_rank" in str(err.value)
