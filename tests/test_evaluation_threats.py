"""Threat specs and the parsing of their command-line spellings."""

from __future__ import annotations

import pytest

from medrobust.errors import ConfigError
from medrobust.evaluation import ThreatSpec, parse_levels, parse_loss, parse_noise, parse_number


def test_parse_numbers_and_fractions() -> None:
    assert parse_number("8/255") == pytest.approx(8 / 255)
    assert parse_number(" 1e-3 ") == pytest.approx(1e-3)
    assert parse_levels("8/255,0,1/255,1/255") == pytest.approx((0.0, 1 / 255, 8 / 255))


@pytest.mark.parametrize("text", ["abc", "1/0", "-0.1", "", " , ", "nan", "inf"])
def test_bad_levels_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_levels(text)
    assert "\n" not in str(err.value)


def test_parse_noise() -> None:
    spec = parse_noise("gaussian:0.01,0.1")
    assert (spec.kind, spec.name, spec.levels, spec.norm) == ("noise", "gaussian", (0.01, 0.1), None)
    for bad in ("gaussian", ":0.1", "gaussian:"):
        with pytest.raises(ConfigError):
            parse_noise(bad)


def test_parse_loss() -> None:
    assert parse_loss("ce") == "ce"
    assert parse_loss("ce, margin") == ("ce", "margin")
    with pytest.raises(ConfigError, match="ce, margin or ce,margin"):
        parse_loss("cw")


def test_threat_spec_validation_and_dict() -> None:
    spec = ThreatSpec.attack("pgd", norm="l2", eps=[0, 0.5], steps=7, loss=("ce", "margin"))
    assert spec.threat == "pgd"
    assert spec.to_dict() == {
        "kind": "attack",
        "name": "pgd",
        "levels": [0.0, 0.5],
        "norm": "l2",
        "options": {"steps": 7, "loss": ["ce", "margin"]},
        "label": "",
    }
    assert ThreatSpec.attack("pgd", norm="linf", eps=[1], label="pgd-margin").threat == "pgd-margin"
    with pytest.raises(ConfigError, match="norm"):
        ThreatSpec.attack("pgd", norm="l1", eps=[1])
    with pytest.raises(ConfigError, match="increasing"):
        ThreatSpec.attack("pgd", norm="linf", eps=[2, 1])
    with pytest.raises(ConfigError, match="no levels"):
        ThreatSpec.noise("gaussian", [])
