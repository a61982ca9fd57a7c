"""The GPU settings of the training loop, checked on the CPU: the attack's precision under autocast,
channels-last layout, ``torch.compile``, the ``train`` flags, and the GPU benchmark's smoke run."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import blobs
from medrobust import models
from medrobust.cli import build_parser
from medrobust.commands.train import resolve_config
from medrobust.errors import ConfigError
from medrobust.methods import METHODS, Batch, StepContext
from medrobust.training.loop import BatchLoader, fit, memory_format

ROOT = Path(__file__).resolve().parent.parent


def dtypes_seen(model: nn.Module) -> list[torch.dtype]:
    """Records the output dtype of every forward of ``model`` (in call order)."""
    seen: list[torch.dtype] = []
    model.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("amp_attack", [False, True])
def test_attacks_run_in_fp32_inside_the_updates_autocast_unless_asked(amp_attack: bool) -> None:
    data = blobs(8)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4, norm="none")
    seen = dtypes_seen(model)
    method = METHODS.create("pgd_at", eps=0.1, steps=2)
    method.setup(model, len(data), data.task())
    bf16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)  # CPU autocast stands in for CUDA's
    ctx = StepContext(data.task(), 1, 0, torch.Generator().manual_seed(0), torch.device("cpu"), bf16, 8, 0, amp_attack)
    with ctx.autocast():
        out = method.training_step(model, Batch(*data.batch(torch.arange(8))), ctx)
    attack, update = seen[:-1], seen[-1]
    assert len(attack) >= 2 and update == torch.bfloat16 and out.loss.dtype == torch.float32
    assert set(attack) == {torch.bfloat16 if amp_attack else torch.float32}


def test_ima_attacks_in_fp32_even_when_attacks_may_use_autocast() -> None:
    data = blobs(8)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4, norm="none")
    seen = dtypes_seen(model)
    ima = METHODS.create("ima", delta=0.1, e_max=0.5, steps=2)
    ima.setup(model, len(data), data.task())
    bf16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)
    ctx = StepContext(data.task(), 1, 0, torch.Generator().manual_seed(0), torch.device("cpu"), bf16, 8, 0, True)
    with ctx.autocast():
        ima.training_step(model, Batch(*data.batch(torch.arange(8))), ctx)
    assert seen[0] == seen[-1] == torch.bfloat16 and set(seen[1:-1]) == {torch.float32}  # clean, attack…, update


def test_channels_last_batches_and_model_train_like_the_default() -> None:
    data = blobs(32)
    loader = BatchLoader(data, torch.device("cpu"), memory_format(2))
    assert loader.batch(torch.arange(4)).x.is_contiguous(memory_format=torch.channels_last)
    weights = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
        sgd = torch.optim.SGD(model.parameters(), lr=0.1)
        fit(model, METHODS.create("standard"), data, None, task=data.task(), optimizer=sgd, epochs=1, batch_size=8,
            channels_last=channels_last, progress=False)  # fmt: skip
        weights.append(model.state_dict())
    assert weights[1]["net.features.0.weight"].is_contiguous(memory_format=torch.channels_last)
    assert all(torch.allclose(weights[0][k].float(), weights[1][k].float(), atol=1e-5) for k in weights[0])
    with pytest.raises(ConfigError, match="2-D or 3-D"):
        memory_format(1)


def test_compiled_training_updates_the_models_own_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dynamo traces the step (the "eager" backend skips code generation, which takes minutes on this CPU)."""
    compiled = []
    real = torch.compile

    def eager_compile(model: nn.Module) -> nn.Module:
        compiled.append(model)
        return real(model, backend="eager")  # type: ignore[return-value]

    data = blobs(32)
    weights = []
    for compile_model in (False, True):
        monkeypatch.setattr(torch, "compile", eager_compile)
        torch.manual_seed(0)
        model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        sgd = torch.optim.SGD(model.parameters(), lr=0.1)
        fit(model, METHODS.create("standard"), data, None, task=data.task(), optimizer=sgd, epochs=1, batch_size=16,
            compile_model=compile_model, progress=False)  # fmt: skip
        weights.append(model.state_dict())
        assert not all(torch.equal(initial[k], v) for k, v in weights[-1].items())  # the step reached the model
    assert len(compiled) == 1 and weights[0].keys() == weights[1].keys()  # no "_orig_mod." prefix in checkpoints
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-6) for k in weights[0])


def test_train_flags_set_the_gpu_keys() -> None:
    base = ["train", "--out", "x"]
    args = build_parser().parse_args([*base, "--no-amp", "--amp-attack", "--channels-last", "--compile"])
    t = resolve_config(args).train
    assert (t.amp, t.amp_attack, t.channels_last, t.compile) == (False, True, True, True)
    t = resolve_config(build_parser().parse_args(base)).train
    assert (t.amp, t.amp_attack, t.channels_last, t.compile) == (True, False, False, False)


METHOD_STEPS = ["standard", "SAT-10", "SAT-20, train-mode attack", "IMA-20", "IMA-20, subset search",
                "IMA-20, Illinois search", "IMA-20, Illinois, subset"]  # fmt: skip


def test_gpu_benchmark_smoke_runs_on_the_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--device", "cpu", "--quick", "--sizes", "16",
           "--json", str(tmp_path / "gpu.json")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| size |" in proc.stdout and "IMA-20" in proc.stdout
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["step"] for r in result["rows"]] == ["bare forward + backward", *METHOD_STEPS]
    assert all(r["images_per_s"] > 0 for r in result["rows"]) and result["device"] == "cpu"
