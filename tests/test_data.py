"""fer_core.data: both layouts, label order, bad data reporting, the cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from helpers import PER_CLASS, csv_text, synthetic_face, write_folder_dataset
from fer_core import CLASS_NAMES, FerError
from fer_core.data import folder as folder_loader
from fer_core.paths import cache_dir
from fer_core.data import default_evaluation_split, default_training_split, load_dataset


def test_folder_layout_splits_by_prefix(folder_dataset):
    dataset = load_dataset(folder_dataset)
    assert dataset.split_names == ["Training", "PublicTest"]
    assert len(dataset) == 2 * 7 * PER_CLASS
    assert dataset.images.shape[1:] == (48, 48) and dataset.images.dtype == np.uint8
    for split in dataset.split_names:
        counts = np.bincount(dataset.split(split).labels, minlength=7)
        assert counts.tolist() == [PER_CLASS] * 7
    # The label of every image is the one its folder names, in FER2013's order.
    for source, label in zip(dataset.sources, dataset.labels):
        assert source.split("/")[1] == CLASS_NAMES[label]
    assert dataset.report.messages() == []


def test_prefix_wins_over_folder_name(tmp_path):
    import cv2

    target = tmp_path / "somewhere" / "happy"
    target.mkdir(parents=True)
    cv2.imwrite(str(target / "PrivateTest_1.png"), synthetic_face(3, 1))
    cv2.imwrite(str(target / "Training_2.png"), synthetic_face(3, 2))
    dataset = load_dataset(tmp_path)
    assert sorted(dataset.split_names) == ["PrivateTest", "Training"]


def test_split_from_folder_name_without_prefixes(tmp_path):
    write_folder_dataset(tmp_path, per_class=2, prefixes=False, splits=(("train", None), ("val", None)))
    dataset = load_dataset(tmp_path)
    assert dataset.split_names == ["train", "val"]
    assert default_training_split(dataset) == "train"
    assert default_evaluation_split(dataset) is None  # no test split: evaluate on all images


def test_class_folders_map_to_fer_order_whatever_their_names_order(tmp_path):
    # Alphabetical order on disk (angry, disgust, fear, happy, neutral, sad, surprise) differs from
    # FER2013's (... sad, surprise, neutral); aliases like "happiness" map too.
    names = ["surprise", "neutral", "happiness", "angry"]
    for name in names:
        (tmp_path / "train" / name).mkdir(parents=True)
    import cv2

    expected = {"surprise": 5, "neutral": 6, "happiness": 3, "angry": 0}
    for name in names:
        cv2.imwrite(str(tmp_path / "train" / name / "Training_1.png"), synthetic_face(expected[name], 0))
    dataset = load_dataset(tmp_path)
    got = {src.split("/")[1]: int(label) for src, label in zip(dataset.sources, dataset.labels)}
    assert got == expected


def test_single_split_folder_of_class_folders(tmp_path):
    write_folder_dataset(tmp_path, per_class=1, prefixes=False, splits=(("test", None),))
    dataset = load_dataset(tmp_path / "test")
    assert dataset.split_names == ["test"]
    assert len(dataset) == 7


def test_missing_path_is_one_line_error(tmp_path):
    with pytest.raises(FerError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FerError, match="no images found"):
        load_dataset(tmp_path)


def test_a_class_folder_fer2013_lacks_makes_a_dataset_of_its_own_classes(tmp_path):
    write_folder_dataset(tmp_path, per_class=1)
    import cv2

    (tmp_path / "train" / "contempt").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "contempt" / "Training_999.png"), synthetic_face(0, 0))
    dataset = load_dataset(tmp_path)
    assert len(dataset) == 15  # the contempt image is kept, not dropped
    assert dataset.classes == ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert dataset.classes[dataset.labels[list(dataset.sources).index("train/contempt/Training_999.png")]] == "contempt"


def test_only_unknown_class_folders_is_an_error(tmp_path):
    import cv2

    (tmp_path / "train" / "cats").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / "cats" / "a.png"), synthetic_face(0, 0))
    with pytest.raises(FerError, match="only one class"):
        load_dataset(tmp_path)


def test_bad_images_are_skipped_named_and_counted(tmp_path):
    import cv2

    write_folder_dataset(tmp_path, per_class=2)
    happy = tmp_path / "train" / "happy"
    for i in range(5):
        (happy / f"Training_90{i}.jpg").write_bytes(b"this is not a jpeg")
    (happy / "Training_950.png").write_bytes(b"")
    colour = np.dstack([synthetic_face(3, 7)] * 3)
    colour[..., 2] = 255
    cv2.imwrite(str(happy / "Training_960.png"), colour)
    cv2.imwrite(str(happy / "Training_970.png"), cv2.resize(synthetic_face(3, 8), (96, 96)))
    for f in (tmp_path / "test" / "disgust").iterdir():
        f.unlink()

    dataset = load_dataset(tmp_path)
    assert len(dataset) == 28 - 2 + 2  # 2 disgust test images removed, 2 convertible added
    messages = dataset.report.messages()
    text = "\n".join(messages)
    assert "skipped 6 unreadable or corrupt images" in text
    assert "and 3 more" in text  # names at most three, then a count
    assert "converted 1 images (colour to grayscale)" in text
    assert "converted 1 images (resized to 48x48)" in text
    assert "test/disgust holds no images" in text


def test_csv_both_header_forms_bom_and_crlf(tmp_path):
    rows = [
        (label, synthetic_face(label, 0), usage)
        for usage in ("Training", "PublicTest", "PrivateTest")
        for label in range(7)
    ]
    plain = tmp_path / "a.csv"
    plain.write_text(csv_text(rows))
    spaced = tmp_path / "b.csv"
    spaced.write_bytes(
        ("\ufeff" + csv_text(rows, header="emotion, pixels, Usage").replace("\n", "\r\n")).encode("utf-8")
    )
    first, second = load_dataset(plain), load_dataset(spaced)
    assert first.split_names == ["Training", "PublicTest", "PrivateTest"]
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.images[3], synthetic_face(3, 0))
    assert default_evaluation_split(first) == "PrivateTest"


def test_csv_bad_rows_are_named(tmp_path):
    good = synthetic_face(0, 0)
    lines = ["emotion,pixels,Usage", f"0,{' '.join(map(str, good.ravel()))},Training"]
    lines.append("1,1 2 3,Training")  # wrong pixel count: row 3
    lines.append(f"2,{' '.join(['x'] * 2304)},Training")  # non-numeric: row 4
    lines.append(f"9,{' '.join(map(str, good.ravel()))},Training")  # label out of range: row 5
    lines.append(f"3,{' '.join(map(str, good.ravel()))},Holdout")  # unknown usage: row 6
    lines.append(f"3,{' '.join(['300'] * 2304)},Training")  # pixel out of range: row 7
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    dataset = load_dataset(path)
    assert len(dataset) == 1
    text = "\n".join(dataset.report.messages())
    assert "wrong pixel count (expected 2304): row 3 (3)" in text
    assert "non-numeric pixels: row 4" in text
    assert "label outside 0..6: row 5" in text
    assert "unknown Usage" in text and "row 6" in text
    assert "outside 0..255: row 7" in text


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("label,data\n1,2\n", "needs the columns emotion,pixels"),
        ("emotion,pixels,Usage\n1,1 2 3,Training\n", "no usable rows"),
    ],
)
def test_csv_unusable_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(FerError, match=message):
        load_dataset(path)


def test_csv_without_usage_is_one_split(tmp_path):
    rows = [(label, synthetic_face(label, 1), "") for label in range(7)]
    path = tmp_path / "train.csv"
    path.write_text(
        "\n".join(["emotion,pixels"] + [f"{label},{' '.join(map(str, p.ravel()))}" for label, p, _ in rows]) + "\n"
    )
    assert load_dataset(path).split_names == ["all"]


def test_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    root = write_folder_dataset(tmp_path / "d", per_class=2)
    first = load_dataset(root)
    calls = []
    original = folder_loader.load_folder
    monkeypatch.setattr(folder_loader, "load_folder", lambda *a: calls.append(1) or original(*a))
    second = load_dataset(root)
    assert calls == []  # served from the cache
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.splits, second.splits)
    # Changing one file (size and mtime) invalidates the cache.
    target = next((root / "train" / "happy").iterdir())
    import cv2

    cv2.imwrite(str(target), synthetic_face(3, 33))
    os.utime(target, (time.time() + 5, time.time() + 5))
    third = load_dataset(root)
    assert calls == [1]
    assert not np.array_equal(first.images, third.images)


def test_damaged_cache_is_rebuilt(tmp_path):
    root = write_folder_dataset(tmp_path / "d", per_class=1)
    load_dataset(root)
    for f in cache_dir().glob("fer-*.npz"):
        f.write_bytes(b"garbage")
    assert len(load_dataset(root)) == 14


def test_head_takes_first_n_of_each_split(folder_dataset):
    full = load_dataset(folder_dataset)
    dataset = full.head(14)
    assert len(dataset) == 28
    # The first 14 of each split in the dataset's own order (not a sample, not every class: the
    # synthetic files are numbered per class, so the first 14 hold the first classes only).
    for split in dataset.split_names:
        np.testing.assert_array_equal(dataset.split(split).sources, full.split(split).sources[:14])
    with pytest.raises(FerError):
        dataset.head(0)


def test_progress_callback_reaches_total(tmp_path):
    root = write_folder_dataset(tmp_path, per_class=1)
    seen = []
    load_dataset(root, use_cache=False, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (14, 14)
