"""MRNet: the loader on a miniature release folder, the slice-max model, the logistic fusion, the protocol."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medrobust import data, models
from medrobust.cli import main
from medrobust.data.mrnet import PLANES, TASKS, resample
from medrobust.errors import ConfigError, DataError
from medrobust.models.mrnet import MRNet
from medrobust.studies.fusion import LogisticFusion

TRAIN_IDS = list(range(12))
VALID_IDS = list(range(1130, 1136))


def labels_of(case: int) -> dict[str, int]:
    return {"abnormal": case % 2, "acl": (case // 2) % 2, "meniscus": (case // 3) % 2}


def write_mrnet(root: Path, size: int = 16) -> Path:
    """A miniature MRNet folder: 12 train + 6 valid exams, three planes, 3–6 slices of size×size, six CSVs."""
    rng = np.random.default_rng(0)
    for split, ids in (("train", TRAIN_IDS), ("valid", VALID_IDS)):
        for plane in PLANES:
            (root / split / plane).mkdir(parents=True)
            for case in ids:
                vol = rng.integers(0, 60, size=(3 + case % 4, size, size), dtype=np.uint8)
                if labels_of(case)["abnormal"]:
                    vol[case % vol.shape[0], 4:10, 4:10] = 250  # one bright slice
                np.save(root / split / plane / f"{case:04d}.npy", vol)
        for task in TASKS:
            rows = "".join(f"{case:04d},{labels_of(case)[task]}\n" for case in ids)
            (root / f"{split}-{task}.csv").write_text(rows)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_mrnet(tmp_path / "MRNet-v1.0")


def load(root: Path, split: str, **options: object) -> data.ArrayDataset:
    return data.load("mrnet", split, root=str(root), **{"slices": 4, "size": 8, "val_fraction": 0.5, **options})


def test_splits_shapes_labels_and_metadata(root: Path) -> None:
    train, val, test = (load(root, s, task="acl", plane="coronal") for s in ("train", "val", "test"))
    assert train.images.shape == (6, 1, 4, 8, 8) and train.images.dtype == torch.uint8
    ids = {s: d.extras["case_id"].tolist() for s, d in (("train", train), ("val", val), ("test", test))}
    assert sorted(ids["train"] + ids["val"]) == TRAIN_IDS and not set(ids["train"]) & set(ids["val"])
    assert ids["test"] == VALID_IDS
    for d in (train, val, test):
        assert d.targets.tolist() == [labels_of(c)["acl"] for c in d.extras["case_id"].tolist()]
    assert "official valid" in test.info.extra["split_rule"] and "4 slices" in test.info.extra["resample"]
    assert test.info.task_kind == "binary" and test.info.spatial == (4, 8, 8)
    other = load(root, "val", task="meniscus", plane="axial")  # same held-out exams for every task and plane
    assert other.extras["case_id"].tolist() == ids["val"]


def test_resample_is_linear_across_slices_and_keeps_constant_planes() -> None:
    vol = np.stack([np.full((6, 6), v, dtype=np.uint8) for v in (0, 100, 200)])
    out = resample(vol, 5, 3)
    assert out.shape == (5, 3, 3)
    np.testing.assert_array_equal(out[:, 0, 0], [0, 50, 100, 150, 200])
    assert (out == out[:, :1, :1]).all()


def test_bad_data_errors_name_the_file(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = root / "train" / "sagittal" / "0003.npy"
    missing.unlink()
    with pytest.raises(DataError, match=r"0003\.npy: volume is missing.*--skip-bad"):
        load(root, "train", plane="sagittal", seed=1, val_fraction=0.01)
    skipped = load(root, "train", plane="sagittal", seed=1, val_fraction=0.01, skip_bad=True)
    assert skipped.info.extra["skipped_bad"] == 1 and len(skipped) == 11 and 3 not in skipped.extras["case_id"]
    assert skipped.info.extra["skipped_files"] == [f"{missing}: volume is missing (its case id is in the label CSV)"]
    assert capsys.readouterr().err.count("mrnet (train): skipped 1 bad file(s)") == 1
    clean = load(root, "train", plane="axial", seed=1, val_fraction=0.01, skip_bad=True)
    assert clean.info.extra["skipped_bad"] == 0 and "skipped_files" not in clean.info.extra
    raw = (root / "train" / "axial" / "0005.npy").read_bytes()
    (root / "train" / "axial" / "0005.npy").write_bytes(raw[: len(raw) - 40])
    with pytest.raises(DataError, match=r"0005\.npy: truncated"):
        load(root, "train", plane="axial", val_fraction=0.01, seed=2)
    (root / "valid-acl.csv").write_text("1130,0\n1131,2\n")
    with pytest.raises(DataError, match=r"valid-acl\.csv:2: label 2 is not 0 or 1"):
        load(root, "test", task="acl")
    np.save(root / "valid" / "coronal" / "1130.npy", np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(DataError, match=r"1130\.npy: volume is float32"):
        load(root, "test", plane="coronal", task="abnormal")
    with pytest.raises(DataError, match="no data root"):
        data.load("mrnet", "test")
    with pytest.raises(ConfigError, match="unknown plane"):
        load(root, "test", plane="transverse")
    (root / "valid-meniscus.csv").write_text("1130,1\nabc,0\n")
    with pytest.raises(DataError, match=r"valid-meniscus\.csv:2: expected 'id,label'") as err:
        load(root, "test", task="meniscus")
    assert "\n" not in str(err.value)


def test_model_takes_the_max_over_slices() -> None:
    torch.manual_seed(0)
    net = MRNet(1, 1, width=4).eval()
    cold, hot = torch.rand(1, 1, 1, 12, 12) * 0.2, torch.rand(1, 1, 1, 12, 12) * 0.2 + 0.8
    vols = [torch.cat([hot if i == k else cold for i in range(5)], dim=2) for k in range(5)]
    outs = torch.cat([net(v) for v in vols])
    torch.testing.assert_close(outs, outs[:1].expand(5, 1))
    f = net.features(torch.cat([cold[:, :, 0], hot[:, :, 0]]))
    torch.testing.assert_close(outs[:1], net.head(f.amax(dim=0, keepdim=True)))
    x = torch.rand(2, 1, 6, 12, 12)
    torch.testing.assert_close(net(x[:, :, torch.randperm(6)]), net(x))


def test_registered_model_and_errors() -> None:
    net = models.create("mrnet", in_channels=1, num_outputs=1, width=4, backbone="resnet18")
    assert net(torch.rand(2, 1, 3, 16, 16)).shape == (2, 1)
    with pytest.raises(ConfigError, match="volumes"):
        models.create("mrnet", in_channels=1, num_outputs=1, spatial_dims=2)
    with pytest.raises(ConfigError, match="backbone"):
        models.create("mrnet", in_channels=1, num_outputs=1, backbone="alexnet")


@pytest.mark.parametrize("c", [1.0, 0.05])
def test_fusion_matches_scikit_learn(c: float) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(120, 3))
    y = (x @ [2.0, -1.0, 0.5] + rng.normal(0, 0.5, 120) > 0.7).astype(np.int64)
    ref = sklearn.LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, y)
    fus = LogisticFusion.fit(torch.tensor(x), torch.tensor(y), c=c)
    np.testing.assert_allclose(fus.coef.numpy(), ref.coef_[0], atol=1e-4)
    assert fus.intercept == pytest.approx(ref.intercept_[0], abs=1e-4)
    p = fus.predict_proba(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(p, ref.predict_proba(x)[:, 1], atol=1e-5)
    with pytest.raises(DataError, match="both classes"):
        LogisticFusion.fit(torch.tensor(x), torch.zeros(120))


def test_protocol_trains_fuses_and_attacks_end_to_end(root: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "study"
    args = ["mrnet", "--data-root", str(root), "--out", str(out), "--tasks", "abnormal", "--fgsm-eps", "0.02",
            "--epochs", "1", "--set", "model.options={width: 4}", "--set", "train.batch_size=4",
            "--set", "data.options={slices: 4, size: 8, val_fraction: 0.5}", "--set", "optim.lr=0.01"]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "mrnet.json").read_text())["abnormal"]
    assert set(result["clean"]) == {*PLANES, "fused"} and set(result["fgsm"]) == {*PLANES, "fused"}
    assert result["n_test"] == 6 and len(result["fusion"]["coef"]) == 3
    for name in ("mrnet.md", "roc_abnormal.png", *(f"runs/abnormal-{p}/metrics.json" for p in PLANES)):
        assert (out / name).is_file(), name
    assert "| abnormal | fused" in (out / "mrnet.md").read_text()
    capsys.readouterr()
    assert main(args) == 0  # finished runs are reused, not retrained
    assert capsys.readouterr().out.count("reusing") == 3
    shutil.rmtree(out / "runs" / "abnormal-coronal")
    shutil.copytree(out / "runs" / "abnormal-axial", out / "runs" / "abnormal-coronal")
    assert main(args) == 2  # a run of another plane in a plane's folder is refused, not fused
    assert "holds a run of mrnet axial/abnormal" in capsys.readouterr().err


def test_fgsm_on_fused_follows_the_sign_of_the_fused_loss_gradient() -> None:
    from types import SimpleNamespace

    from conftest import blobs
    from medrobust.studies.mrnet import PlaneModel, fgsm_on_fused

    torch.manual_seed(0)
    test = blobs(10)  # x (10, 1, 8, 8) in [0, 0.9]
    nets = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1)) for _ in range(2)]
    planes = [PlaneModel(p, SimpleNamespace(model=n), test, test) for p, n in zip(("axial", "sagittal"), nets)]  # type: ignore[arg-type]
    fusion = LogisticFusion(torch.tensor([1.5, -0.7]), 0.1)
    rows, y = [torch.arange(10)] * 2, test.targets
    got = fgsm_on_fused(planes, fusion, rows, y, 0.01, batch_size=4)
    xs = [test.images.clone().requires_grad_(True) for _ in range(2)]
    z = fusion.decision_function(torch.stack([torch.sigmoid(n(x).reshape(-1)) for n, x in zip(nets, xs)], dim=1))
    grads = torch.autograd.grad(torch.nn.functional.binary_cross_entropy_with_logits(z, y.float(), reduction="sum"), xs)
    want = torch.stack([n((x + 0.01 * g.sign()).clamp(0, 1)).reshape(-1) for n, x, g in zip(nets, xs, grads)], dim=1)
    torch.testing.assert_close(got, want.detach())


def test_a_changed_volume_is_not_served_from_the_cache(root: Path) -> None:
    before = load(root, "test", plane="axial")
    np.save(root / "valid" / "axial" / "1132.npy", np.full((5, 16, 16), 255, dtype=np.uint8))
    after = load(root, "test", plane="axial")
    assert (after.images[2] == 255).all() and not (before.images[2] == 255).all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--fusion-c", "-1"], "--fusion-c must be > 0"),
        (["--planes", "sagittal,axial,sagittal"], "--planes: .* repeats"),
        (["--tasks", "acl,acl"], "--tasks: .* repeats"),
        (["--fgsm-eps", "0"], "--fgsm-eps must be a number > 0"),
    ],
)
def test_bad_options_fail_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["mrnet", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "o"), *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_a_reused_run_of_another_split_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from medrobust.config import ExperimentConfig
    from medrobust.studies import mrnet as study

    base = ExperimentConfig().with_values({"data.options": {"val_fraction": 0.5, "seed": 0}})
    want = study.plane_config(base, "root", "axial", "acl")
    (tmp_path / "metrics.json").write_text("{}")
    saved = want
    monkeypatch.setattr(study, "load_run", lambda *a, **k: SimpleNamespace(config=saved))
    quiet = lambda s: None  # noqa: E731
    assert study.train_or_load(want, tmp_path, quiet).config is want
    saved = study.plane_config(base.with_values({"data.options": {"val_fraction": 0.5}}), "root", "axial", "acl")
    study.train_or_load(want, tmp_path, quiet)  # seed left at the loader's default 0: the same split
    for options in ({"val_fraction": 0.2, "seed": 0}, {"val_fraction": 0.5, "seed": 1}, {"val_fraction": 0.5, "n": 4}):
        saved = study.plane_config(base.with_values({"data.options": options}), "root", "axial", "acl")
        with pytest.raises(ConfigError, match="another data split"):
            study.train_or_load(want, tmp_path, quiet)
