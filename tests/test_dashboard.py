"""One AppTest per page (parametrized over the app's pages), and a real Launch from the Train page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fer_core.runs import promote, read_run

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = {
    "pages/home.py": "FER Studio",
    "pages/dataset.py": "Dataset",
    "pages/train.py": "Train",
    "pages/evaluate.py": "Evaluate & compare",
    "pages/explain.py": "Explain",
    "pages/predict.py": "Predict",
}


@pytest.fixture(scope="session")
def tiny_attention_run(tmp_path_factory, folder_dataset):
    from fer_core.data import load_dataset
    from fer_core.training import TrainConfig, train

    config = TrainConfig(model="attention_cnn", data=str(folder_dataset), epochs=1, batch_size=16,
                         model_params={"filters": [8, 16, 16], "dense_units": 16})
    return train(config, out=tmp_path_factory.mktemp("att_run"), dataset=load_dataset(folder_dataset, use_cache=False), echo=False)


@pytest.fixture
def dashboard(tiny_run, tiny_attention_run, folder_dataset, tmp_path, monkeypatch):
    trained = tmp_path / "trained"
    promote(tiny_run, "cnn", dest_root=trained)
    promote(tiny_attention_run, "attention_cnn", dest_root=trained)
    monkeypatch.setenv("FER_TRAINED_DIR", str(trained))
    monkeypatch.setenv("FER_DATA", str(folder_dataset))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def open_page(page: str):
    from streamlit.testing.v1 import AppTest

    # Importing Keras and building models takes seconds: a generous timeout.
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    if page != "pages/home.py":
        at.switch_page(page)
        at.run()
    return at


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_without_exception(page, dashboard):
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == PAGES[page]


def test_home_lists_models_with_accuracy(dashboard):
    at = open_page("pages/home.py")
    table = at.dataframe[0].value
    assert list(table["model"]) == ["attention_cnn", "cnn"]
    assert table["accuracy"].between(0, 1).all()


def test_dataset_page_sections(dashboard):
    at = open_page("pages/dataset.py")
    assert [s.value for s in at.subheader] == ["Class distribution", "Sample faces", "Mean face per class",
                                               "Pixel intensities", "Blank and near-constant images"]
    assert len(at.get("plotly_chart")) == 2
    at.radio[0].set_value("stacked").run()
    at.radio[1].set_value("percent of split").run()
    assert not at.exception


def test_evaluate_page_matches_fer_core(dashboard, folder_dataset):
    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    at = open_page("pages/evaluate.py")
    table = at.dataframe[0].value
    ours = table[table["source"] == "FER Studio (measured)"].set_index("model")
    assert {"cnn", "attention_cnn", "ensemble of the selected"} <= set(ours.index)
    expected = evaluate([load_model(dashboard / "trained" / "cnn")], load_dataset(folder_dataset), split="PublicTest")
    assert ours.loc["cnn", "accuracy"] == pytest.approx(expected.metrics["accuracy"])
    assert set(table[table["source"] != "FER Studio (measured)"]["accuracy"]) == {0.7941, 0.7276, 0.5519}
    assert "Reliability diagram" in [s.value for s in at.subheader]
    at.radio[0].set_value("row-normalised").run()
    assert not at.exception


def test_explain_page_draws_heatmaps(dashboard):
    at = open_page("pages/explain.py")
    captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert captions.count("Grad-CAM") == 2 and "spatial attention (§4.1)" in captions


@pytest.mark.slow
def test_launch_runs_to_finished_and_refuses_a_second(dashboard):
    at = open_page("pages/train.py")
    form = {n.label: n for n in at.number_input}
    form["Epochs"].set_value(1)
    form["Batch size"].set_value(8)
    form["Images per split (0 = all)"].set_value(14)
    at.button(key="FormSubmitter:launch-Launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("Launched: ")
    run_dir = at.success[0].value.removeprefix("Launched: ")

    at.button(key="FormSubmitter:launch-Launch").click().run()
    assert "already in progress" in at.error[0].value

    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if read_run(run_dir).status in ("finished", "failed", "stopped"):
                break
        except Exception:
            pass
        time.sleep(1)
    assert read_run(run_dir).status == "finished"
    at = open_page("pages/train.py")
    assert not at.exception
    assert any("status **finished**" in m.value for m in at.markdown)
    runs_table = at.dataframe[0].value
    assert list(runs_table["status"]) == ["finished"]
