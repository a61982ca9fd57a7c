"""Fashion-MNIST (IDX) and MedMNIST (npz) loaders, end to end on miniature files in the exact formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medrobust.data import idx, load
from medrobust.data.idx import read_idx
from medrobust.data.sampling import stratified_subset
from medrobust.errors import ConfigError, DataError, UnknownNameError

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic ``00 00 code ndim``, big-endian dims and data."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> None:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)


def fake_fashion(folder: Path, *, gz: bool = True, per_class: int = 6, test_n: int = 20) -> dict[str, np.ndarray]:
    """Official-named IDX files; image ``i`` of each part carries ``i`` in pixel (0, 0) to track samples."""
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for part, n in (("train", 10 * per_class), ("t10k", test_n)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", images, gz=gz)
        write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", labels, gz=gz)
        arrays[f"{part}_images"], arrays[f"{part}_labels"] = images, labels
    return arrays


def assert_one_line(err: pytest.ExceptionInfo[Any], *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trips_dtype_and_dims(tmp_path: Path, gz: bool) -> None:
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000
    write_idx(tmp_path / "a", values, gz=gz)
    out = read_idx(tmp_path / "a")
    assert out.dtype == np.int32 and out.dtype.isnative and out.flags.writeable
    np.testing.assert_array_equal(out, values)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_test_split_round_trips(tmp_path: Path, gz: bool) -> None:
    raw = fake_fashion(tmp_path, gz=gz)
    ds = load("fashion-mnist", split="test", root=str(tmp_path))
    assert ds.images.shape == (20, 1, 28, 28) and ds.images.dtype.is_floating_point is False
    np.testing.assert_array_equal(ds.images.numpy()[:, 0], raw["t10k_images"])
    np.testing.assert_array_equal(ds.targets.numpy(), raw["t10k_labels"])
    assert ds.info.class_names[0] == "T-shirt/top" and ds.info.class_names[9] == "Ankle boot"
    assert (ds.info.task_kind, ds.info.num_classes, ds.info.spatial) == ("multiclass", 10, (28, 28))
    x, target, index = ds[3]
    assert x.shape == (1, 28, 28) and float(x.max()) <= 1.0 and int(target) == raw["t10k_labels"][3] and index == 3


def test_fashion_train_and_val_partition_the_official_train_set(tmp_path: Path) -> None:
    raw = fake_fashion(tmp_path)
    train = load("fashion-mnist", split="train", root=str(tmp_path), val_size=20)
    val = load("fashion-mnist", split="val", root=str(tmp_path), val_size=20)
    train_ids, val_ids = train.images[:, 0, 0, 0].numpy(), val.images[:, 0, 0, 0].numpy()
    assert len(train_ids) == 40 and len(val_ids) == 20
    assert sorted(np.concatenate([train_ids, val_ids]).tolist()) == list(range(60))
    np.testing.assert_array_equal(val.class_counts(), np.full(10, 2))
    np.testing.assert_array_equal(val.targets.numpy(), raw["train_labels"][val_ids])
    assert "stratified 20" in val.info.extra["split_rule"]


def test_fashion_subset_is_seeded_and_stratified(tmp_path: Path) -> None:
    fake_fashion(tmp_path)
    first = load("fashion-mnist", split="train", root=str(tmp_path), val_size=10, n=20, seed=1)
    again = load("fashion-mnist", split="train", root=str(tmp_path), val_size=10, n=20, seed=1)
    other = load("fashion-mnist", split="train", root=str(tmp_path), val_size=10, n=20, seed=2)
    assert len(first) == 20 and np.array_equal(first.images.numpy(), again.images.numpy())
    assert not np.array_equal(first.images.numpy(), other.images.numpy())
    np.testing.assert_array_equal(first.class_counts(), np.full(10, 2))


def test_fashion_missing_files_say_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as err:
        load("fashion-mnist", split="test", root=str(tmp_path))
    assert_one_line(err, "t10k-images-idx3-ubyte", str(tmp_path), "--data-root", "apt-get install")
    monkeypatch.setattr(idx, "DEBIAN_FOLDER", str(tmp_path / "debian"))
    with pytest.raises(DataError) as err:
        load("fashion-mnist", split="train")
    assert_one_line(err, str(tmp_path / "debian"), "--data-root", "apt-get install dataset-fashion-mnist")


def corrupt(path: Path, kind: str) -> None:
    """Damage a gzip IDX file in one of the ways the loader must report."""
    data = gzip.decompress(path.read_bytes())
    damaged = {
        "magic": b"\x12\x34" + data[2:],
        "truncated data": data[:-5],
        "truncated gz": None,
    }[kind]
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] if damaged is None else gzip.compress(damaged))


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [("magic", "bad magic"), ("truncated data", "truncated"), ("truncated gz", "truncated gzip")],
)
def test_damaged_idx_files_are_named(tmp_path: Path, kind: str, fragment: str) -> None:
    fake_fashion(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    corrupt(path, kind)
    with pytest.raises(DataError) as err:
        load("fashion-mnist", split="test", root=str(tmp_path))
    assert_one_line(err, str(path), fragment)


def test_idx_count_mismatch_and_bad_labels(tmp_path: Path) -> None:
    raw = fake_fashion(tmp_path)
    labels_path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels_path, raw["t10k_labels"][:-1])
    with pytest.raises(DataError) as err:
        load("fashion-mnist", split="test", root=str(tmp_path))
    assert_one_line(err, "20 images", "19 labels", str(labels_path))
    bad = raw["t10k_labels"].copy()
    bad[4] = 10
    write_idx(labels_path, bad)
    with pytest.raises(DataError) as err:
        load("fashion-mnist", split="test", root=str(tmp_path))
    assert_one_line(err, str(labels_path), "label 10 is outside 0..9")


def test_fashion_rejects_impossible_val_size(tmp_path: Path) -> None:
    fake_fashion(tmp_path)
    with pytest.raises(ConfigError, match="val_size=60"):
        load("fashion-mnist", split="train", root=str(tmp_path), val_size=60)
    with pytest.raises(ConfigError, match="val_size=0"):
        load("fashion-mnist", split="val", root=str(tmp_path), val_size=0)


def fake_medmnist(path: Path, *, rgb: bool, side: int = 28, labels_per_sample: int = 1, classes: int = 9) -> dict:
    """A MedMNIST-format npz: ``{split}_images`` uint8 (N, H, W[, 3]), ``{split}_labels`` uint8 (N, L)."""
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 30), ("val", 10), ("test", 12)):
        shape = (n, side, side, 3) if rgb else (n, side, side)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        high = 2 if labels_per_sample > 1 else classes
        arrays[f"{split}_labels"] = rng.integers(0, high, (n, labels_per_sample), dtype=np.uint8)
    if labels_per_sample == 1:
        arrays["train_labels"][:classes, 0] = np.arange(classes)  # every class present
    np.savez_compressed(path, **arrays)
    return arrays


def test_medmnist_rgb_multiclass_round_trips(tmp_path: Path) -> None:
    raw = fake_medmnist(tmp_path / "pathmnist.npz", rgb=True)
    ds = load("medmnist", split="val", root=str(tmp_path), flag="pathmnist")
    assert ds.images.shape == (10, 3, 28, 28) and ds.targets.shape == (10,)
    np.testing.assert_array_equal(ds.images.numpy(), raw["val_images"].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ds.targets.numpy(), raw["val_labels"][:, 0])
    assert (ds.info.task_kind, ds.info.num_classes, ds.info.channels) == ("multiclass", 9, 3)
    assert ds.info.class_names[-1] == "colorectal adenocarcinoma epithelium"
    assert ds.info.extra["path"] == str(tmp_path / "pathmnist.npz") and ds.info.extra["flag"] == "pathmnist"


def test_medmnist_multilabel_chest(tmp_path: Path) -> None:
    raw = fake_medmnist(tmp_path / "chestmnist.npz", rgb=False, labels_per_sample=14, classes=2)
    ds = load("medmnist", split="test", root=str(tmp_path), flag="chestmnist")
    assert ds.images.shape == (12, 1, 28, 28) and ds.targets.shape == (12, 14)
    np.testing.assert_array_equal(ds.targets.numpy(), raw["test_labels"])
    np.testing.assert_array_equal(ds.images.numpy()[:, 0], raw["test_images"])
    assert (ds.info.task_kind, ds.info.num_classes, ds.info.class_names[0]) == ("multilabel", 14, "atelectasis")
    assert ds.task().kind == "multilabel"


def test_medmnist_binary_larger_size(tmp_path: Path) -> None:
    fake_medmnist(tmp_path / "pneumoniamnist_64.npz", rgb=False, side=64, classes=2)
    ds = load("medmnist", split="train", root=str(tmp_path), flag="pneumoniamnist", size=64)
    assert ds.images.shape == (30, 1, 64, 64) and ds.info.spatial == (64, 64)
    assert ds.info.task_kind == "binary" and ds.info.class_names == ("normal", "pneumonia")
    assert ds.info.extra["positive_class"] == 1
    assert ds.task().output_dim == 1


SUBSET_CASES = [("pathmnist", {"rgb": True}), ("chestmnist", {"rgb": False, "labels_per_sample": 14})]


@pytest.mark.parametrize(("flag", "kwargs"), SUBSET_CASES)
def test_medmnist_subset_is_seeded(tmp_path: Path, flag: str, kwargs: dict) -> None:
    fake_medmnist(tmp_path / f"{flag}.npz", **kwargs)
    a, b, c = (load("medmnist", split="train", root=str(tmp_path), flag=flag, n=12, seed=s) for s in (5, 5, 6))
    assert len(a) == 12 and np.array_equal(a.images.numpy(), b.images.numpy())
    assert not np.array_equal(a.images.numpy(), c.images.numpy())


def test_medmnist_name_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as err:
        load("medmnist", root=str(tmp_path), flag="pathmnst")
    assert_one_line(err, "did you mean 'pathmnist'")
    with pytest.raises(ConfigError) as err:
        load("medmnist", root=str(tmp_path), flag="organmnist3d", size=224)
    assert_one_line(err, "3D flag")
    with pytest.raises(ConfigError, match="size 32"):
        load("medmnist", root=str(tmp_path), flag="pathmnist", size=32)


def test_medmnist_missing_root_or_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load("medmnist", flag="dermamnist")
    assert_one_line(err, "dermamnist.npz", "--data-root", "does not download")
    with pytest.raises(DataError) as err:
        load("medmnist", root=str(tmp_path), flag="dermamnist", size=128)
    assert_one_line(err, "dermamnist_128.npz", str(tmp_path), "does not download")


def rewrite(path: Path, **changes: np.ndarray | None) -> None:
    arrays = dict(np.load(path))
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"val_labels": None}, "missing key(s) val_labels"),
        ({"val_images": np.zeros((10, 27, 27), np.uint8)}, "images are uint8 (10, 27, 27)"),
        ({"val_images": np.zeros((10, 28, 28, 3), np.uint8)}, "expected uint8 (N, 28, 28)"),
        ({"val_images": np.zeros((10, 28, 28), np.float32)}, "images are float32"),
        ({"val_labels": np.full((10, 1), 4, np.uint8)}, "label value 4 is outside 0..1"),
        ({"val_labels": np.zeros((10, 2), np.uint8)}, "expected integer (N, 1)"),
        ({"val_labels": np.zeros((9, 1), np.uint8)}, "val_images has 10 samples but val_labels has 9"),
    ],
)
def test_medmnist_bad_contents_name_the_file(tmp_path: Path, change: dict, fragment: str) -> None:
    path = tmp_path / "breastmnist.npz"
    fake_medmnist(path, rgb=False, classes=2)
    rewrite(path, **change)
    with pytest.raises(DataError) as err:
        load("medmnist", split="val", root=str(tmp_path), flag="breastmnist")
    assert_one_line(err, str(path), fragment)


def test_medmnist_truncated_npz(tmp_path: Path) -> None:
    path = tmp_path / "octmnist.npz"
    fake_medmnist(path, rgb=False, classes=4)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        load("medmnist", split="train", root=str(tmp_path), flag="octmnist")
    assert_one_line(err, str(path), "corrupt or truncated npz")


def test_stratified_subset_allocates_proportionally() -> None:
    labels = np.repeat(np.arange(3), [50, 30, 20])
    keep = stratified_subset(labels, 10, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[keep]), [5, 3, 2])
    assert np.all(np.diff(keep) > 0)
    with pytest.raises(ConfigError, match="n=101"):
        stratified_subset(labels, 101, seed=0)
