"""Property-based tests (Hypothesis) of what a user types: YAML experiment files, ``--set KEY=VALUE`` overrides,
ε and noise lists, attack losses, and whole ``train`` / ``evaluate`` command lines. Any of them either parses or
gives a one-line :class:`ConfigError` (the CLI: one line and exit status 2; argparse's own usage errors: exit 2),
never another exception or a traceback.

The command lines name a dataset or run that does not exist, so every option is parsed and checked but nothing
trains, evaluates or writes. The example budget is fixed and the search derandomised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import typing
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from medrobust.cli import main
from medrobust.config import ExperimentConfig, dump_config, load_config
from medrobust.errors import ConfigError, MedrobustError
from medrobust.evaluation import parse_levels, parse_loss, parse_noise
from test_properties import BUDGET

SECTIONS = {s: [f.name for f in dataclasses.fields(t)] for s, t in typing.get_type_hints(ExperimentConfig).items()}
KEYS = [f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3), st.sampled_from(["adam", "sgd", "cosine", "phantom-ct", "auto", "none"]),
)  # fmt: skip
NUMBERISH = st.text(alphabet="0123456789./,e-+ :_abgimnosux", max_size=16)


def one_line_config_error(call: Any) -> Any:
    """``call()``'s value, or None after a one-line, non-empty :class:`ConfigError`."""
    try:
        return call()
    except ConfigError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None


def experiment_dicts() -> st.SearchStrategy[Any]:
    """Mostly well-shaped experiment mappings (known sections and keys, one misspelt key per section) with arbitrary
    values; or foreign mappings; or a scalar."""
    value = SCALARS | st.dictionaries(st.text(max_size=4), SCALARS, max_size=2)
    sections = {
        s: st.fixed_dictionaries({}, optional={k: value for k in [*keys, "nmae"]}) for s, keys in SECTIONS.items()
    }
    known = st.fixed_dictionaries({}, optional={s: section | SCALARS for s, section in sections.items()})
    return st.one_of(known, st.dictionaries(st.text(max_size=6), SCALARS, max_size=3), SCALARS)


@BUDGET
@given(doc=experiment_dicts())
def test_any_experiment_mapping_builds_or_gives_one_line(tmp_path_factory: pytest.TempPathFactory, doc: Any) -> None:
    path = tmp_path_factory.mktemp("cfg") / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = one_line_config_error(lambda: load_config(path))
    if config is not None:  # what loads, saves and loads back the same (compared as text: NaN != NaN)
        path.write_text(dump_config(config))
        assert dump_config(load_config(path)) == dump_config(config)


@BUDGET
@given(text=st.text(max_size=80))
def test_any_yaml_text_builds_or_gives_one_line(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "experiment.yaml"
    path.write_text(text, encoding="utf-8")
    one_line_config_error(lambda: load_config(path))


@BUDGET
@given(
    key=st.one_of(
        st.sampled_from(KEYS), st.sampled_from([*SECTIONS, "data.options.size", "a.b.c"]), st.text(max_size=8)
    ),
    value=st.one_of(st.text(max_size=12), SCALARS.map(lambda v: yaml.safe_dump(v).strip())),
    sep=st.sampled_from(["=", "", "=="]),
)
def test_any_set_override_applies_or_gives_one_line(key: str, value: str, sep: str) -> None:
    config = one_line_config_error(lambda: ExperimentConfig().with_overrides([f"{key}{sep}{value}"]))
    if config is not None:
        assert dump_config(ExperimentConfig.from_dict(config.to_dict())) == dump_config(config)


@BUDGET
@given(text=st.one_of(NUMBERISH, st.text(max_size=12)))
@example(text="0,1e999")  # beyond float's range
@example(text="nan,inf")
def test_any_level_list_parses_to_finite_sorted_levels_or_gives_one_line(text: str) -> None:
    levels = one_line_config_error(lambda: parse_levels(text))
    if levels is not None:
        assert levels and list(levels) == sorted(set(levels))
        assert all(math.isfinite(v) and v >= 0 for v in levels)
    one_line_config_error(lambda: parse_noise(text))
    one_line_config_error(lambda: parse_loss(text))


def values() -> st.SearchStrategy[str]:
    """Option values: plausible ones and arbitrary text (never one that argparse would read as -h/--help)."""
    plausible = st.sampled_from(["0", "1", "-1", "2", "0.5", "1e-3", "8/255", "nan", "inf", "pgd", "fgsm,pgd",
                                 "none", "linf", "l2", "cpu", "cuda", "ce,margin", "gaussian:0.1", "x"])  # fmt: skip
    text = st.text(max_size=10).filter(lambda s: not s.startswith("-") or s[1:2].isdigit())
    return st.one_of(plausible, NUMBERISH, text)


TRAIN_OPTIONS = ["--epochs", "--seed", "--lr", "--optimizer", "--batch-size", "--device", "--threads", "--model",
                 "--method", "--set", "--data-root", "--init"]  # fmt: skip
TRAIN_FLAGS = ["--resume", "--force", "--skip-bad", "--no-progress"]
EVALUATE_OPTIONS = ["--attack", "--norm", "--eps", "--steps", "--queries", "--aa-version", "--rel-step", "--loss",
                    "--max-memory", "--restarts", "--noise", "--split", "--n", "--seed", "--batch-size", "--device",
                    "--threads"]  # fmt: skip


def argvs(options: list[str], flags: list[str]) -> st.SearchStrategy[list[str]]:
    pair = st.tuples(st.sampled_from(options), values()).map(list)
    flag = st.sampled_from(flags or ["--no-progress"]).map(lambda f: [f])
    return st.lists(st.one_of(pair, pair, flag), max_size=6).map(lambda parts: [a for p in parts for a in p])


def _cli(argv: list[str]) -> None:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            status = main(argv)
    except SystemExit as e:  # argparse: usage line(s), then "medrobust ...: error: ..."
        err = stderr.getvalue()
        assert e.code == 2 and err.strip().splitlines()[-1].startswith("medrobust") and "error:" in err, err
        return
    err = stderr.getvalue()
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"medrobust {argv[0]}: error: "), err


@BUDGET
@given(options=argvs(TRAIN_OPTIONS, TRAIN_FLAGS))
def test_any_train_command_line_runs_or_gives_one_line(
    tmp_path_factory: pytest.TempPathFactory, options: list[str]
) -> None:
    out = tmp_path_factory.mktemp("train") / "run"
    _cli(["train", "--out", str(out), *options, "--dataset", "no-such-dataset"])
    assert not out.exists()  # nothing written: the dataset is unknown


@BUDGET
@given(options=argvs(EVALUATE_OPTIONS, []))
def test_any_evaluate_command_line_runs_or_gives_one_line(
    tmp_path_factory: pytest.TempPathFactory, options: list[str]
) -> None:
    missing = tmp_path_factory.mktemp("evaluate") / "no-such-run"
    _cli(["evaluate", str(missing), *options])
    assert not missing.exists()


def test_the_cli_prints_one_line_for_any_user_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even an error whose message spans lines (e.g. from a library) is printed as one line."""
    import medrobust.commands.list as listing

    def fail(args: object) -> int:
        raise MedrobustError("first line\nsecond line")

    monkeypatch.setattr(listing, "run", fail)
    assert main(["list", "datasets"]) == 2
    assert capsys.readouterr().err == "medrobust list: error: first line second line\n"
