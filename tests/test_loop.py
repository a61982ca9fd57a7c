import json
from pathlib import Path

import pytest
import torch

from conftest import blobs
from medrobust import models
from medrobust.config import OptimConfig
from medrobust.errors import ConfigError, DataError
from medrobust.methods import METHODS, Batch, StepContext, StepOutput, TrainingMethod
from medrobust.training import checkpoint as ckpt
from medrobust.training.loop import TrainingDiverged, fit
from medrobust.training.optim import build_optimizer, build_scheduler


def setup(schedule: str = "multistep", epochs: int = 4):
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
    cfg = OptimConfig(name="sgd", lr=0.05, schedule=schedule, milestones=[2], gamma=0.5)
    opt = build_optimizer(model.parameters(), cfg)
    return model, opt, build_scheduler(opt, cfg, epochs)


def run(tmp: Path | None, epochs: int, resume: bool = False, **kw):
    model, opt, sched = setup()
    train, val = blobs(64, seed=0), blobs(32, seed=1, split="val")
    hist = fit(
        model,
        METHODS.create("standard"),
        train,
        val,
        task=train.task(),
        optimizer=opt,
        scheduler=sched,
        epochs=epochs,
        batch_size=16,
        run_dir=tmp,
        resume=resume,
        seed=3,
        progress=False,
        **kw,
    )
    return model, hist


def test_fit_learns_and_writes_history(tmp_path: Path) -> None:
    _, hist = run(tmp_path, 4)
    assert len(hist.records) == 4
    assert hist.last()["val_accuracy"] >= 0.9
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    assert hist.records[0]["lr"] == 0.05 and hist.records[2]["lr"] == 0.025  # multistep at epoch 2


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    full, _ = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)  # "interrupted" after epoch 2
    resumed, hist = run(tmp_path / "b", 4, resume=True)
    assert [r["epoch"] for r in hist.records] == [1, 2, 3, 4]
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_checkpoint_needs_resume(tmp_path: Path) -> None:
    run(tmp_path, 1)
    with pytest.raises(ConfigError, match="--resume"):
        run(tmp_path, 2)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    run(tmp_path, 1)
    p = tmp_path / ckpt.CHECKPOINT
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or truncated"):
        run(tmp_path, 2, resume=True)


def test_atomic_save_keeps_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.pt"
    ckpt.save_checkpoint(p, {"model": {"w": torch.ones(2)}})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", boom)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(p, {"model": {"w": torch.zeros(2)}})
    assert torch.equal(ckpt.load_checkpoint(p)["model"]["w"], torch.ones(2))
    assert [f.name for f in tmp_path.iterdir()] == ["c.pt"]


class Exploding(TrainingMethod):
    def training_step(self, model: torch.nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        return StepOutput(loss=model(batch.x).sum() * float("nan"))


def test_nan_loss_raises_clear_error() -> None:
    model, opt, _ = setup()
    train = blobs(32)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        fit(model, Exploding(), train, None, task=train.task(), optimizer=opt, epochs=1, progress=False)


def test_cosine_and_bad_schedules() -> None:
    model, opt, sched = setup("cosine", epochs=4)
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        build_scheduler(opt, OptimConfig(schedule="cosin"), 3)
    with pytest.raises(ConfigError, match="milestones"):
        build_scheduler(opt, OptimConfig(schedule="multistep", milestones=[]), 3)
    with pytest.raises(ConfigError, match="positive"):
        build_optimizer(model.parameters(), OptimConfig(lr=0))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_channel_mean_std_in_chunks_matches_the_whole_split(dtype: torch.dtype) -> None:
    from medrobust.training.runs import channel_mean_std

    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 3, 5, 4, generator=g) * torch.tensor([1.0, 0.5, 0.1]).view(1, 3, 1, 1)
    images = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x
    ref = images.double() / (255.0 if dtype == torch.uint8 else 1.0)
    mean, std = channel_mean_std(images, chunk=64)
    assert mean == pytest.approx(ref.mean(dim=(0, 2, 3)).tolist(), abs=1e-9)
    assert std == pytest.approx(ref.std(dim=(0, 2, 3)).tolist(), abs=1e-9)


def test_grad_clip_bounds_each_step() -> None:
    start = setup()[0].state_dict()
    moved = {}
    for clip in (0.0, 1e-6):
        model, _ = run(None, 1, grad_clip=clip)  # 4 steps of SGD lr 0.05, momentum 0.9
        moved[clip] = torch.cat([(p - start[k]).flatten() for k, p in model.state_dict().items() if k in start
                                 and p.is_floating_point() and "running" not in k]).norm()  # fmt: skip
    assert moved[1e-6] <= 0.05 * 1e-6 * 4 / (1 - 0.9) and moved[0.0] > 1e-3
    with pytest.raises(ConfigError, match="grad_clip must be"):
        run(None, 1, grad_clip=-1.0)
