"""fer_core.data.store: datasets brought as zips, unpacked only when safe and whole, listed,
renamed and deleted; every bad archive is one line and leaves nothing behind."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
from PIL import Image

from fer_core.data.store import delete_dataset, list_datasets, rename_dataset, unpack_dataset
from fer_core.errors import FerError
from helpers import synthetic_face


@pytest.fixture(autouse=True)
def datasets_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATASETS_DIR", str(tmp_path / "datasets"))
    return tmp_path / "datasets"


def png(label: int, index: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_face(label, index)).save(buffer, format="PNG")
    return buffer.getvalue()


def zipped(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def class_folders(prefix: str = "", classes=("calm", "joy"), per_class: int = 4) -> dict[str, bytes]:
    return {f"{prefix}{name}/S{i:03d}_001.png": png(k, i) for k, name in enumerate(classes) for i in range(per_class)}


def test_a_zip_of_a_folder_of_class_folders_becomes_a_named_dataset(datasets_folder):
    entries = class_folders("mine/")
    entries["mine/README.txt"] = b"notes"
    entries["__MACOSX/mine/._x.png"] = b"junk"
    unpacked = unpack_dataset(zipped(entries), "lab-faces")
    assert unpacked.images == 8 and unpacked.folder == datasets_folder / "lab-faces"
    assert unpacked.skipped == {"files that are neither images nor a CSV": ["mine/README.txt"]}
    assert sorted(p.name for p in (datasets_folder / "lab-faces").iterdir()) == ["calm", "joy"]
    assert list_datasets() == {"lab-faces": datasets_folder / "lab-faces"}
    renamed = rename_dataset("lab-faces", "lab_v2")
    assert list_datasets() == {"lab_v2": renamed}
    delete_dataset("lab_v2")
    assert list_datasets() == {} and list(datasets_folder.iterdir()) == []


def test_a_zip_of_a_labelled_csv_with_its_images_lists_the_csv():
    entries = {f"img/{k}_{i}.png": png(k, i) for k in range(2) for i in range(3)}
    entries["labels.csv"] = "label,path\n" + "".join(f"{'ab'[k]},img/{k}_{i}.png\n" for k in range(2) for i in range(3))
    entries["labels.csv"] = entries["labels.csv"].encode()
    unpacked = unpack_dataset(zipped(entries), "csvset")
    assert unpacked.data.name == "labels.csv" and unpacked.images == 6
    assert list_datasets()["csvset"] == unpacked.data


def test_a_corrected_copy_is_listed_and_follows_its_dataset_through_rename_and_delete(datasets_folder):
    """The label review's copy sits beside the dataset it corrects, naming its images through the
    dataset's name: listed under its own name, renamed with it (still loading the same faces),
    deleted with it; only folders are offered to rename or delete."""
    from fer_core.data import load_dataset
    from fer_core.data.corrections import EXCLUDE, write_corrected_copy
    from fer_core.data.store import dataset_folders

    unpacked = unpack_dataset(zipped(class_folders("mine/", per_class=3)), "lab")
    dataset = load_dataset(unpacked.data, use_cache=False)
    images = [(str(source), dataset.classes[label], "") for source, label in zip(dataset.sources, dataset.labels)]
    copy = write_corrected_copy(unpacked.data, images, {images[0][0]: EXCLUDE}, dataset.classes)
    assert list_datasets() == {"lab": datasets_folder / "lab", "lab-corrected": copy}
    assert dataset_folders() == ["lab"]
    assert len(load_dataset(copy, use_cache=False)) == 5
    rename_dataset("lab", "lab2")
    assert list_datasets() == {
        "lab2": datasets_folder / "lab2",
        "lab2-corrected": datasets_folder / "lab2-corrected.csv",
    }
    assert len(load_dataset(datasets_folder / "lab2-corrected.csv", use_cache=False)) == 5
    delete_dataset("lab2")
    assert list_datasets() == {} and list(datasets_folder.iterdir()) == []


def test_a_csv_datasets_corrected_copy_is_listed_beside_its_csv():
    entries = {f"img/{k}_{i}.png": png(k, i) for k in range(2) for i in range(3)}
    entries["labels.csv"] = (
        "label,path\n" + "".join(f"{'ab'[k]},img/{k}_{i}.png\n" for k in range(2) for i in range(3))
    ).encode()
    unpacked = unpack_dataset(zipped(entries), "csvset")
    (unpacked.folder / "labels-corrected.csv").write_text("label,path\na,img/0_0.png\nb,img/1_0.png\n")
    assert list_datasets() == {
        "csvset": unpacked.data,
        "csvset/labels-corrected": unpacked.folder / "labels-corrected.csv",
    }


def bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("calm/a.png", png(0, 0))
        archive.writestr("joy/huge.png", b"\0" * (20 * 1024**2))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "archive, message",
    [
        (zipped({**class_folders(), "../evil.png": png(0, 1)}), "../evil.png: refused: the path leads outside"),
        (zipped({**class_folders(), "/abs/evil.png": png(0, 1)}), "refused: the path leads outside"),
        (zipped(class_folders(), links=("calm/link.png",)), "calm/link.png: refused: links are not unpacked"),
        (bomb(), "joy/huge.png: refused: it unpacks"),
        (zipped({"notes.txt": b"x"}), "the archive holds no images"),
        (zipped(class_folders(classes=("calm",))), "the archive: only one class (calm)"),
        (b"not a zip at all", "not a readable zip archive"),
    ],
    ids=["dotdot", "absolute", "link", "bomb", "no images", "one class", "not a zip"],
)
def test_bad_archives_are_refused_in_one_line_and_leave_nothing(archive, message, datasets_folder):
    with pytest.raises(FerError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        unpack_dataset(archive, "bad")
    assert "\n" not in str(caught.value)
    assert not datasets_folder.exists() or list(datasets_folder.iterdir()) == []


def test_names_are_checked_and_never_overwrite(datasets_folder):
    unpack_dataset(zipped(class_folders()), "mine")
    before = sorted(p.relative_to(datasets_folder) for p in datasets_folder.rglob("*"))
    with pytest.raises(FerError, match="a dataset named 'mine' exists already"):
        unpack_dataset(zipped(class_folders(per_class=2)), "mine")
    for bad in ("../up", "", ".hidden", "a/b"):
        with pytest.raises(FerError, match="dataset name"):
            unpack_dataset(zipped(class_folders()), bad)
    with pytest.raises(FerError, match="no dataset named 'nope'"):
        delete_dataset("nope")
    assert sorted(p.relative_to(datasets_folder) for p in datasets_folder.rglob("*")) == before
