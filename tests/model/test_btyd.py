"""BG/NBD and Gamma-Gamma: hand-computed likelihoods, invariants, and parameter recovery."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from customer_value.modeling.btyd import BetaGeoModel, GammaGammaModel, PoorFitWarning
from customer_value.synthetic import simulate_bgnbd, simulate_gamma_gamma

# The CDNOW estimates of Fader, Hardie & Lee (2005), in weeks.
R, ALPHA, A, B = 0.243, 4.414, 0.793, 2.426
TRIPLES = [(0, 0.0, 38.86), (2, 30.43, 38.86), (14, 34.0, 35.0), (1, 1.71, 38.86)]


def fitted(r=R, alpha=ALPHA, a=A, b=B):
    model = BetaGeoModel()
    model.r_, model.alpha_, model.a_, model.b_ = r, alpha, a, b
    return model


def X(triples):
    return pd.DataFrame(triples, columns=["frequency", "recency", "T"])


def hand_ll(x, tx, T, r=R, alpha=ALPHA, a=A, b=B):
    """FHL 2005 eq. 6, written out in plain arithmetic."""
    beta = lambda u, v: math.gamma(u) * math.gamma(v) / math.gamma(u + v)  # noqa: E731
    a1 = math.gamma(r + x) * alpha**r / math.gamma(r)
    a2 = beta(a, b + x) / beta(a, b)
    a3 = (1 / (alpha + T)) ** (r + x)
    a4 = (a / (b + x - 1)) * (1 / (alpha + tx)) ** (r + x) if x > 0 else 0.0
    return math.log(a1 * a2 * (a3 + a4))


def hand_p_alive(x, tx, T, r=R, alpha=ALPHA, a=A, b=B):
    if x == 0:
        return 1.0
    return 1 / (1 + (a / (b + x - 1)) * ((alpha + T) / (alpha + tx)) ** (r + x))


def test_log_likelihood_matches_published_formula():
    for x, tx, T in TRIPLES:
        ours = BetaGeoModel.individual_log_likelihood((R, ALPHA, A, B), [x], [tx], [T])[0]
        assert ours == pytest.approx(hand_ll(x, tx, T), rel=1e-10)


def test_p_alive_matches_published_formula():
    ours = fitted().p_alive(X(TRIPLES))
    for value, (x, tx, T) in zip(ours, TRIPLES, strict=True):
        assert value == pytest.approx(hand_p_alive(x, tx, T), rel=1e-10)


def test_p_no_purchase_by_hand_and_limits():
    model = fitted()
    x, tx, T, t = 2, 30.43, 38.86, 10.0
    beta = lambda u, v: math.gamma(u) * math.gamma(v) / math.gamma(u + v)  # noqa: E731
    A_t = beta(A, B + x) * (ALPHA + T + t) ** -(R + x)
    A_0 = beta(A, B + x) * (ALPHA + T) ** -(R + x)
    D = beta(A + 1, B + x - 1) * (ALPHA + tx) ** -(R + x)
    assert model.p_no_purchase(X([(x, tx, T)]), t)[0] == pytest.approx((A_t + D) / (A_0 + D), rel=1e-10)
    Xs = X(TRIPLES)
    assert np.allclose(model.p_no_purchase(Xs, 0.0), 1.0)
    # Far ahead, an alive customer buys for sure: P(no purchase) -> P(dead) = 1 - P(alive).
    assert np.allclose(model.p_no_purchase(Xs, 1e40), 1 - model.p_alive(Xs), atol=1e-6)
    # Customers with x = 0 are "alive" yet still the likeliest not to buy: the score is not 1 - p_alive.
    assert model.p_no_purchase(Xs, 52)[0] > model.p_no_purchase(Xs, 52)[2]


def test_expected_transactions_by_hand_and_new_customer_identity():
    model = fitted()
    x, tx, T, t = 2, 30.43, 38.86, 39.0
    z = t / (ALPHA + T + t)
    num = (
        (A + B + x - 1)
        / (A - 1)
        * (1 - ((ALPHA + T) / (ALPHA + T + t)) ** (R + x) * hyp2f1(R + x, B + x, A + B + x - 1, z))
    )
    den = 1 + (A / (B + x - 1)) * ((ALPHA + T) / (ALPHA + tx)) ** (R + x)
    assert model.expected_transactions(X([(x, tx, T)]), t)[0] == pytest.approx(num / den, rel=1e-10)
    # A customer acquired right now (x = 0, T = 0) expects the unconditional E[X(t)].
    assert model.expected_transactions(X([(0, 0.0, 0.0)]), t)[0] == pytest.approx(
        model.expected_transactions_new(t), rel=1e-10
    )


def test_population_identities_with_true_parameters():
    r, alpha, a, b, T, t = 0.6, 25.0, 0.9, 3.0, 200.0, 100.0
    sim = simulate_bgnbd(60_000, r, alpha, a, b, T, seed=5)
    model = fitted(r, alpha, a, b)
    # E over customers of P(alive) = share alive; of E[Y(t) | data] = E[X(T + t)] - E[X(T)].
    p = model.p_alive(sim)
    assert abs(p.mean() - sim["alive"].mean()) < 4 * np.sqrt(p.mean() * (1 - p.mean()) / len(sim))
    cond = model.expected_transactions(sim, t).mean()
    uncond = model.expected_transactions_new(T + t) - model.expected_transactions_new(T)
    assert cond == pytest.approx(uncond, rel=0.03)


@pytest.mark.parametrize("seed", [0, 1])
def test_bgnbd_recovers_parameters(seed):
    rng = np.random.default_rng(seed)
    truth = dict(r=0.5, alpha=20.0, a=0.8, b=2.5)
    sim = simulate_bgnbd(10_000, **truth, T=rng.uniform(180, 720, 10_000), seed=seed)
    model = BetaGeoModel().fit(sim)
    for name, value in truth.items():
        assert model.params_[name] == pytest.approx(value, rel=0.15), name
    assert model.converged_


def test_gamma_gamma_ll_by_hand_and_recovery():
    p, q, g = 6.0, 4.0, 15.0
    x, m = 3, 25.0
    hand = (
        math.lgamma(p * x + q)
        - math.lgamma(p * x)
        - math.lgamma(q)
        + q * math.log(g)
        + (p * x - 1) * math.log(m)
        + p * x * math.log(x)
        - (p * x + q) * math.log(g + m * x)
    )
    assert GammaGammaModel.individual_log_likelihood((p, q, g), [x], [m])[0] == pytest.approx(hand)
    freq = np.random.default_rng(3).integers(1, 12, 20_000)
    sim = simulate_gamma_gamma(freq, p, q, g, seed=3)
    model = GammaGammaModel().fit(sim)
    # p and gamma trade off (weakly identified); their product over q - 1, the mean, is sharp.
    for name, value, tol in (("p", p, 0.2), ("q", q, 0.1), ("gamma", g, 0.25)):
        assert model.params_[name] == pytest.approx(value, rel=tol), name
    assert model.population_mean == pytest.approx(p * g / (q - 1), rel=0.03)
    # E over customers of the conditional expectation = the mean of the true p / nu.
    cond = model.conditional_expected_value(sim)
    assert cond.mean() == pytest.approx((p / sim["nu"]).mean(), rel=0.05)
    assert model.conditional_expected_value(
        pd.DataFrame({"frequency": [0], "monetary_value": [np.nan]})
    )[0] == pytest.approx(model.population_mean)


def test_poor_fit_warns_with_advice():
    # Nobody ever repeats: the dropout process is not identified.
    X0 = pd.DataFrame({"frequency": [0] * 50 + [1], "recency": [0.0] * 50 + [5.0], "T": [100.0] * 51})
    with pytest.warns(PoorFitWarning, match="btyd_penalizer"):
        BetaGeoModel(penalizer=0.0).fit(X0)


def test_estimator_contract():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    model = BetaGeoModel(penalizer=0.01)
    assert clone(model).get_params() == {"penalizer": 0.01}
    with pytest.raises(NotFittedError):
        model.p_alive(X(TRIPLES))
    with pytest.raises(ValueError, match="0 <= recency <= T"):
        model.fit(X([(1, 10.0, 5.0)]))
    import pickle

    sim = simulate_bgnbd(500, 0.5, 20, 0.8, 2.5, 365, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PoorFitWarning)
        fitted_model = model.fit(sim)
    again = pickle.loads(pickle.dumps(fitted_model))
    assert again.params_ == fitted_model.params_


def test_bgnbd_expected_transactions_stay_finite_for_very_frequent_buyers():
    """x = 2000 over a year used to give 0 (0 · inf in the hypergeometric term)."""
    import numpy as np
    import pandas as pd

    from customer_value.modeling.btyd import BetaGeoModel

    m = BetaGeoModel()
    m.r_, m.alpha_, m.a_, m.b_ = 0.243, 30.9, 0.793, 2.426
    X = pd.DataFrame({"frequency": [2000.0, 10.0], "recency": [365.0, 300.0], "T": [365.0, 365.0]})
    v = m.expected_transactions(X, 365).to_numpy()
    # FHL eq. 10 in its original form, evaluated with mpmath at 60 digits (reference values).
    np.testing.assert_allclose(v, [1399.0734951273750, 5.1628738194118], rtol=1e-9)
