"""Bad input, crash safety and hostile files: nothing crashes, nothing saved is lost, no code runs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fer_core import FerError
from fer_core.data.images import decode_grayscale, expand_uploads
from helpers import (
    FACE,
    IMAGE_CASES,
    assert_one_line_error,
    cli,
    encode,
    run_cli,
    synthetic_face,
    tiny_config,
    tiny_flags,
)


@pytest.mark.parametrize("name", list(IMAGE_CASES))
def test_image_inputs(name):
    data, expected = IMAGE_CASES[name]
    if isinstance(expected, tuple):
        pixels = decode_grayscale(data, name=name)
        assert pixels.shape == expected and pixels.dtype == np.uint8
    else:
        with pytest.raises(FerError, match=expected) as caught:
            decode_grayscale(data, name=name)
        message = str(caught.value)
        assert message.startswith(name) and "\n" not in message


def test_huge_real_file_is_refused_before_decoding():
    with pytest.raises(FerError, match="over the 1 MB limit"):
        decode_grayscale(b"\xff" * 2_000_000, name="big.jpg", max_bytes=1_000_000)


def test_zip_of_every_case_with_nested_folders_and_escapes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (data, _expected) in IMAGE_CASES.items():
            archive.writestr(f"deep/er/{name}", data)
        archive.writestr("../outside.png", IMAGE_CASES["palette.png"][0])
    results = {}
    for name, data, error in expand_uploads([("all.zip", buffer.getvalue())]):
        if error is None:
            try:
                results[name] = decode_grayscale(data, name=name).shape
            except FerError as exc:
                results[name] = str(exc)
        else:
            results[name] = error
    for name, (_data, expected) in IMAGE_CASES.items():
        got = results[f"all.zip/deep/er/{name}"]
        assert got == expected if isinstance(expected, tuple) else isinstance(got, str)
    assert "escapes" in results["all.zip/../outside.png"]


def test_cli_predict_reports_each_bad_file_and_classifies_the_rest(tiny_run, tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(encode(Image.fromarray(synthetic_face(2, 1)), "PNG"))
    paths = [good]
    for name in ("zero-bytes.jpg", "truncated.jpg", "bomb.png", "cmyk.jpg"):
        path = tmp_path / name
        path.write_bytes(IMAGE_CASES[name][0])
        paths.append(path)
    code, out, err = run_cli("predict", "--model", tiny_run, *paths, "--json")
    assert code == 2 and "Traceback" not in err
    results = {Path(r["file"]).name: r for r in json.loads(out)}
    assert results["good.png"]["error"] is None and len(results["good.png"]["faces"]) == 1
    assert results["cmyk.jpg"]["error"] is None  # convertible, so classified
    for name in ("zero-bytes.jpg", "truncated.jpg", "bomb.png"):
        assert name in results[name]["error"]
    assert len(err.strip().splitlines()) == 3


# ---- model files ---------------------------------------------------------------------------


def _rewrite_keras(source: Path, target: Path, edit) -> None:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for item in original.infolist():
            data = original.read(item)
            if item.filename == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            copy.writestr(item, data)


def test_model_files_that_ask_for_code_are_refused(tmp_path):
    import keras

    from fer_core.artifacts import load_model

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.Flatten()(x)
    lam = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x))
    lam.save(tmp_path / "lambda.keras")
    with pytest.raises(FerError, match="refused"):
        load_model(tmp_path / "lambda.keras")

    from fer_core.models import build_model

    build_model("cnn", num_classes=7, filters=(4, 4, 4), dense_units=4).save(tmp_path / "ok.keras")

    def unknown_class(config):
        config["config"]["layers"][1]["class_name"] = "Backdoor"
        config["config"]["layers"][1]["module"] = "evil.module"
        return config

    _rewrite_keras(tmp_path / "ok.keras", tmp_path / "unknown.keras", unknown_class)
    with pytest.raises(FerError, match="refused|cannot load"):
        load_model(tmp_path / "unknown.keras")


@pytest.mark.parametrize(
    "content, name, message",
    [
        (b"PK\x03\x04 not really a zip", "corrupt.keras", "not a valid .keras file"),
        (b"\x89HDF\r\n", "weights.h5", "only .keras model files"),
        (b"", "empty.keras", "not a valid .keras file"),
    ],
)
def test_bad_model_files(tmp_path, content, name, message):
    from fer_core.artifacts import load_model

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FerError, match=message):
        load_model(path)


def test_model_with_wrong_shapes_is_refused(tmp_path):
    import keras

    from fer_core.artifacts import load_model

    inputs = keras.Input((32, 32, 3))
    wrong = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(inputs)))
    wrong.save(tmp_path / "wrong.keras")
    with pytest.raises(FerError, match="not 48x48x1"):
        load_model(tmp_path / "wrong.keras")


# ---- training: the disk fills up mid-run ------------------------------------------------------


@pytest.mark.trains
def test_disk_full_mid_run_fails_cleanly_and_keeps_the_best_model(folder_dataset, tmp_path, monkeypatch):
    from fer_core.training import callback
    from fer_core.training.loop import train
    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.training.runs import read_run

    real_save = callback.save_model_atomic
    saves = []

    def save_then_fill_the_disk(model, path):
        saves.append(Path(path).name)
        if len(saves) > 2:  # epoch 1's model.keras and checkpoint.keras succeed
            raise OSError(28, "No space left on device")
        real_save(model, path)

    monkeypatch.setattr(callback, "save_model_atomic", save_then_fill_the_disk)
    config = tiny_config(folder_dataset, epochs=3, patience=0)
    with pytest.raises(FerError, match="disk is full"):
        train(config, run_dir=tmp_path / "run", dataset=load_dataset(folder_dataset), echo=False)
    info = read_run(tmp_path / "run")
    assert info.status == "failed" and "disk is full" in info.progress["error"]
    assert load_model(tmp_path / "run" / "model.keras").name == "cnn"  # the saved best model is intact


# ---- property-based: random and mutated bytes -------------------------------------------------

SEED_IMAGES = [encode(FACE, "PNG"), encode(FACE.convert("RGB"), "JPEG"), encode(FACE.convert("P"), "GIF")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=4096),
        st.tuples(st.sampled_from(SEED_IMAGES), st.integers(0, 10_000), st.binary(min_size=1, max_size=16)).map(
            lambda t: t[0][: t[1] % len(t[0])] + t[2] + t[0][t[1] % len(t[0]) + len(t[2]) :]
        ),
    )
)
def test_decoding_never_fails_other_than_with_a_user_error(data):
    try:
        pixels = decode_grayscale(data, name="fuzz")
    except FerError as exc:
        assert str(exc).startswith("fuzz:")
    else:
        assert pixels.ndim == 2 and pixels.dtype == np.uint8


_CSV_ROW = "3," + " ".join(["17"] * 2304) + ",Training"


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.text(max_size=400),
        st.tuples(st.integers(0, len(_CSV_ROW)), st.text(min_size=1, max_size=20)).map(
            lambda t: "emotion,pixels,Usage\n" + _CSV_ROW[: t[0]] + t[1] + _CSV_ROW[t[0] :] + "\n"
        ),
    )
)
def test_csv_parsing_never_fails_other_than_with_a_user_error(tmp_path, text):
    from fer_core.data import load_dataset

    path = tmp_path / "fuzz.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        dataset = load_dataset(path, use_cache=False)
    except FerError as exc:
        assert "\n" not in str(exc)
    else:
        assert dataset.images.shape[1:] == (48, 48) and len(dataset) == len(dataset.labels)


# ---- crash safety: SIGKILL a real training process --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_epochs, extra_delay", [(0, 0.0), (1, 0.0), (2, 0.7)])
def test_sigkill_leaves_a_readable_resumable_run(folder_dataset, tmp_path, kill_after_epochs, extra_delay):
    from fer_core.artifacts import load_model
    from fer_core.training.runs import read_run
    from fer_core.rundir import read_history

    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fer_core", "train", *tiny_flags(folder_dataset, epochs=6, batch_size=4, patience=0)]
        + ["--run-dir", str(run), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if kill_after_epochs == 0 and (run / "progress.json").exists():
            break
        if kill_after_epochs and len(read_history(run)) >= kill_after_epochs:
            break
        time.sleep(0.05)
    time.sleep(extra_delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    json.loads((run / "config.json").read_text())
    json.loads((run / "progress.json").read_text())  # never half-written
    info = read_run(run)
    assert info.status == "interrupted"
    done = len(read_history(run))
    assert done >= kill_after_epochs
    if done == 0:
        code, _out, err = cli("train", "--resume", run)
        assert_one_line_error(code, err, "no completed epoch")
        return
    assert load_model(run / "model.keras").name == "cnn"
    code, out, err = cli("train", "--resume", run, "--quiet")
    assert code == 0, err
    assert [row["epoch"] for row in read_history(run)] == [1, 2, 3, 4, 5, 6]
    assert read_run(run).status == "finished"
    assert not list(run.glob(".*.tmp*"))


def test_a_run_killed_between_its_first_history_row_and_state_resumes(tiny_run, tmp_path):
    """The window the SIGKILL test above hits only sometimes: epoch 1's models and history row are
    written, its state.json is not yet."""
    import shutil

    from fer_core.rundir import read_history, write_history
    from fer_core.training.runs import read_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    first = read_history(run)[:1]
    write_history(run, first)
    (run / "state.json").unlink()
    code, _out, err = cli("train", "--resume", run, "--quiet")
    assert code == 0, err
    history = read_history(run)
    assert [row["epoch"] for row in history] == [1, 2] and history[0] == first[0]
    info = read_run(run)
    assert info.status == "finished" and info.best_val_accuracy == max(r["val_accuracy"] for r in history)


# ---- soak: hundreds of mixed files through the CLI with bounded memory -------------------------


@pytest.mark.slow
def test_cli_soak_hundreds_of_mixed_files(tiny_run, tmp_path):
    files, good = [], set()
    kinds = list(IMAGE_CASES.items())
    for i in range(300):
        if i % 3 == 0:
            name, (data, _expected) = kinds[i % len(kinds)]
            path = tmp_path / f"{i:03d}-{name}"
            path.write_bytes(data)
            if isinstance(_expected, tuple):
                good.add(path.name)
        else:
            path = tmp_path / f"{i:03d}-face.png"
            path.write_bytes(encode(Image.fromarray(synthetic_face(i % 7, i)), "PNG"))
            good.add(path.name)
        files.append(path)
    # A parent of its own, so RUSAGE_CHILDREN is the predict process's peak and no other test's.
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps([str(f) for f in files]))
    wrapper = (
        "import json, resource, subprocess, sys\n"
        f"files = json.load(open({str(listing)!r}))\n"
        "done = subprocess.run([sys.executable, '-m', 'fer_core', 'predict', '--model', sys.argv[1], *files, '--json'],"
        " capture_output=True, text=True)\n"
        "print(json.dumps({'code': done.returncode, 'out': done.stdout, 'err': done.stderr,"
        " 'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    report = json.loads(
        subprocess.run(
            [sys.executable, "-c", wrapper, str(tiny_run)], capture_output=True, text=True, env=env, timeout=600
        ).stdout
    )
    results = json.loads(report["out"])
    assert report["code"] == 2 and len(results) == 300 and "Traceback" not in report["err"]
    classified = {Path(r["file"]).name for r in results if r["error"] is None and r["faces"]}
    assert classified == good
    peak_mb = report["peak_kb"] / 1024
    print(f"CLI soak: 300 files ({len(good)} good) peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 3000
