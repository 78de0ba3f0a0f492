"""Personas: customers clustered on their profiles and named from the cluster profiles.

The pipeline log-transforms money and count features (they are heavy-tailed), imputes medians and
scales robustly, then clusters with KMeans (or a Gaussian mixture). The number of personas is chosen
over ``[k_min, k_max]`` by ``silhouette + stability``: silhouette on a sample, and stability as the
mean adjusted Rand index between the full fit and refits on bootstrap samples; a ``k`` whose smallest
persona is below ``min_share`` is not eligible.

Names come from the cluster profiles (medians relative to the whole base) by the rules in
:func:`name_personas`, never typed by hand, and are unique.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, RobustScaler
from sklearn.utils.validation import check_is_fitted

__all__ = ["PersonaModel", "name_personas", "SKEWED_FEATURES"]

#: Features that are log1p-transformed before scaling (money, counts, durations).
SKEWED_FEATURES = frozenset(
    {
        "frequency",
        "frequency_per_year",
        "revenue_per_year",
        "orders_per_year",
        "monetary_mean",
        "monetary_total",
        "monetary_repeat_mean",
        "order_count",
        "purchase_days",
        "recency_days",
        "days_since_last_purchase",
        "tenure_days",
        "distinct_categories",
        "distinct_products",
        "gross_margin_total",
        "items_per_order",
        "gap_mean_days",
        "tickets_total",
        "referrals_made",
        "btyd_expected_spend",
        "bgnbd_expected_transactions",
        "gg_expected_order_value",
    }
)


#: Features summarised by their mean (not median) in profiles: mostly zero, sometimes large.
SHARE_FEATURES = frozenset({"discount_share", "return_rate", "weekend_share"})


def _log1p_nonneg(x):
    return np.log1p(np.clip(x, 0, None))


class Winsorizer(TransformerMixin, BaseEstimator):
    """Clip each column to its [lower, upper] quantiles learnt in ``fit``.

    A handful of wholesalers or customers whose returns exceed their purchases must not get a
    persona of their own: they would fail the minimum size and pull every centroid.
    """

    def __init__(self, lower: float = 0.01, upper: float = 0.99):
        self.lower = lower
        self.upper = upper

    def fit(self, X, y=None):
        """Learn the clipping bounds (NaN ignored)."""
        arr = np.asarray(X, dtype=float)
        self.low_ = np.nanquantile(arr, self.lower, axis=0)
        self.high_ = np.nanquantile(arr, self.upper, axis=0)
        self.n_features_in_ = arr.shape[1]
        return self

    def transform(self, X):
        """Clip to the learnt bounds (NaN kept)."""
        check_is_fitted(self, "low_")
        return np.clip(np.asarray(X, dtype=float), self.low_, self.high_)

    def get_feature_names_out(self, input_features=None):
        """Names are unchanged."""
        return np.asarray(input_features, dtype=object)


def _preprocessor(features: list[str]) -> ColumnTransformer:
    skewed = [f for f in features if f in SKEWED_FEATURES]
    plain = [f for f in features if f not in SKEWED_FEATURES]
    steps = []
    # Scaling on the 10-90 % range: many features are zero for most customers, so their
    # interquartile range is often 0.
    if skewed:
        steps.append(
            (
                "log",
                Pipeline(
                    [
                        ("winsorize", Winsorizer()),
                        ("log1p", FunctionTransformer(_log1p_nonneg, feature_names_out="one-to-one")),
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", RobustScaler(quantile_range=(10, 90))),
                    ]
                ),
                skewed,
            )
        )
    if plain:
        steps.append(
            (
                "plain",
                Pipeline(
                    [
                        ("winsorize", Winsorizer()),
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", RobustScaler(quantile_range=(10, 90))),
                    ]
                ),
                plain,
            )
        )
    return ColumnTransformer(steps, remainder="drop")


class PersonaModel(BaseEstimator, ClusterMixin):
    """Cluster customers into personas and name them.

    Parameters
    ----------
    features : list of str
        Feature columns to cluster on.
    k_min, k_max : int
        Range of persona counts to consider.
    algorithm : {"kmeans", "gmm"}
    silhouette_sample : int
        Rows used for silhouette and stability.
    stability_bootstraps : int
        Bootstrap refits per k for the stability ARI.
    min_share : float
        Smallest allowed persona share.
    random_state : int

    Attributes
    ----------
    k_ : int
        The chosen number of personas.
    selection_ : DataFrame
        Per k: silhouette, stability, smallest share, eligible, score.
    names_ : list of str
        Persona name per cluster label.
    profile_ : DataFrame
        Median feature values per persona (the basis of the names).
    """

    def __init__(
        self,
        features=None,
        k_min=3,
        k_max=8,
        algorithm="kmeans",
        silhouette_sample=4000,
        stability_bootstraps=4,
        min_share=0.03,
        random_state=0,
    ):
        self.features = features
        self.k_min = k_min
        self.k_max = k_max
        self.algorithm = algorithm
        self.silhouette_sample = silhouette_sample
        self.stability_bootstraps = stability_bootstraps
        self.min_share = min_share
        self.random_state = random_state

    def _clusterer(self, k: int, seed: int):
        if self.algorithm == "gmm":
            return GaussianMixture(n_components=k, covariance_type="full", random_state=seed, n_init=2)
        return KMeans(n_clusters=k, n_init=4, random_state=seed)

    def fit(self, X: pd.DataFrame, y=None):
        """Choose k, fit the clusterer, and name the personas."""
        features = list(self.features or X.columns)
        missing = [f for f in features if f not in X.columns]
        if missing:
            raise ValueError(f"persona features not in the table: {missing}")
        self.features_ = features
        self.preprocessor_ = _preprocessor(features).fit(X[features])
        Z = self.preprocessor_.transform(X[features])
        rng = np.random.default_rng(self.random_state)
        n = len(Z)
        sample = rng.choice(n, size=min(self.silhouette_sample, n), replace=False)
        rows, fitted = [], {}
        for k in range(self.k_min, min(self.k_max, n - 1) + 1):
            model = self._clusterer(k, self.random_state).fit(Z)
            labels = model.predict(Z)
            shares = np.bincount(labels, minlength=k) / n
            sil = silhouette_score(Z[sample], labels[sample]) if len(set(labels[sample])) > 1 else -1
            aris = []
            for b in range(self.stability_bootstraps):
                boot = rng.choice(n, size=n, replace=True)
                refit = self._clusterer(k, self.random_state + 1 + b).fit(Z[boot])
                aris.append(adjusted_rand_score(labels[sample], refit.predict(Z[sample])))
            eligible = shares.min() >= self.min_share
            rows.append(
                {
                    "k": k,
                    "silhouette": float(sil),
                    "stability_ari": float(np.mean(aris)),
                    "min_share": float(shares.min()),
                    "eligible": bool(eligible),
                }
            )
            fitted[k] = model
        sel = pd.DataFrame(rows)
        sel["score"] = sel["silhouette"] + sel["stability_ari"]
        pool = sel[sel["eligible"]] if sel["eligible"].any() else sel
        self.k_ = int(pool.sort_values(["score", "k"], ascending=[False, True]).iloc[0]["k"])
        self.selection_ = sel
        self.clusterer_ = fitted[self.k_]
        labels = self.clusterer_.predict(Z)
        grouped = X[features].assign(_label=labels).groupby("_label")
        # Shares are mostly zero for most customers: their medians say nothing, their means do.
        shares = [f for f in features if f in SHARE_FEATURES]
        self.profile_ = grouped.median().reindex(range(self.k_))
        self.profile_[shares] = grouped[shares].mean().reindex(range(self.k_))
        self.profile_["share"] = np.bincount(labels, minlength=self.k_) / n
        self.overall_ = X[features].median()
        self.overall_[shares] = X[shares].mean()
        self.names_ = name_personas(self.profile_, self.overall_)
        self.profile_.insert(0, "persona", self.names_)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Cluster label per row."""
        check_is_fitted(self, "clusterer_")
        return self.clusterer_.predict(self.preprocessor_.transform(X[self.features_]))

    def predict_names(self, X: pd.DataFrame) -> pd.Series:
        """Persona name per row (indexed like ``X``)."""
        return pd.Series(
            np.asarray(self.names_, dtype=object)[self.predict(X)], index=X.index, name="persona"
        )

    def silhouette(self, X: pd.DataFrame, sample: int | None = None, seed: int = 0) -> float:
        """Silhouette of this model's clustering of ``X`` in its own feature space."""
        Z = self.preprocessor_.transform(X[self.features_])
        labels = self.clusterer_.predict(Z)
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(Z), size=min(sample or self.silhouette_sample, len(Z)), replace=False)
        return float(silhouette_score(Z[idx], labels[idx])) if len(set(labels[idx])) > 1 else -1.0


# Naming ---------------------------------------------------------------------------------------


def _ratio(profile: pd.DataFrame, overall: pd.Series, col: str) -> pd.Series:
    if col not in profile.columns:
        return pd.Series(1.0, index=profile.index)
    base = overall.get(col, np.nan)
    if not np.isfinite(base) or base == 0:
        base = max(float(profile[col].abs().mean()), 1e-9)
    return profile[col] / base


def name_personas(profile: pd.DataFrame, overall: pd.Series) -> list[str]:
    """Readable, unique names from cluster profiles relative to the whole base.

    ``profile`` holds per-cluster medians (shares: means), ``overall`` the base's. Each archetype has
    a strength per cluster; a strength of at least 1 means the rule is met:

    ============================  ==========================================================
    name                          rule (ratios to the base)
    ============================  ==========================================================
    New                           tenure ≤ 0.5
    Champions                     revenue/year ≥ 2, frequency ≥ 1.5, days since last ≤ 1
    Loyal regulars                frequency ≥ 1 and days since last purchase ≤ 1
    Big-ticket occasionals        order value ≥ 1.5 and frequency ≤ 1
    Bargain hunters               discount share ≥ 1.5
    Serial returners              return rate ≥ 2
    At risk                       revenue/year ≥ 1 and days since last purchase ≥ 1.5
    Hibernating                   days since last purchase ≥ 1.5
    ============================  ==========================================================

    (strength = the smallest of a rule's ratios to its threshold). Rules are taken in the order of
    the table; each name goes to the not yet named cluster that meets it most strongly. Clusters
    left over are "Occasional buyers", then "Occasional buyers, <strongest trait>".
    """
    r = {
        col: _ratio(profile, overall, col)
        for col in (
            "revenue_per_year",
            "frequency_per_year",
            "days_since_last_purchase",
            "tenure_days",
            "monetary_mean",
            "discount_share",
            "return_rate",
        )
    }
    value, freq, lapsed = r["revenue_per_year"], r["frequency_per_year"], r["days_since_last_purchase"]
    tiny = 1e-9
    strength = pd.DataFrame(
        {
            "New": 0.5 / r["tenure_days"].clip(lower=tiny),
            "Champions": pd.concat([value / 2, freq / 1.5, 1 / lapsed.clip(lower=tiny)], axis=1).min(
                axis=1
            ),
            "Loyal regulars": pd.concat([freq, 1 / lapsed.clip(lower=tiny)], axis=1).min(axis=1),
            "Big-ticket occasionals": pd.concat(
                [r["monetary_mean"] / 1.5, 1 / freq.clip(lower=tiny)], axis=1
            ).min(axis=1),
            "Bargain hunters": r["discount_share"] / 1.5,
            "Serial returners": r["return_rate"] / 2,
            "At risk": pd.concat([value, lapsed / 1.5], axis=1).min(axis=1),
            "Hibernating": lapsed / 1.5,
        },
        index=profile.index,
    )
    names: dict = {}
    # In rule order (most specific first), the unnamed cluster that meets the rule most strongly
    # takes the name.
    for name in strength.columns:
        cand = strength[name].drop(index=list(names), errors="ignore")
        cand = cand[cand >= 1]
        if not cand.empty:
            names[cand.idxmax()] = name
    traits = pd.DataFrame(
        {
            "high spend": value,
            "frequent": freq,
            "big baskets": r["monetary_mean"],
            "discount-driven": r["discount_share"],
            "returns a lot": r["return_rate"],
            "lapsed": lapsed,
        }
    )
    for label in profile.index:
        if label in names:
            continue
        name = "Occasional buyers"
        if name in names.values():
            name = f"Occasional buyers, {traits.loc[label].idxmax()}"
            i = 2
            while name in names.values():
                name, i = f"Occasional buyers, {traits.loc[label].idxmax()} {i}", i + 1
        names[label] = name
    return [names[label] for label in profile.index]
