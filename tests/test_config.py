import pytest

from medrobust.config import ExperimentConfig, dump_config, load_config
from medrobust.errors import ConfigError


def test_overrides_and_yaml_round_trip(tmp_path) -> None:
    c = ExperimentConfig().with_overrides(
        ["optim.lr=0.01", "data.options.size=32", "train.epochs=3", "optim.milestones=[2,4]"]
    )
    assert (
        c.optim.lr == 0.01 and c.data.options == {"size": 32} and c.train.epochs == 3 and c.optim.milestones == [2, 4]
    )
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(c))
    assert load_config(p) == c


def test_int_given_for_float_is_accepted() -> None:
    assert ExperimentConfig().with_overrides(["optim.lr=1"]).optim.lr == 1.0


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("optm.lr=1", "did you mean 'optim'"),
        ("optim.lrr=1", "did you mean 'lr'"),
        ("train.epochs=abc", "must be int"),
        ("train.amp=3", "must be bool"),
        ("optim.lr", "key=value"),
        ("optim.lr.x=1", "is a value"),
    ],
)
def test_bad_overrides(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig().with_overrides([item])


def test_bad_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)
