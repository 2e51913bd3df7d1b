"""A dataset with its own classes in a real Streamlit server, driven by Chromium: the Dataset page
names its classes (one FER2013 lacks), the Train page offers a model to start from, Evaluate's
confusion matrix and Predict's bars and CSV use the model's classes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from chromium import VIEWPORT, dashboard_server, download_csv, settle, upload_to_predict
from test_own_data import CK_CLASSES, write_ck_folder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def ck_server(tmp_path_factory):
    from helpers import tiny_config
    from fer_core.training.loop import train
    from fer_core.training.promote import promote

    base = tmp_path_factory.mktemp("e2e_ck")
    data = write_ck_folder(base / "ck")
    os.environ["FER_CACHE_DIR"] = str(base / "cache")
    os.environ["FER_DATASETS_DIR"] = str(base / "datasets")  # the server's, where uploads go
    config = tiny_config(data, epochs=2)
    run = train(config, out=base / "runs", echo=False)
    promote(run, "ck_cnn", dest_root=base / "trained")
    with dashboard_server(base, base / "trained", data) as (url, _pid):
        yield url, data


def open_page(browser, url: str, path: str, ready: str):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/{path}")
    page.get_by_text(ready).first.wait_for(timeout=120_000)
    settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    return page


def test_dataset_page_names_the_datasets_classes(ck_server, browser):
    url, _data = ck_server
    page = open_page(browser, url, "dataset", "Blank and near-constant images")
    assert page.get_by_text(f"7 classes: {', '.join(CK_CLASSES)}").count() >= 1
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("ck").count() >= 1 and sidebar.get_by_text("contempt", exact=False).count() >= 1
    page.close()


def test_train_page_offers_a_model_to_start_from(ck_server, browser):
    url, _data = ck_server
    page = open_page(browser, url, "train", "Runs and cross-validations")
    page.get_by_role("combobox", name="Start from").click()
    # The trained model is offered (the label alone is there with no model at all).
    assert page.get_by_role("option", name="ck_cnn").count() == 1
    page.close()


def test_evaluate_shows_the_models_classes(ck_server, browser):
    url, _data = ck_server
    page = open_page(browser, url, "evaluate", "Reliability diagram")
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    # The matrix's axes and the per-class table name the dataset's classes, contempt included.
    assert page.locator(".js-plotly-plot").first.get_by_text("contempt").count() >= 1
    page.close()


def test_predict_uses_the_models_classes(ck_server, browser, tmp_path):
    url, data = ck_server
    upload = sorted((data / "contempt").iterdir())[0]
    page = upload_to_predict(browser, url, upload)
    download_csv(page, "Download CSV", tmp_path / "faces.csv")
    rows = pd.read_csv(tmp_path / "faces.csv")
    assert set(CK_CLASSES) <= set(rows.columns) and "neutral" not in rows.columns
    assert rows["label"].iloc[0] in CK_CLASSES
    page.close()


def test_a_dataset_zip_uploaded_in_the_browser_becomes_the_dataset_in_use(ck_server, browser, tmp_path):
    """The Dataset page takes a zip of class folders from the user's computer, unpacks it into the
    datasets folder and switches to it (the sidebar names it and its classes); a zip reaching
    outside its folder is an error box and adds nothing."""
    import zipfile

    url, data = ck_server
    good = tmp_path / "lab2.zip"
    with zipfile.ZipFile(good, "w") as archive:
        for name in ("contempt", "happy"):
            for file in sorted((data / name).iterdir())[:4]:
                archive.write(file, f"lab2/{name}/{file.name}")
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.write(sorted((data / "happy").iterdir())[0], "../evil.png")
    page = open_page(browser, url, "dataset", "Blank and near-constant images")
    uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    uploader.set_input_files([str(bad)])
    page.get_by_role("button", name="Add dataset", exact=True).click()
    page.get_by_text("refused: the path leads outside").wait_for(timeout=60_000)
    assert page.locator('[data-testid="stAlertContentError"]').count() == 1
    uploader.set_input_files([str(good)])
    # The click must reach the rerun that holds the new file (its name proposed as the dataset's),
    # not the one before it, which still holds the refused zip.
    page.get_by_text("lab2.zip").first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('input')].some(i => i.value === 'lab2')", timeout=60_000
    )
    settle(page)
    page.get_by_role("button", name="Add dataset", exact=True).click()
    # Said on the page (under load seen drawn while a rerun still had it hidden), and in use:
    page.get_by_text("Added lab2: 8 images, now the dataset in use.").wait_for(state="attached", timeout=60_000)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("2 classes (contempt, happy)").wait_for(timeout=60_000)
    datasets = Path(os.environ["FER_DATASETS_DIR"])
    assert sorted(p.name for p in datasets.iterdir()) == ["lab2"]
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_a_corrected_copy_is_measured_on_the_held_out_faces_only_and_a_reload_keeps_it(ck_server, browser):
    """The label review's corrected copy (the same files less two, as a labelled CSV) chosen as the
    dataset: Evaluate measures the model trained on the folder on its held-out faces only (its
    training faces recognised by their pixels), its heading counts those, no paper table beside
    another dataset's numbers; a reload (a new session) keeps the dataset."""
    from urllib.parse import quote

    from playwright.sync_api import expect

    from fer_core.data.corrections import EXCLUDE, write_corrected_copy

    url, data = ck_server
    held = (data.parent / "trained" / "ck_cnn" / "held_out.txt").read_text().split()
    images = [(str(p.relative_to(data)), p.parent.name, p.name[:4]) for p in sorted(data.rglob("*.png"))]
    learned = [path for path, _label, _group in images if path not in held]
    copy = write_corrected_copy(data, images, {held[0]: EXCLUDE, learned[0]: EXCLUDE}, CK_CLASSES)
    page = open_page(browser, url, f"evaluate?data={quote(str(copy))}", "Reliability diagram")
    kept = len(held) - 1
    assert page.get_by_text(f"measured on its {kept} held-out images", exact=False).count() >= 1
    assert page.get_by_text(f"Measured here on held-out ({kept} images)").count() == 1
    assert page.get_by_text("The paper's Table 4", exact=False).count() == 0
    field = page.get_by_role("textbox", name="Dataset (a folder or CSV)")
    assert field.input_value() == str(copy)
    page.reload()
    expect(page.get_by_role("textbox", name="Dataset (a folder or CSV)")).to_have_value(str(copy), timeout=120_000)
    assert page.get_by_text(f"measured on its {kept} held-out images", exact=False).first.is_visible()
    # The subject pattern typed on the Dataset page survives a reload too.
    page.goto(f"{url}/dataset?data={quote(str(copy))}")
    pattern = page.get_by_role("textbox", name=re.compile("^Subject pattern"))
    pattern.wait_for(timeout=120_000)
    pattern.fill(r"^S01(\d)_")
    pattern.press("Enter")
    page.get_by_text("6 subjects; 0 from", exact=False).first.wait_for(timeout=60_000)
    # The address holds it once the run ends (until then it holds the proposed pattern).
    page.wait_for_function(
        "p => new URLSearchParams(location.search).get('subjects') === p", arg=r"^S01(\d)_", timeout=60_000
    )
    page.reload()
    expect(page.get_by_role("textbox", name=re.compile("^Subject pattern"))).to_have_value(
        r"^S01(\d)_", timeout=120_000
    )
    page.get_by_text("6 subjects; 0 from", exact=False).first.wait_for(timeout=60_000)
    page.close()
