import pytest

from conftest import REPO
from customer_value.config import load_config
from customer_value.errors import ConfigError

MINIMAL = """
data:
  transactions:
    path: tx.csv
"""


def test_default_configs_load():
    cfg = load_config(REPO / "configs" / "default.yaml")
    assert cfg.simulation is not None and cfg.simulation.n_customers == 20000
    assert cfg.data.transactions.path == (REPO / "data" / "raw" / "transactions.parquet").resolve()
    retail = load_config(REPO / "configs" / "online_retail.yaml")
    assert retail.simulation is None
    assert retail.data.transactions.derive == {"amount": "Quantity * UnitPrice"}
    assert retail.data.transactions.path.name == "online_retail_2010-12_2011-12.csv.gz"


def test_relative_paths_resolve_against_the_config_folder(make_config, tmp_path):
    cfg = load_config(make_config(MINIMAL))
    assert cfg.data.transactions.path == tmp_path / "tx.csv"


def test_override_types_and_values(make_config):
    path = make_config(MINIMAL + "simulation: {n_customers: 10}\n")
    cfg = load_config(
        path,
        [
            "simulation.n_customers=500",
            "project.seed=7",
            "data.policies.exclude_products=[POST, 'gift_*']",
        ],
    )
    assert cfg.simulation.n_customers == 500
    assert cfg.project.seed == 7
    assert cfg.data.policies.exclude_products == ["POST", "gift_*"]


def test_override_path_resolves_against_cwd(make_config, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    cfg = load_config(make_config(MINIMAL), ["data.transactions.path=mine.csv"])
    assert cfg.data.transactions.path == other / "mine.csv"


def test_unknown_key_names_it_and_lists_valid_keys(make_config):
    path = make_config(MINIMAL + "simulation:\n  n_customer: 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "unknown key 'simulation.n_customer'" in text
    assert "did you mean 'simulation.n_customers'" in text
    assert "valid keys here:" in text and "future_days" in text and "start_date" in text
    assert str(path) in text


def test_unknown_override_key_is_an_error(make_config):
    with pytest.raises(ConfigError, match="unknown key 'project.sed'.*did you mean 'project.seed'"):
        load_config(make_config(MINIMAL), ["project.sed=3"])


def test_unknown_top_level_section(make_config):
    with pytest.raises(
        ConfigError,
        match="unknown key 'modle'.*valid keys here: churn, clv, data, engine, explain, features, monitoring, personas, predict, project",
    ):
        load_config(make_config(MINIMAL + "modle: {}\n"))


def test_wrong_type_and_impossible_values(make_config):
    with pytest.raises(ConfigError, match="simulation.n_customers"):
        load_config(make_config(MINIMAL), ["simulation.n_customers=-5"])
    with pytest.raises(ConfigError, match="end_date .* must be after start_date"):
        load_config(
            make_config(MINIMAL), ["simulation.start_date=2024-01-01", "simulation.end_date=2023-01-01"]
        )
    with pytest.raises(ConfigError, match="data.policies.duplicates"):
        load_config(make_config(MINIMAL), ["data.policies.duplicates=sometimes"])


def test_missing_required_key(make_config):
    with pytest.raises(ConfigError, match="missing required key 'data'"):
        load_config(make_config("project: {seed: 1}\n"))


def test_bad_override_syntax(make_config):
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(make_config(MINIMAL), ["simulation.n_customers"])


def test_missing_file_and_bad_yaml(tmp_path, make_config):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(make_config("data: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(make_config("- a\n- b\n"))


def test_yaml_is_loaded_safely(make_config, tmp_path):
    marker = tmp_path / "pwned"
    body = MINIMAL + f"project: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(make_config(body))
    assert not marker.exists()


def test_headerless_source_needs_names(make_config):
    body = "data:\n  transactions:\n    path: tx.txt\n    format: whitespace\n    header: false\n"
    with pytest.raises(ConfigError, match="needs 'names'"):
        load_config(make_config(body))


BOMB = "".join(
    f"{k}: &{k} [" + ",".join([f"*{p}"] * 10 if p else ['"x"'] * 10) + "]\n"
    for p, k in zip(["", "a", "b", "c", "d", "e", "f"], "abcdefg", strict=True)
)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (BOMB + MINIMAL, "aliases expand to more than 100,000 values"),
        ("a: &a [*a]\n" + MINIMAL, "an alias refers to the node that contains it"),
        (
            MINIMAL + "snapshots: {n_snapshots: 3}\ndata:\n  transactions: {path: b.csv}\n",
            "duplicate key 'data'",
        ),
        (
            "data:\n  transactions:\n    path: a.csv\n    path: b.csv\n",
            "duplicate key 'path' (first at line 3)",
        ),
        (
            MINIMAL.replace("path: tx.csv", "path: tx.csv\n    derive: {amount: '1/0'}"),
            "divides by the constant 0",
        ),
    ],
)
def test_yaml_is_refused_before_objects_are_built(make_config, text, says):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(make_config(text))
    assert says in str(err.value)


def test_aliases_and_merge_keys_within_bounds_still_work(make_config):
    text = (
        MINIMAL
        + "churn: {tuning: &tune {n_trials: 2}}\nclv:\n  tuning:\n    <<: *tune\n    n_trials: 3\n"
    )
    cfg = load_config(make_config(text), [])
    assert cfg.churn.tuning.n_trials == 2 and cfg.clv.tuning.n_trials == 3


def test_config_path_that_is_a_folder_or_too_big(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_config(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 1_100_000 + "\n" + MINIMAL)
    with pytest.raises(ConfigError, match="a config is at most"):
        load_config(big)


@pytest.mark.parametrize(
    "override",
    [
        "simulation.n_customers=1000000000",
        "simulation.start_date=1900-01-01",
        "features.horizon_days=100000",
        "features.trend_windows_days=[1, 100000]",
        "snapshots.n_snapshots=100000",
        "churn.tuning.n_trials=10000000",
        "personas.k_max=100000",
    ],
)
def test_sizes_a_typo_could_blow_up_are_bounded(make_config, override):
    """A one-character typo must not ask for a day of work or all the memory: refused at load."""
    base = MINIMAL + "simulation: {n_customers: 10}\n"
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        load_config(make_config(base), [override])
