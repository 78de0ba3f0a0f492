"""SHAP through the ``shap`` package: Explanations, shap's own plots, and TreeExplainer agreement.

The chain explains its xgboost models with xgboost's ``pred_contribs``; these tests pin that
``explain.explanation`` hands exactly those numbers to ``shap``, that shap's plots draw them, and
that ``shap.TreeExplainer`` on the trained boosters gives the same contributions (to 1e-6).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from matplotlib.figure import Figure

from customer_value import explain, plots, report

shap = pytest.importorskip("shap")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from make_chain import AS_OF, HERE, tables  # noqa: E402

TREE_PARTS = (
    "children_left",
    "children_right",
    "children_default",
    "features",
    "thresholds",
    "values",
    "node_sample_weight",
)


# --- explain.explanation on hand-made data -----------------------------------------------------


def test_explanation_is_exactly_the_contributions_and_features():
    contributions = pd.DataFrame(
        {
            "recency_days": [0.25, -0.5, 1.0],
            "tickets_90d": [-0.125, 0.0, 0.375],
            "bias": [-1.5, -1.5, -1.5],
        },
        index=pd.Index(["c3", "c1", "c2"], name="customer_id"),
    )
    # Extra columns and customers, another row order, an integer, a boolean and a missing value:
    # the Explanation takes the contributions' rows and columns, as floats.
    features = pd.DataFrame(
        {
            "tickets_90d": pd.array([2, None, 0, 5], dtype="Int64"),
            "unused": [9.0, 9.0, 9.0, 9.0],
            "recency_days": [10, 20, 30, 40],
        },
        index=pd.Index(["c1", "c2", "c3", "c4"], name="customer_id"),
    )
    e = explain.explanation(contributions, features)

    assert isinstance(e, shap.Explanation)
    assert e.feature_names == ["recency_days", "tickets_90d"]
    assert e.values.dtype == np.float64 and e.base_values.dtype == np.float64
    np.testing.assert_array_equal(e.values, [[0.25, -0.125], [-0.5, 0.0], [1.0, 0.375]])
    np.testing.assert_array_equal(e.base_values, [-1.5, -1.5, -1.5])
    np.testing.assert_array_equal(e.data, [[30.0, 0.0], [10.0, 2.0], [20.0, np.nan]])
    # A row still adds up to the margin, and one row is what shap's single-customer plots take.
    np.testing.assert_allclose(e.values.sum(axis=1) + e.base_values, contributions.sum(axis=1))
    assert e[1].shape == (2,) and float(e[1].base_values) == -1.5
    # No mutation of the inputs.
    assert list(contributions.index) == ["c3", "c1", "c2"] and "bias" in contributions


def test_explanation_refuses_missing_customers_and_a_missing_bias():
    contributions = pd.DataFrame({"a": [0.1], "bias": [0.0]}, index=["x"])
    with pytest.raises(KeyError, match="lack 1 customer"):
        explain.explanation(contributions, pd.DataFrame({"a": [1.0]}, index=["y"]))
    with pytest.raises(KeyError, match="bias"):
        explain.explanation(contributions.drop(columns="bias"), pd.DataFrame({"a": [1.0]}, index=["x"]))


# --- shap's figures, from the committed scoring chain (no training) ----------------------------


@pytest.fixture(scope="module")
def fixture_explanations():
    from customer_value.chain import build_features

    with open(HERE / "chain.pkl", "rb") as fh:
        chain = pickle.load(fh)
    features = build_features(chain, tables(), AS_OF).frame
    out = {}
    for task in chain.tasks:
        if task.explained:
            model = chain.models[task.name]
            contrib = model.contributions(features[model.features_])
            out[task.name] = (contrib, explain.explanation(contrib, features))
    return out


def _renders(fig) -> bytes:
    assert isinstance(fig, Figure) and fig.axes
    png = report.figure_png(fig)
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    return png


def test_shap_figures_render_and_leave_pyplot_as_they_found_it(fixture_explanations):
    before = plt.get_fignums()
    plt.ion()  # a notebook's state: shap turns interactive mode off, the figures must not
    try:
        for name, (contrib, e) in fixture_explanations.items():
            sample = e[:150]
            bee = plots.beeswarm(sample, f"{name}: SHAP values", top=8)
            _renders(bee)
            assert bee.axes[0].get_title() == f"{name}: SHAP values"
            assert len(bee.axes[0].get_yticklabels()) == 8  # 7 features + "Sum of ... others"
            feature = explain.global_importance(contrib)["feature"].iloc[0]
            _renders(plots.dependence(sample, feature, f"{name}: {feature}"))
            fall = plots.waterfall(e[0], f"{name}: customer {contrib.index[0]}")
            _renders(fall)
            assert fall.get_suptitle() == f"{name}: customer {contrib.index[0]}"
            # Nothing drawn sticks out of the canvas (shap's labels left of the axes included).
            box = fall.get_tightbbox(fall.canvas.get_renderer())
            w, h = fall.get_size_inches()
            assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= w + 1e-6 and box.y1 <= h + 1e-6
        assert plt.isinteractive()
        assert plt.get_fignums() == before  # every pyplot figure shap drew on was let go
    finally:
        plt.ioff()


def test_shap_plots_take_the_explanation_directly(fixture_explanations):
    _, e = fixture_explanations["churn"]
    try:
        ax = shap.plots.waterfall(e[0], show=False)
        assert ax.figure.axes
        shap.plots.bar(e, show=False)
    finally:
        plt.close("all")


# --- the tuned models of a trained run ---------------------------------------------------------


def _learned(model):
    """The xgboost model a served model explains (a blend's learned part, a spend model's blend)."""
    while not hasattr(model, "explained_booster_"):
        model = model.spend if hasattr(model, "spend") else model.model
    return model


def _shap_own_tree_shap(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    """Contributions from shap's own TreeSHAP (its C extension) on the trees it parsed.

    ``TreeExplainer`` hands an xgboost model to xgboost's ``pred_contribs``, the very call the
    chain makes; running shap's algorithm on the same trees checks the numbers independently.
    Only the values: shap fills the parsed trees' inner nodes with xgboost's base weights, so its
    expected value there is not the cover-weighted mean xgboost uses as the bias.
    """
    parsed = shap.TreeExplainer(booster, model_output="raw").model
    trees = [{k: getattr(t, k) for k in TREE_PARTS} for t in parsed.trees]
    own = shap.TreeExplainer({"trees": trees, "base_offset": parsed.base_offset}, model_output="raw")
    assert own.model.model_type == "internal"
    return own.shap_values(X.to_numpy(dtype=np.float32), check_additivity=False)


@pytest.fixture(scope="module")
def latest(trained_store):
    from customer_value.pipelines.review import latest_run

    cfg, _, second = trained_store
    run = latest_run(cfg)
    assert run.run_id == second.run_id
    return run, run.features()


def test_tree_explainer_reproduces_the_chain_on_the_tuned_models(latest):
    run, features = latest
    contributions = run.contributions(features)
    assert set(contributions) == {t.name for t in run.chain.tasks if t.explained} >= {"churn", "clv"}
    for name, contrib in contributions.items():
        gbm = _learned(run.chain.models[name])
        X = features[gbm.features_]
        booster = gbm.explained_booster_[: gbm.best_iteration_ + 1]  # the rounds it predicts with
        values = contrib[gbm.features_].to_numpy()
        bias = contrib["bias"].to_numpy()

        explainer = shap.TreeExplainer(booster, model_output="raw")
        got = explainer(X)
        diff = np.abs(got.values - values).max()
        print(f"{name}: max |TreeExplainer - chain| = {diff:.3g} over {values.size} values")
        assert diff <= 1e-6, name
        np.testing.assert_allclose(got.base_values, bias, rtol=0, atol=1e-6)
        np.testing.assert_allclose(explainer.expected_value, bias[0], rtol=0, atol=1e-6)

        own = _shap_own_tree_shap(booster, X)
        diff = np.abs(own - values).max()
        print(f"{name}: max |shap's own TreeSHAP - chain| = {diff:.3g}")
        # Same TreeSHAP, other arithmetic (xgboost sums in float32, shap in float64): we measured
        # under 1e-6 on this store; the margin tolerance leaves room for another seed's trees.
        assert diff <= 1e-5, name
        # No base_margin or offset: the bias plus the values is the booster's raw margin (float32).
        margin = booster.predict(xgb.DMatrix(X), output_margin=True)
        np.testing.assert_allclose(values.sum(axis=1) + bias, margin, rtol=0, atol=1e-5)


def test_run_explain_gives_shap_explanations_and_the_run_logs_shap_figures(latest):
    run, features = latest
    rows = features.iloc[[5, 0, 3]]
    explained = run.explain(rows)
    contributions = run.contributions(rows)
    assert set(explained) == set(contributions)
    for name, e in explained.items():
        c = contributions[name]
        assert isinstance(e, shap.Explanation) and e.shape == (3, c.shape[1] - 1)
        np.testing.assert_array_equal(e.values, c.drop(columns="bias").to_numpy())
        np.testing.assert_array_equal(e.base_values, c["bias"].to_numpy())
        np.testing.assert_array_equal(e.data, rows[e.feature_names].to_numpy(dtype=float))
    try:
        ax = shap.plots.waterfall(explained["churn"][0], show=False)
        assert ax.figure.axes
    finally:
        plt.close("all")
    reasons = run.reasons(rows, n=2)
    assert list(reasons["churn"].index) == list(rows.index)

    shap_figures = run.artifacts("shap")
    names = {Path(p).name for p in shap_figures}
    assert {"churn_beeswarm.png", "clv_beeswarm.png"} <= names
    waterfalls = sorted(n for n in names if n.startswith("churn_waterfall_"))
    # The three reference customers most likely to churn, one waterfall each.
    assert len(waterfalls) == 3, waterfalls
    page = run.text("report/report.html")
    assert all(f"shap/{n}" in page for n in waterfalls)
