"""Classification metrics and the confusion-matrix figure against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gradpath.errors import GradpathError
from gradpath.tasks.classify.metrics import classification_metrics
from gradpath.tasks.classify.plots import confusion_figure, plot_confusion_matrix

NAMES = ["a", "b", "c"]


def test_logits_top1_top_k_per_class_confusion_by_hand():
    # 3 classes -> k = 3 (min(5, C)): every sample is a top-k hit
    logits = torch.tensor([[3.0, 1.0, 0.0],    # true 0, pred 0
                           [0.0, 2.0, 1.0],    # true 1, pred 1
                           [2.0, 0.0, 1.0],    # true 1, pred 0 (true is rank 2)
                           [0.0, 1.0, 5.0],    # true 2, pred 2
                           [1.0, 4.0, 2.0]])   # true 2, pred 1 (rank 1)
    targets = torch.tensor([0, 1, 1, 2, 2])
    m = classification_metrics(logits, targets, NAMES)
    assert m["n"] == 5 and m["k"] == 3
    assert m["top1"] == pytest.approx(3 / 5)
    assert m["top5"] == pytest.approx(1.0)
    assert m["per_class"] == pytest.approx([1.0, 0.5, 0.5])
    assert m["confusion"].dtype == torch.int64
    assert m["confusion"].tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_top5_with_seven_classes_counts_rank_below_five():
    names = [str(i) for i in range(7)]
    scores = torch.arange(7, dtype=torch.float32).flip(0).repeat(3, 1)  # class 0 highest ... class 6 lowest
    m = classification_metrics(scores, torch.tensor([4, 5, 0]), names)  # ranks 4, 5, 0
    assert m["k"] == 5
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top5"] == pytest.approx(2 / 3)
    assert m["per_class"] == [1.0, None, None, None, 0.0, 0.0, None]


def test_ties_break_by_class_index_like_argmax():
    # true class 1 ties with class 0: class 0 wins (lower index), so it is a top-1 miss predicted as 0
    m = classification_metrics(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]), torch.tensor([1, 1]), NAMES)
    assert m["top1"] == pytest.approx(0.5)
    assert m["confusion"].tolist() == [[0, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_predictions_instead_of_logits():
    m = classification_metrics(torch.tensor([0, 2, 2, 1]), torch.tensor([0, 2, 1, 1]), NAMES)
    assert m["top1"] == pytest.approx(0.75) and m["top5"] is None
    assert m["per_class"] == pytest.approx([1.0, 0.5, 1.0])
    assert m["confusion"].tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_bad_input():
    with pytest.raises(GradpathError, match="target class 3 is outside 0..2"):
        classification_metrics(torch.zeros(2, 3), torch.tensor([0, 3]), NAMES)
    with pytest.raises(GradpathError, match="empty"):
        classification_metrics(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), NAMES)
    with pytest.raises(ValueError, match="columns"):
        classification_metrics(torch.zeros(2, 4), torch.tensor([0, 1]), NAMES)


def test_confusion_figure_shows_row_fractions_and_names():
    cm = torch.tensor([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    fig = confusion_figure(cm, NAMES, normalize=True)
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown, [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    assert "0.75" in [t.get_text() for t in ax.texts]
    counts = np.asarray(confusion_figure(cm, NAMES, normalize=False).axes[0].images[0].get_array())
    np.testing.assert_array_equal(counts, cm.numpy())


def test_plot_confusion_matrix_writes_png_without_touching_pyplot(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    out = plot_confusion_matrix(torch.eye(3, dtype=torch.int64), NAMES, tmp_path / "confusion.png")
    assert out == tmp_path / "confusion.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend
