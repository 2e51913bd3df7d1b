"""fer_core.evaluation.label_review: confident learning as the paper defines it (thresholds, the
confident joint, its calibration, pruning by noise rate, the ranking), checked on a case small
enough to work by hand, and on labels flipped on purpose."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.errors import FerError
from fer_core.evaluation.label_review import (
    confident_joint,
    estimated_joint,
    find_label_issues,
    per_class_thresholds,
    review,
)


# Six images, two classes: 0-2 labelled 0, 3-5 labelled 1. Image 2 is labelled 0 but looks like a 1.
LABELS = np.array([0, 0, 0, 1, 1, 1])
PROBABILITIES = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])


def test_thresholds_are_each_classes_mean_self_confidence():
    assert per_class_thresholds(LABELS, PROBABILITIES) == pytest.approx([0.6, 0.8])


def test_the_confident_joint_counts_the_best_class_above_its_threshold():
    joint, confident = confident_joint(LABELS, PROBABILITIES)
    # Image 2 (p1 0.9 >= 0.8) counts as a 1; image 4 (0.3 < 0.6, 0.7 < 0.8) is not counted.
    assert confident.tolist() == [0, 0, 1, 1, -1, 1]
    assert joint.tolist() == [[2, 1], [0, 2]]


def test_the_estimated_joint_scales_rows_to_the_label_counts():
    joint, _ = confident_joint(LABELS, PROBABILITIES)
    # Row 1 counted 2 of its 3 images: scaled to 3. Total 6.
    assert estimated_joint(LABELS, joint) == pytest.approx(np.array([[2, 1], [0, 3]]) / 6)


def test_pruning_by_noise_rate_flags_the_image_with_the_largest_margin():
    assert find_label_issues(LABELS, PROBABILITIES).tolist() == [2]


def test_flipped_labels_are_found_and_ranked_first():
    """A well-separated 4-class problem: the out-of-fold model is right about the true class; 10%
    of the given labels are flipped. Most flips are flagged, most flags are flips, the first ranks
    above all."""
    rng = np.random.default_rng(3)
    true = rng.integers(0, 4, 400)
    logits = rng.normal(0, 1, (400, 4))
    logits[np.arange(400), true] += 3.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given = true.copy()
    flipped = rng.choice(400, 40, replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, 4, 40)) % 4
    issues = find_label_issues(given, probabilities)
    found = np.isin(issues, flipped)
    assert found.sum() >= 32  # at least 80% of the flips
    assert found.mean() >= 0.7  # most flags are flips
    assert found[:20].all()  # the top ranks are all flips
    quality = probabilities[issues, given[issues]]
    assert np.all(np.diff(quality) >= 0)  # ranked by self-confidence, lowest first


@pytest.mark.parametrize(
    "labels, probabilities, message",
    [
        ([0, 1], [[0.5, 0.5]], "do not match"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], "class indices 0..1"),
        ([0, 1], [[1.5, -0.5], [0.5, 0.5]], r"lie in \[0, 1\]"),
    ],
)
def test_bad_input_is_refused(labels, probabilities, message):
    with pytest.raises(FerError, match=message):
        find_label_issues(labels, probabilities)


def test_a_review_of_a_folder_without_out_of_fold_probabilities_is_one_line(tmp_path):
    with pytest.raises(FerError, match="no out_of_fold.csv") as caught:
        review(tmp_path)
    assert "\n" not in str(caught.value)
    (tmp_path / "out_of_fold.csv").write_text("path,label,a,b\nx.png,a,0.5,0.5\n")
    with pytest.raises(FerError, match="not an out-of-fold file"):
        review(tmp_path)
