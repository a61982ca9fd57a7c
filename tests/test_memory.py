"""The evaluation memory budget (``--max-memory``): sizes, the probe, chunked forward and backward passes, and
rows equal to an unchunked evaluation of a 3D model."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from medrobust import models
from medrobust.cli import main
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.errors import ConfigError
from medrobust.evaluation import Results, RobustnessCheckWarning, ThreatSpec, evaluate
from medrobust.evaluation.memory import ChunkedModel, activation_bytes, parse_size, plan
from medrobust.tasks import ClassificationTask

SIDE = 12


def volumes(n: int = 12) -> ArrayDataset:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.uniform(0, 0.5, (n, 1, SIDE, SIDE, SIDE)).astype(np.float32)
    x[y == 1, :, 4:8, 4:8, 4:8] += 0.4
    return ArrayDataset(x, y, DatasetInfo("cubes", "binary", 1, (SIDE,) * 3, 2, ("a", "b"), "test"))


def model_3d() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create("small_cnn", in_channels=1, num_outputs=1, width=4, spatial_dims=3).eval()


@pytest.mark.parametrize(("text", "size"), [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29),
                                            ("64kb", 64 * 1024), ("1000", 1000), (" 3 T ", 3 * 2**40)])  # fmt: skip
def test_sizes_parse_in_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "2X", "-1G", "0", "1e9", "nan"])
def test_a_bad_size_is_a_one_line_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a size") as info:
        parse_size(text)
    assert "\n" not in str(info.value)


def test_the_probe_counts_activations_per_sample_and_chunks_fit_the_budget() -> None:
    model, x = model_3d(), volumes()[0][0][None]
    one, two, four = (activation_bytes(model, x.repeat(k, 1, 1, 1, 1)) for k in (1, 2, 4))
    assert four - one == 3 * (two - one) > 0  # activations grow with the samples; the weights are saved once
    roomy = plan(model, x, 8, 2**34)
    assert roomy.chunk == 8
    tight = plan(model, x, 8, roomy.fixed + 3 * roomy.per_sample)
    assert tight.chunk == 3 and tight.fixed + tight.chunk * tight.per_sample <= tight.budget
    with pytest.raises(ConfigError, match="too small: the weights and a batch of 8 inputs take") as info:
        plan(model, x, 8, roomy.fixed)
    assert "\n" not in str(info.value)


def test_a_chunked_model_keeps_one_chunk_of_activations_and_gives_the_same_gradients() -> None:
    model, x = model_3d(), torch.stack([volumes()[i][0] for i in range(8)])
    chunked = ChunkedModel(model, 2)
    assert activation_bytes(chunked, x) < activation_bytes(model, x) / 3  # the backward pass recomputes per chunk
    grads = []
    for net in (model, chunked):
        xx = x.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(net(xx).sum(), xx)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-8)
    with torch.no_grad():
        assert torch.equal(chunked(x[:2]), model(x[:2]))


def run(max_memory: int | None) -> Results:
    threats = [ThreatSpec.attack("pgd", norm="linf", eps=[0, 2 / 255, 8 / 255], steps=3),
               ThreatSpec.noise("gaussian", [0.05])]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessCheckWarning)
        return evaluate(model_3d(), volumes(), ClassificationTask(kind="binary", num_classes=2), threats,
                        batch_size=6, progress=False, probe_n=6, max_memory=max_memory)  # fmt: skip


def test_a_budgeted_3d_evaluation_gives_the_rows_of_an_unbudgeted_one() -> None:
    full = run(None)
    roomy = plan(model_3d(), volumes()[0][0][None], 6, 2**34)
    budgeted = run(roomy.fixed + 2 * roomy.per_sample)
    assert budgeted.config["memory"]["chunk"] == 2 and "memory" not in full.config
    assert len(budgeted.rows) == len(full.rows)
    for a, b in zip(full.rows, budgeted.rows):
        assert {k: v for k, v in a.items() if k != "value"} == {k: v for k, v in b.items() if k != "value"}
        assert math.isclose(a["value"], b["value"], rel_tol=1e-6, abs_tol=1e-9), (a, b)
    assert [c["passed"] for c in full.checks] == [c["passed"] for c in budgeted.checks]


def test_the_cli_refuses_a_bad_budget_in_one_line(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "no-such-run", "--max-memory", "lots"]) == 2
    assert (
        capsys.readouterr().err
        == "medrobust evaluate: error: --max-memory 'lots' is not a size; write e.g. 2G, 512M or 1.5GiB\n"
    )
