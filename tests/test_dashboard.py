"""One AppTest per page (parametrized over the app's pages), and a real Launch from the Train page."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from fer_core.training.runs import read_run

from fer_core.training.promote import promote
from helpers import APP, app_pages, tiny_config, wait_until

APP = str(APP)
PAGES = app_pages()  # page file -> navigation title, as app.py declares them
# Each page's heading is its navigation title, except Home's, which names the product.
HEADINGS = {**PAGES, "app_pages/home.py": "FER Studio"}


@pytest.fixture(scope="session")
def tiny_attention_run(tmp_path_factory, folder_dataset):
    from fer_core.data import load_dataset
    from fer_core.training.loop import train

    config = tiny_config(folder_dataset, model="attention_cnn", batch_size=16)
    return train(
        config,
        out=tmp_path_factory.mktemp("att_run"),
        dataset=load_dataset(folder_dataset, use_cache=False),
        echo=False,
    )


@pytest.fixture(scope="module")
def promoted(tiny_run, tiny_attention_run, tmp_path_factory) -> Path:
    """A trained/ folder of two tiny models, promoted once for the module: the pages only read it
    (a test that changes a model works on its own copy)."""
    base = tmp_path_factory.mktemp("dashboard")
    promote(tiny_run, "cnn", dest_root=base / "trained")
    promote(tiny_attention_run, "attention_cnn", dest_root=base / "trained")
    return base


@pytest.fixture
def dashboard(promoted, folder_dataset, tmp_path, monkeypatch) -> Path:
    """The app's environment: the promoted models, the test data, and a runs folder of this test's own."""
    monkeypatch.setenv("FER_TRAINED_DIR", str(promoted / "trained"))
    monkeypatch.setenv("FER_DATA", str(folder_dataset))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    # AppTest's mocked Runtime has no session manager; streamlit-webrtc means to treat "no session
    # info" as a no-op but only catches RuntimeError there. The real server is covered by test_e2e.
    import streamlit_webrtc.component

    monkeypatch.setattr(streamlit_webrtc.component, "get_this_session_info", lambda: None)
    return promoted


def open_page(page: str):
    from streamlit.testing.v1 import AppTest

    # Importing Keras and building models takes seconds: a generous timeout.
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    if page != "app_pages/home.py":
        at.switch_page(page)
        at.run()
    return at


def test_app_declares_every_page_file_and_only_those():
    page_files = {f"app_pages/{p.name}" for p in (Path(APP).parent / "app_pages").glob("*.py")}
    assert set(PAGES) == page_files and len(PAGES) == 9


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_without_exception(page, dashboard):
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == HEADINGS[page]


def test_home_lists_models_with_accuracy(dashboard):
    at = open_page("app_pages/home.py")
    table = at.dataframe[0].value
    assert sorted(table["model"].str.replace(" (default)", "")) == ["attention_cnn", "cnn"]
    assert list(table["accuracy"]) == sorted(table["accuracy"], reverse=True)  # best first, within FER2013
    assert table["accuracy"].between(0, 1).all() and table["flip+zoom TTA"].between(0, 1).all()
    assert any(c.value.startswith("Accuracy and macro-F1 on PublicTest (") for c in at.caption)
    assert [m.value for m in at.markdown if m.value.startswith("**Measured on")] == ["**Measured on FER2013**"]
    default = table["model"][0].replace(" (default)", "")
    assert table["model"][0].endswith(" (default)") and at.selectbox[0].value == default
    other = {"attention_cnn", "cnn"}.difference({default}).pop()
    at.selectbox[0].set_value(other).run()
    at.button[0].click().run()
    assert not at.exception and at.selectbox[0].value == other
    assert json.loads((dashboard / "trained" / "default.json").read_text()) == {"model": other}
    (dashboard / "trained" / "default.json").unlink()  # the module's other tests keep the best as default


def plotly_values(array) -> list:
    """A figure's array as plotly writes it: a list, or {"dtype", "bdata": base64[, "shape"]}."""
    import base64

    if not isinstance(array, dict):
        return list(array)
    flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    shape = [int(n) for n in str(array.get("shape", len(flat))).split(",")]
    return flat.reshape(shape).tolist()


def test_dataset_page_sections(dashboard):
    at = open_page("app_pages/dataset.py")
    assert [s.value for s in at.subheader] == [
        "Class distribution",
        "Sample faces",
        "Mean face per class",
        "Pixel intensities",
        "Blank and near-constant images",
    ]
    assert len(at.get("plotly_chart")) == 2
    at.radio[0].set_value("stacked").run()
    at.radio[1].set_value("percent of split").run()
    assert not at.exception
    # Stacked percent: one bar per split made of its classes, each adding up to 100.
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    totals: dict[str, float] = {}
    for trace in figure["data"]:
        for split, value in zip(plotly_values(trace["x"]), plotly_values(trace["y"])):
            totals[split] = totals.get(split, 0.0) + value
    assert set(totals) == {"Training", "PublicTest"} and all(abs(t - 100) < 1e-6 for t in totals.values()), totals


def test_evaluate_page_matches_fer_core(dashboard, folder_dataset):
    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    at = open_page("app_pages/evaluate.py")
    table, paper = at.dataframe[0].value, at.dataframe[1].value  # measured here; the paper's Table 4
    ours = table.set_index("model")
    assert {"cnn", "attention_cnn", "ensemble of the selected"} <= set(ours.index)
    expected = evaluate([load_model(dashboard / "trained" / "cnn")], load_dataset(folder_dataset), split="PublicTest")
    assert ours.loc["cnn", "accuracy"] == pytest.approx(expected.metrics["accuracy"])
    assert set(paper["accuracy"]) == {0.7941, 0.7276, 0.5519}
    assert any(c.value.startswith("Measured here on PublicTest (") for c in at.caption)
    assert "Reliability diagram" in [s.value for s in at.subheader]
    at.radio[0].set_value("row-normalised").run()
    assert not at.exception
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    [heatmap] = [trace for chart in charts for trace in chart["data"] if trace["type"] == "heatmap"]
    rows = np.asarray(plotly_values(heatmap["z"]))
    assert rows.shape == (7, 7) and np.allclose(rows.sum(axis=1)[rows.sum(axis=1) > 0], 1.0)  # each true class 100%

    [tta] = [box for box in at.selectbox if box.label == "Test-time augmentation"]
    tta.set_value("flip+zoom").run()
    assert not at.exception
    table = at.dataframe[0].value
    row = table[table["model"] == "cnn"].iloc[0]
    zoomed = evaluate(
        [load_model(dashboard / "trained" / "cnn")], load_dataset(folder_dataset), split="PublicTest", tta="flip+zoom"
    )
    assert any(c.value.startswith("Measured here on PublicTest +flip+zoom TTA (") for c in at.caption)
    assert row["accuracy"] == pytest.approx(zoomed.metrics["accuracy"])
    assert row["loss"] == pytest.approx(zoomed.metrics["loss"], abs=1e-5)


def test_a_cancelled_evaluation_leaves_the_page_usable_until_evaluate_is_pressed(dashboard, folder_dataset):
    """A Cancel click reruns the page with the evaluation cancelled for these settings (set here
    as the click sets it): the page says which models were not measured, offers Evaluate, and
    runs nothing until it is pressed; then every model is measured."""
    from fer_core.data import load_dataset

    at = open_page("app_pages/evaluate.py")
    models = tuple(at.multiselect[0].value)
    at.session_state["evaluation_cancelled"] = (models, "PublicTest", "flip", load_dataset(folder_dataset).root)
    [tta] = [box for box in at.selectbox if box.label == "Test-time augmentation"]
    tta.set_value("flip").run()
    assert not at.exception
    [notice] = [info.value for info in at.info if "Evaluation cancelled" in info.value]
    assert all(name in notice for name in models)
    assert not at.dataframe  # nothing measured with flip, so no comparison
    [evaluate_button] = [b for b in at.button if b.label == "Evaluate"]
    evaluate_button.click().run()
    assert not at.exception
    measured = at.dataframe[0].value
    assert set(models) <= set(measured["model"])
    assert any(c.value.startswith("Measured here on PublicTest +flip TTA (") for c in at.caption)
    assert not [info for info in at.info if "Evaluation cancelled" in info.value]


def test_evaluate_page_sees_a_model_replaced_while_the_server_runs(dashboard, folder_dataset, tmp_path, monkeypatch):
    """Streamlit's caches live as long as the server: a model retrained or promoted to the same path
    must be evaluated again, not answered from the old entry (file version in the cache keys)."""
    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    def measured_loss(at):
        table = at.dataframe[0].value
        return table[table["model"] == "cnn"]["loss"].item()

    shutil.copytree(dashboard / "trained", tmp_path / "trained")  # the module's models stay as they are
    monkeypatch.setenv("FER_TRAINED_DIR", str(tmp_path / "trained"))
    before = measured_loss(open_page("app_pages/evaluate.py"))
    model_file = tmp_path / "trained" / "cnn" / "model.keras"
    model = load_model(model_file)
    kernel, bias = model.get_layer("probabilities").get_weights()
    model.get_layer("probabilities").set_weights([kernel, bias + np.arange(7, dtype=np.float32)])
    model.save(model_file)
    after = measured_loss(open_page("app_pages/evaluate.py"))
    expected = evaluate([load_model(model_file)], load_dataset(folder_dataset), split="PublicTest")
    assert after != pytest.approx(before)
    assert after == pytest.approx(expected.metrics["loss"])


def test_explain_page_draws_heatmaps(dashboard):
    at = open_page("app_pages/explain.py")
    captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert sum(c.startswith("Grad-CAM: ") for c in captions) == 2
    assert any(c.startswith("Spatial attention (the paper's §4.1)") for c in captions)
    assert "Colour key: blue = little weight, red = the most" in captions


def launch_tiny_run(at):
    form = {n.label: n for n in at.number_input}
    form["Epochs"].set_value(1)
    form["Batch size"].set_value(8)
    form["Images per split (0 = all)"].set_value(14)
    at.button(key="launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("Launched: ")
    return at.success[0].value.removeprefix("Launched: ")


def wait_until_ended(run_dir: str, seconds: float = 300) -> str:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if read_run(run_dir).status in ("finished", "failed", "stopped"):
                break
        except Exception:
            pass
        time.sleep(1)
    return read_run(run_dir).status


@pytest.mark.slow
def test_launch_runs_to_finished_refuses_a_second_and_relaunches_after(dashboard):
    """The page's process is the training process's parent (as the server is): the finished
    child must not block the next launch."""
    at = open_page("app_pages/train.py")
    assert any("Estimated length" in c.value for c in at.caption), [c.value for c in at.caption]
    assert "Trains on 1 cpu device, tensorflow backend." in [c.value for c in at.caption]
    assert not [s for s in at.selectbox if s.label == "Devices"]  # one device: nothing to choose
    run_dir = launch_tiny_run(at)

    at.button(key="launch").click().run()
    assert "already in progress" in at.error[0].value

    assert wait_until_ended(run_dir) == "finished"
    at = open_page("app_pages/train.py")
    assert not at.exception
    assert any("status **finished**; on 1 cpu device, tensorflow backend" in m.value for m in at.markdown)
    runs_table = at.dataframe[0].value
    assert list(runs_table["status"]) == ["finished"]
    # The estimate now comes from the run just timed on this machine.
    assert any("on this machine" in c.value for c in at.caption), [c.value for c in at.caption]
    second = launch_tiny_run(at)
    assert second != run_dir and wait_until_ended(second) == "finished"


@pytest.mark.trains
def test_any_session_watches_every_run_and_crossval_and_resumes_a_stopped_run(dashboard, folder_dataset):
    """A new session (a reload, another tab) lists every run and cross-validation in the runs
    folder, the one training by default; a run stopped on Stop is resumed by its Resume button
    from its checkpoint and ends finished, its epochs counted once."""
    from fer_core.rundir import CHECKPOINT_FILE, STOP_FILE, read_history
    from fer_core.training.config import TrainConfig
    from fer_core.paths import runs_dir
    from fer_core.training.crossval import crossval_folder, write_crossval_settings

    # A cross-validation whose process ended before its first fold: on the list, stopped.
    folder = crossval_folder("cnn", runs_dir())
    write_crossval_settings(folder, TrainConfig(model="cnn", data=str(folder_dataset)), 2, None)
    at = open_page("app_pages/train.py")
    form = {n.label: n for n in at.number_input}
    form["Epochs"].set_value(400)
    form["Batch size"].set_value(8)
    form["Images per split (0 = all)"].set_value(14)
    form["Early-stopping patience (0 = off)"].set_value(0)
    at.button(key="launch").click().run()
    run_dir = Path(at.success[0].value.removeprefix("Launched: "))
    wait_until((run_dir / CHECKPOINT_FILE).is_file, 180, "an epoch to finish")

    other = open_page("app_pages/train.py")  # a session that launched nothing
    watch = next(s for s in other.selectbox if s.label == "Watch")
    assert watch.value == str(run_dir)  # the one training
    assert set(watch.options) == {f"{run_dir.name} (running)", f"{folder.name} (cross-validation, stopped)"}
    assert set(other.dataframe[0].value["run"]) == {run_dir.name, folder.name}
    next(b for b in other.button if b.label == "Stop").click().run()
    assert wait_until_ended(str(run_dir)) == "stopped"
    stopped_at = len(read_history(run_dir))

    again = open_page("app_pages/train.py")
    assert next(s for s in again.selectbox if s.label == "Watch").value == str(run_dir)
    again.button(key=f"resume-{run_dir.name}").click().run()
    assert not again.exception and not again.error, [e.value for e in again.error]
    # Going on from its checkpoint, then stopped again.
    wait_until(lambda: read_run(run_dir).status == "running", 60, "the resumed run to start")
    wait_until(lambda: len(read_history(run_dir)) > stopped_at, 180, "an epoch of the resumed run")
    (run_dir / STOP_FILE).write_text("stop requested\n")
    assert wait_until_ended(str(run_dir)) == "stopped"
    epochs = [row["epoch"] for row in read_history(run_dir)]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > stopped_at
    # Watching the cross-validation: its own view, its Resume offered.
    again = open_page("app_pages/train.py")
    next(s for s in again.selectbox if s.label == "Watch").set_value(str(folder)).run()
    assert any("stopped with 0 of 2 folds finished" in str(p.proto) for p in again.get("progress"))
    assert [b for b in again.button if b.key == "resume_cv"]


def test_promoting_keeps_the_start_from_model_and_its_frozen_epochs(dashboard, tiny_run, tmp_path, monkeypatch):
    """A promotion adds a model to "Start from": the box keeps the chosen model and the frozen
    epochs, so the next launch is not silently from scratch."""
    from fer_core.paths import runs_dir

    # The module's models stay as they are; this copy lacks the one the run was promoted as.
    shutil.copytree(dashboard / "trained", tmp_path / "trained", ignore=shutil.ignore_patterns("cnn"))
    monkeypatch.setenv("FER_TRAINED_DIR", str(tmp_path / "trained"))
    shutil.copytree(tiny_run, runs_dir() / Path(tiny_run).name)
    at = open_page("app_pages/train.py")
    next(s for s in at.selectbox if s.label == "Model").set_value("attention_cnn").run()
    next(s for s in at.selectbox if s.label == "Start from").set_value("attention_cnn").run()
    next(n for n in at.number_input if n.label == "Frozen-body epochs").set_value(2).run()
    next(t for t in at.text_input if t.label == "Promote as trained/").set_value("cnn-again").run()
    next(b for b in at.button if b.label == "Promote").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Promoted to") for s in at.success)
    start = next(s for s in at.selectbox if s.label == "Start from")
    assert "cnn-again" in start.options and start.value == "attention_cnn"
    assert next(n for n in at.number_input if n.label == "Frozen-body epochs").value == 2


@pytest.mark.slow
def test_the_train_page_offers_the_training_backends_devices_and_launches_on_them(dashboard, monkeypatch):
    """FER_TRAIN_BACKEND=jax: the page stays on TensorFlow, its runs train on JAX, here on two
    virtual CPU devices (a GPU machine's would be its GPUs)."""
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    monkeypatch.setenv("FER_TRAIN_BACKEND", "jax")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    at = open_page("app_pages/train.py")
    assert "Trains on 2 cpu devices, jax backend." in [c.value for c in at.caption]
    assert next(s for s in at.selectbox if s.label == "Devices").value == "all"
    run_dir = launch_tiny_run(at)  # batch 8: 4 images a device
    config = json.loads((Path(run_dir) / "config.json").read_text())
    assert config["devices"] == 2 and config["layout"]["backend"] == "jax" and config["layout"]["per_device_batch"] == 4
    assert wait_until_ended(run_dir) == "finished"
    assert read_run(run_dir).progress["backend"] == "jax"
    at = open_page("app_pages/train.py")
    assert any(
        "on 2 cpu devices, data-parallel (4 images a device of each batch), jax backend" in m.value for m in at.markdown
    ), [m.value for m in at.markdown]


@pytest.mark.parametrize("page", ["app_pages/dataset.py", "app_pages/evaluate.py", "app_pages/explain.py"])
def test_bad_dataset_path_is_an_error_box(page, dashboard, monkeypatch, tmp_path):
    monkeypatch.setenv("FER_DATA", str(tmp_path / "no-such-folder"))
    at = open_page(page)
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error), [e.value for e in at.error]


def test_dataset_of_garbage_csv_is_an_error_box(dashboard, monkeypatch, tmp_path):
    bad = tmp_path / "fer2013.csv"
    bad.write_text("label,data\n1,2\n")
    monkeypatch.setenv("FER_DATA", str(bad))
    at = open_page("app_pages/dataset.py")
    assert not at.exception
    assert "needs the columns emotion,pixels" in at.error[0].value


def test_live_page_controls_configure_the_sessions_processor(dashboard):
    at = open_page("app_pages/live.py")
    sliders = {s.label: s for s in at.slider}
    sliders["Smoothing (0 = off)"].set_value(0.8)
    sliders["Detect every N frames"].set_value(6)
    at.toggle[0].set_value(False)
    at.run()
    assert not at.exception
    processor = at.session_state["live_processor"]
    assert (processor.settings.smoothing, processor.settings.detect_every, processor.settings.show_fps) == (
        0.8,
        6,
        False,
    )
    assert len(processor.classifier.models) == 1
    [ensemble] = [o for o in at.selectbox[0].options if o.startswith("ensemble of the 2 ")]
    at.selectbox[0].set_value(ensemble).run()
    assert at.session_state["live_processor"] is processor and len(processor.classifier.models) == 2
    assert len(at.session_state["live_timeline"]) == 0  # nothing streamed yet


# Each order runs in a fresh interpreter: the crash (TensorFlow, then pylibsrtp) kills a process,
# and only a process that has not imported either yet can show it.
PAGE_ORDERS = {
    "model loaded, then live": ["app_pages/explain.py", "app_pages/live.py"],
    "train, then live": ["app_pages/train.py", "app_pages/evaluate.py", "app_pages/live.py"],
    "live first, then models": [
        "app_pages/live.py",
        "app_pages/explain.py",
        "app_pages/predict.py",
        "app_pages/live.py",
    ],
}
ORDER_SCRIPT = """
import json, sys
from streamlit.testing.v1 import AppTest
import streamlit_webrtc.session_info as info
import streamlit_webrtc.component as component
component.get_this_session_info = lambda: None  # AppTest has no session manager (see the fixture)
at = AppTest.from_file(sys.argv[1], default_timeout=180)
at.run()
seen = []
for page in sys.argv[2:]:
    at.switch_page(page)
    at.run()
    seen.append({"page": page, "exceptions": [str(e.value) for e in at.exception],
                 "tensorflow_loaded": "tensorflow" in sys.modules, "webrtc_loaded": "streamlit_webrtc" in sys.modules})
print("RESULT " + json.dumps(seen))
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", list(PAGE_ORDERS))
def test_pages_in_any_order_do_not_crash_the_server_process(order, dashboard):
    import json
    import subprocess
    import sys

    pages = PAGE_ORDERS[order]
    done = subprocess.run(
        [sys.executable, "-c", ORDER_SCRIPT, APP, *pages],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(APP).parent,
    )
    assert done.returncode == 0, f"exit {done.returncode} (-11 is the segfault): {done.stderr[-2000:]}"
    seen = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert [s["page"] for s in seen] == pages
    assert all(not s["exceptions"] for s in seen), seen
    # The orders exercise the trap for real: TensorFlow is in the process when Live runs after a model page.
    live_after_model = [s for i, s in enumerate(seen) if s["page"].endswith("live.py") and i > 0]
    assert all(s["tensorflow_loaded"] and s["webrtc_loaded"] for s in live_after_model)


@pytest.mark.slow  # imports TensorFlow in a fresh process
def test_the_guard_turns_the_wrong_order_into_a_clear_error():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import tensorflow\nimport dashboard"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(APP).parent,
    )
    assert done.returncode == 1, done.returncode  # an ImportError, not the segfault (-11)
    assert "TensorFlow was imported before dashboard" in done.stderr


@pytest.mark.parametrize(
    "url, blocked",
    [
        ("http://localhost:8501/live", None),
        ("http://127.0.0.1:8501/live", None),
        ("http://[::1]:8501/", None),
        ("http://app.localhost/live", None),
        ("https://fer.example.org/live", None),
        (None, None),
        ("http://192.168.1.20:8501/live", "192.168.1.20"),
        ("http://FER-box:8501/", "fer-box"),
    ],
)
def test_the_live_page_knows_when_browsers_block_the_camera(url, blocked):
    from dashboard.shared import insecure_camera_host

    assert insecure_camera_host(url) == blocked


def test_explain_shows_a_face_opened_from_a_videos_timeline(dashboard):
    """The Video page hands Explain the face at a moment: Explain draws every chosen model's maps
    over it, says where it came from, and goes back to the dataset's faces on request."""
    from streamlit.testing.v1 import AppTest

    from fer_core.data.synthetic import face_frame
    from fer_core.inference.faces import crop_face

    crop = crop_face(face_frame([(100, 80, 200)])[..., 0], (100, 80, 200, 200))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.session_state["explain_face"] = (crop, "clip.mp4, face 1 at 2.00 s (frame 20)", ["attention_cnn"])
    at.switch_page("app_pages/explain.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Opened from Video: clip.mp4, face 1 at 2.00 s (frame 20)" in c.value for c in at.caption)
    assert any("the dataset above is not used here" in c.value for c in at.sidebar.caption)
    captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert "clip.mp4, face 1 at 2.00 s (frame 20)" in captions
    # The model the video was analysed with, over that face; no dataset-or-upload choice beside it.
    assert at.multiselect[0].value == ["attention_cnn"] and not at.radio
    assert sum(c.startswith("Grad-CAM: ") for c in captions) == 1
    at.button(key="drop_video_face").click().run()
    assert "explain_face" not in at.session_state and not at.exception
    assert [r.label for r in at.radio] == ["Face"] and len(at.multiselect[0].value) == 2  # the best ones again
    assert not any("not used here" in c.value for c in at.sidebar.caption)


@pytest.mark.parametrize(
    "message",
    [
        r"the subject pattern ^([^_]+)_ gives 2 subjects (Training, PublicTest); not e.g. _S010_ or S011_002_3.png",
        r"the subject pattern `^(S\d+)_` matches no file name (e.g. `S010_004_1.png`)",
        "a *starred* name, $5 and [a link](x) <b>bold</b> | a cell # and an unmatched ` backtick",
    ],
)
def test_an_error_box_shows_a_message_as_written(message):
    """Streamlit reads an error box as Markdown (CommonMark, as markdown-it reads it here): no
    character of the message turns into markup; code spans stay code."""
    import html
    import re

    from markdown_it import MarkdownIt

    from dashboard.text import said
    from fer_core.words import sentence

    rendered = MarkdownIt("commonmark").render(said(message))
    assert not re.search(r"<(em|strong|a|b|h\d|table)\b", rendered), rendered
    text = html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()
    assert text == sentence(message).replace("`", "") if message.count("`") % 2 == 0 else sentence(message)
    assert rendered.count("<code>") == message.count("`") // 2 * (message.count("`") % 2 == 0)
