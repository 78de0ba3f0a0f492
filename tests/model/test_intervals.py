"""Split-conformal CLV intervals: exact values on tiny data, coverage on known distributions."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from customer_value.modeling.intervals import ConformalCLV, check_level, conformal_quantile


def zero_inflated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Customers with a known CLV law: buy with probability b, then spend ~ Gamma(2, m / 2).

    Returns outcomes y and an imperfect prediction p (the true mean times lognormal noise), so the
    intervals are tested on a model that is wrong in the way real ones are.
    """
    rng = np.random.default_rng(seed)
    b = rng.beta(0.6, 1.4, n)  # mostly low purchase probabilities: ~70 % zeros
    m = rng.lognormal(4.0, 0.8, n)  # spend when buying, skewed
    y = np.where(rng.random(n) < b, rng.gamma(2.0, m / 2.0), 0.0)
    p = b * m * rng.lognormal(0.0, 0.3, n)
    return y, p


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    s = np.array([9.0, 1, 8, 2, 7, 3, 6, 4, 5])  # n = 9, unsorted
    assert conformal_quantile(s, 0.8) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(s, 0.5) == 5.0  # ceil(10 * 0.5) = 5th
    assert conformal_quantile(s, 0.9) == 9.0  # ceil(10 * 0.9) = 9th
    assert conformal_quantile(s, 0.95) == np.inf  # ceil(9.5) = 10 > 9: no finite bound


def test_exact_interval_on_nine_hand_made_customers():
    y = np.array([0, 0, 0, 0, 10, 0, 20, 0, 30.0])
    cal = ConformalCLV(levels=(0.8,), n_bins=1, min_bin_size=1).fit(y, np.full(9, 5.0))
    # |y - 5| sorted: 5 x7, 15, 25; the 8th smallest is 15.
    low, high = cal.interval(np.array([0.0, 5.0, 40.0]), 0.8)
    np.testing.assert_array_equal(low, [0.0, 0.0, 25.0])  # clipped at zero, then 40 - 15
    np.testing.assert_array_equal(high, [15.0, 20.0, 55.0])
    _, high95 = cal.interval(np.array([5.0]), 0.95)
    assert high95[0] == np.inf


def test_rank_matching_centres_each_interval_on_the_larger_of_its_prediction_and_its_match():
    # One bin of 5 calibration customers predicted 1..5, all bought nothing: |y - p| = p, and the
    # 80 % quantile is the ceil(6 * .8) = 5th smallest, 5; at 50 % the 3rd, 3. The served model
    # predicts the served base on a hundredth of the scale (the reference).
    served = np.array([0.05, 0.01, 0.04, 0.02, 0.03])
    cal = ConformalCLV(n_bins=1, min_bin_size=1).fit(np.zeros(5), np.arange(1.0, 6.0), served)
    np.testing.assert_array_equal(cal.matched(served), [5.0, 1.0, 4.0, 2.0, 3.0])
    low, high = cal.interval(served, 0.5)
    # centred on the matched 5, 1, 4, 2, 3: 0 held by the three lowest ranks, as in calibration;
    # the low end never above the customer's own prediction
    np.testing.assert_array_equal(low, [0.05, 0.0, 0.04, 0.0, 0.0])
    np.testing.assert_array_equal(high, [8.0, 4.0, 7.0, 5.0, 6.0])
    # by the prediction alone (no reference) every tiny prediction holds 0: all five covered
    plain = ConformalCLV(n_bins=1, min_bin_size=1).fit(np.zeros(5), np.arange(1.0, 6.0))
    np.testing.assert_array_equal(plain.interval(served, 0.5)[0], np.zeros(5))
    np.testing.assert_array_equal(plain.matched(served), served)
    # a reference equal to the calibration predictions: the same intervals as plain Mondrian
    own = ConformalCLV(n_bins=1, min_bin_size=1).fit(
        np.zeros(5), np.arange(1.0, 6.0), np.arange(1.0, 6.0)
    )
    for level in (0.5, 0.8):
        np.testing.assert_array_equal(
            own.interval(np.arange(1.0, 6.0), level), plain.interval(np.arange(1.0, 6.0), level)
        )
    # a prediction above its match keeps its own centre; ties share a mid-rank
    assert cal.interval(np.array([100.0]), 0.8) == (np.array([95.0]), np.array([105.0]))
    np.testing.assert_array_equal(cal.matched(np.array([0.03, 0.03])), [3.0, 3.0])


def test_each_interval_depends_on_its_own_prediction_only():
    # Scored alone, in chunks or all at once (pandas chunks, Spark batches, a pyfunc request of
    # one row): the same interval for every customer.
    y, p = zero_inflated(3000, seed=11)
    cal = ConformalCLV().fit(y[:2000], p[:2000], p[2000:] / 3)
    batch = p[2000:] / 3
    together = cal.interval(batch, 0.8)
    alone = np.array([np.r_[cal.interval(batch[i : i + 1], 0.8)] for i in range(len(batch))])
    np.testing.assert_array_equal(alone[:, 0], together[0])
    np.testing.assert_array_equal(alone[:, 1], together[1])
    halves = [cal.interval(part, 0.8) for part in (batch[::2], batch[1::2])]
    np.testing.assert_array_equal(halves[0][0], together[0][::2])
    np.testing.assert_array_equal(halves[1][1], together[1][1::2])


def test_mondrian_bins_give_each_prediction_level_its_own_width():
    # Two bins of 9: small predictions with small errors, large ones with large errors.
    p = np.r_[np.full(9, 1.0), np.full(9, 100.0)]
    y = np.r_[np.arange(9.0) / 4, 100 + np.arange(-4.0, 5.0) * 10]
    cal = ConformalCLV(n_bins=2, min_bin_size=9).fit(y, p)
    np.testing.assert_array_equal(cal.edges_, [50.5])  # the median of the predictions
    low, high = cal.interval(np.array([1.0, 100.0]), 0.8)
    # Sorted |y - p|, bin 1: 0, .25, .25, .5, .5, .75, .75, 1, 1 -> the 8th smallest is 1;
    # bin 2: 0, 10, 10, 20, 20, 30, 30, 40, 40 -> 40.
    np.testing.assert_array_equal(low, [0.0, 60.0])
    np.testing.assert_array_equal(high, [2.0, 140.0])


def test_small_calibration_sets_get_fewer_bins_never_tiny_ones():
    y, p = zero_inflated(450, seed=3)
    cal = ConformalCLV(n_bins=10, min_bin_size=100).fit(y, p)
    assert 1 <= len(cal.scores_) <= 4
    assert min(len(s) for s in cal.scores_) >= 100
    assert sum(len(s) for s in cal.scores_) == cal.n_ == 450


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coverage_on_a_known_zero_inflated_law(seed):
    # 4,000 calibration and 20,000 test customers: the test share's standard error is <= 0.3
    # points and the calibration set's randomness adds ~0.6 at 80 % (sqrt(.16 / 4000)), so 2
    # points is about three standard errors.
    y_cal, p_cal = zero_inflated(4000, seed=10 + seed)
    y, p = zero_inflated(20000, seed=100 + seed)
    cal = ConformalCLV().fit(y_cal, p_cal)
    widths = []
    for level in (0.8, 0.95):
        low, high = cal.interval(p, level)
        assert (low >= 0).all() and (low <= p).all() and (high >= p).all()
        covered = (y >= low) & (y <= high)
        assert abs(covered.mean() - level) < 0.02, (level, covered.mean())
        widths.append(high - low)
        # Mondrian: coverage holds in each prediction bin too, not only on average (400
        # calibration and ~2,000 test customers a bin: s.e. ~2.2 points at 80 %, 3 s.e. is 7)
        bins = cal._bins(p)
        by_bin = np.bincount(bins, covered) / np.bincount(bins)
        assert np.abs(by_bin - level).max() < 0.07, by_bin
    assert (widths[1] >= widths[0]).all()  # monotone in the level


def test_intervals_are_monotone_in_the_level_and_never_below_zero():
    y, p = zero_inflated(2000, seed=5)
    cal = ConformalCLV().fit(y, p)
    grid = np.linspace(0, p.max() * 1.5, 50)
    previous = None
    for level in (0.5, 0.8, 0.9, 0.95, 0.99):
        low, high = cal.interval(grid, level)
        assert (low >= 0).all()
        if previous is not None:
            assert (low <= previous[0]).all() and (high >= previous[1]).all()
        previous = (low, high)


def test_total_intervals_cover_group_totals_at_their_level():
    # 300 groups of 50 customers from the same law: the realised group total is inside its
    # interval in about `level` of the groups (binomial s.e. 2.3 points at 80 %, so 8 is ~3.5).
    y_cal, p_cal = zero_inflated(5000, seed=21)
    y, p = zero_inflated(15000, seed=22)
    cal = ConformalCLV().fit(y_cal, p_cal)
    groups = np.repeat(np.arange(300), 50)
    for level in (0.8, 0.95):
        g = cal.group_intervals(p, groups, level, n_draws=1000, seed=1)
        actual = np.bincount(groups, y)
        inside = (g["low"].to_numpy() <= actual) & (actual <= g["high"].to_numpy())
        assert abs(inside.mean() - level) < 0.08, (level, inside.mean())
        np.testing.assert_allclose(g["predicted"], np.bincount(groups, p))
    low, high = cal.total_interval(p, 0.95, seed=1)  # the whole base: the normal limit per bin
    assert 0 <= low < y.sum() < high
    assert cal.total_interval(p, 0.95, seed=1) == (low, high)  # seeded


def test_bad_levels_and_inputs_are_refused():
    cal = ConformalCLV().fit(*zero_inflated(500, seed=0))
    for bad in (0.0, 1.0, 80, -0.1, float("nan")):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            cal.interval(np.array([1.0]), bad)
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            check_level(bad)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ConformalCLV(levels=(0.8, 95)).fit(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="one length"):
        ConformalCLV().fit(np.ones(3), np.ones(4))
    with pytest.raises(RuntimeError, match="not fitted"):
        ConformalCLV().interval(np.ones(2), 0.8)


def test_clv_config_validates_the_levels():
    from customer_value.config import CLVConfig

    assert CLVConfig().intervals_levels == [0.8, 0.95]
    assert CLVConfig(intervals_levels=[0.95, 0.8, 0.8]).intervals_levels == [0.8, 0.95]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        CLVConfig(intervals_levels=[0.8, 95])


def test_training_calibrates_with_the_configured_levels_and_the_served_reference():
    from types import SimpleNamespace

    from customer_value.config import CLVConfig
    from customer_value.tasks.base import Assessment
    from customer_value.tasks.clv import calibrate_intervals

    y, p = zero_inflated(500, seed=6)
    assessment = Assessment([], {}, y, {"ours": p})
    # the served model scores the base at the training date (data.current): its reference
    current = pd.DataFrame({"x": np.linspace(0.0, 50.0, 300), "other": 1.0})
    served = SimpleNamespace(features_=["x"], predict=lambda X: X["x"].to_numpy() / 2)
    data = SimpleNamespace(plan=None, current=current)
    for match in (True, False):
        config = SimpleNamespace(clv=CLVConfig(intervals_levels=[0.9], intervals_match_ranks=match))
        cal = calibrate_intervals(config, data, assessment, "ours", served)
        assert cal.levels == (0.9,) and cal.n_ == 500
        if match:
            np.testing.assert_array_equal(np.concatenate(cal.reference_), current["x"] / 2)
        else:
            assert cal.reference_ is None
    assert calibrate_intervals(config, data, assessment, "absent", served) is None
    projected = SimpleNamespace(plan=SimpleNamespace(projected=True), current=current)
    assert calibrate_intervals(config, projected, assessment, "ours", served) is None


def test_served_predictions_carry_the_first_levels_interval():
    """CLVTask.predict: the interval columns equal the calibrator's at its first level, and are
    empty without a calibrator (a model saved before intervals, or projected labels)."""
    import pickle

    from customer_value.modeling.blend import SpendAndCounts
    from customer_value.tasks.base import TaskSpec
    from customer_value.tasks.clv import CLVTask

    chain = pickle.load(open(Path(__file__).parents[1] / "fixtures" / "chain" / "chain.pkl", "rb"))
    model = chain.models["clv"]
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f: rng.uniform(0, 5, 50) for f in model.features_}, columns=model.features_)
    p = model.predict(X)
    cal = ConformalCLV(levels=(0.8, 0.95), n_bins=2, min_bin_size=10).fit(
        rng.gamma(1.0, p.mean(), 400), rng.choice(p, 400)
    )
    task, spec = CLVTask(), TaskSpec(365, 365, "future_margin")
    out = task.predict(SpendAndCounts(model, None, cal), X, spec, None)
    low, high = cal.interval(p, 0.8)
    np.testing.assert_allclose(out["predicted_clv"], p)
    np.testing.assert_array_equal(out["predicted_clv_low"], low)
    np.testing.assert_array_equal(out["predicted_clv_high"], high)
    assert (out["clv_interval_level"] == 0.8).all()
    assert (out["predicted_clv_low"] <= p).all() and (p <= out["predicted_clv_high"]).all()
    bare = task.predict(SpendAndCounts(model, None, None), X, spec, None)
    assert np.isnan(bare["predicted_clv_low"]).all() and np.isnan(bare["clv_interval_level"]).all()


def test_point_mass_bins_are_decided_from_calibration_zeros():
    # Bin 0 (p = 1): 19 of 20 bought nothing; bin 1 (p = 50): 5 of 20 bought nothing.
    y = np.r_[np.zeros(19), 10.0, np.zeros(5), np.linspace(20, 90, 15)]
    p = np.r_[np.full(20, 1.0), np.full(20, 50.0)]
    cal = ConformalCLV(n_bins=2, min_bin_size=10).fit(y, p)
    np.testing.assert_allclose(cal.zero_share_, [0.95, 0.25])
    np.testing.assert_array_equal(cal.point_mass(np.array([0.5, 1.0, 60.0]), 0.8), [True, True, False])
    np.testing.assert_array_equal(cal.point_mass(np.array([0.5, 60.0]), 0.95), [True, False])
    np.testing.assert_array_equal(cal.point_mass(np.array([0.5]), 0.96), [False])
    # Exchangeable windows (no shift): both parts are covered near the level.
    yz, pz = zero_inflated(40_000, seed=4)
    fit = ConformalCLV().fit(yz[:20_000], pz[:20_000])
    yt, pt = yz[20_000:], pz[20_000:]
    low, high = fit.interval(pt, 0.8)
    inside, mass = (yt >= low) & (yt <= high), fit.point_mass(pt, 0.8)
    assert mass.any() and (~mass).any()
    assert abs(inside[mass].mean() - 0.8) < 0.02
    assert abs(inside[~mass].mean() - 0.8) < 0.02

    # Shift the next window toward customers who stopped buying (tiny predictions, no purchase),
    # the ageing base of the backtest. By the prediction alone every new interval holds 0, so the
    # point-mass part is covered far above the level; matched by rank, it stays at the level.
    quiet = pt < np.quantile(pt, 0.05)
    ys, ps = np.r_[yt, np.zeros(6 * quiet.sum())], np.r_[pt, np.tile(pt[quiet] / 10, 6)]
    mass = fit.point_mass(ps, 0.8)
    matched = ConformalCLV().fit(yz[:20_000], pz[:20_000], ps)  # the served base as reference
    for cal, share, part in ((fit, (0.83, 1.0), (0.85, 1.0)), (matched, (0.78, 0.82), (0.77, 0.83))):
        low, high = cal.interval(ps, 0.8)
        inside = (ys >= low) & (ys <= high)
        ranked = cal.reference_ is not None
        assert share[0] < inside.mean() < share[1], (ranked, inside.mean())
        assert part[0] < inside[mass].mean() < part[1], (ranked, inside[mass].mean())
        assert abs(inside[~mass].mean() - 0.8) < 0.02
