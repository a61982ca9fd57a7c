import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score

from medrobust.errors import ConfigError, DataError
from medrobust.metrics import classification as M
from medrobust.tasks import ClassificationTask


def test_single_logit_binary() -> None:
    task = ClassificationTask("binary", 2)
    z = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    y = torch.tensor([1, 1, 0, 0])
    assert task.output_dim == 1
    assert task.correct(z, y).tolist() == [True, False, False, True]
    assert torch.allclose(task.loss(z, y), torch.nn.functional.softplus(-z.view(-1) * (2 * y - 1).float()))
    assert task.margin(z, y).tolist() == [-2.0, 1.0, 0.5, -3.0]
    assert torch.allclose(task.probabilities(z).sum(1), torch.ones(4))


def test_multiclass_loss_margin_correct() -> None:
    task = ClassificationTask("multiclass", 3)
    z = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    y = torch.tensor([0, 1])
    assert task.correct(z, y).tolist() == [True, False]
    assert task.margin(z, y).tolist() == [-2.0, 1.0]
    assert torch.allclose(task.loss(z, y), torch.nn.functional.cross_entropy(z, y, reduction="none"))


def test_two_logit_binary_and_multilabel() -> None:
    two = ClassificationTask("binary", 2, binary_logits=2)
    assert two.output_dim == 2
    assert two.correct(torch.tensor([[0.0, 1.0]]), torch.tensor([1])).item()
    ml = ClassificationTask("multilabel", 3)
    z = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -1.0]])
    y = torch.tensor([[1, 0, 1], [1, 0, 0]])
    assert ml.correct(z, y).tolist() == [True, False]
    assert ml.margin(z, y).tolist() == [-1.0, 1.0]
    assert ml.loss(z, y).shape == (2,)


def test_check_target_range_and_shape() -> None:
    task = ClassificationTask("multiclass", 3)
    task.check_target(torch.tensor([0, 2]))
    with pytest.raises(DataError, match="out of range"):
        task.check_target(torch.tensor([0, 3]))
    with pytest.raises(DataError, match="shape"):
        task.check_target(torch.zeros(2, 2))
    with pytest.raises(DataError, match="shape"):
        ClassificationTask("binary", 2, binary_logits=2).loss(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_bad_settings() -> None:
    with pytest.raises(ConfigError):
        ClassificationTask("binary", 3)
    with pytest.raises(ConfigError):
        ClassificationTask("regression", 2)  # type: ignore[arg-type]


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    z = torch.tensor(rng.normal(size=200) + 1.5 * (y - 0.5), dtype=torch.float32).view(-1, 1)
    m = ClassificationTask("binary", 2).metrics(z, torch.tensor(y))
    pred = (z.view(-1) > 0).long().numpy()
    assert m["accuracy"] == pytest.approx((pred == y).mean())
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["auc"] == pytest.approx(roc_auc_score(y, z.view(-1).numpy()))
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred))


def test_multiclass_auc_ovr_and_ties() -> None:
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    logits = torch.tensor(rng.normal(size=(90, 3)) + np.eye(3)[y], dtype=torch.float32)
    m = ClassificationTask("multiclass", 3).metrics(logits, torch.tensor(y))
    probs = torch.softmax(logits, 1).numpy()
    assert m["auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    tied = np.array([0.5, 0.5, 0.2, 0.9])
    assert M.roc_auc_binary([0, 1, 0, 1], tied) == pytest.approx(roc_auc_score([0, 1, 0, 1], tied))


def test_roc_curve_matches_sklearn() -> None:
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.uniform(size=50), 1)
    fpr, tpr, _ = M.roc_curve(y, s)
    f2, t2, _ = roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(fpr, f2) and np.allclose(tpr, t2)


def test_binary_auc_ranks_confident_logits_without_saturated_ties() -> None:
    # sigmoid(z) rounds to exactly 1.0 in float32 beyond z ≈ 17: probabilities would tie all of these
    z = torch.tensor([18.0, 20.0, 25.0, 30.0, 19.0, 40.0])
    y = torch.tensor([0, 0, 1, 1, 0, 1])
    two = ClassificationTask(kind="binary", binary_logits=2)
    for task, out in ((ClassificationTask(kind="binary"), z[:, None]), (two, torch.stack([-z / 2, z / 2], 1))):
        assert task.metrics(out, y)["auc"] == pytest.approx(1.0)
