"""`fer-core batch`: a corpus of built photos, face crops and videos (with a manifest) in one job:
the same rows as `fer-core predict` / `fer-core video`, each bad input a failed row with its
reason, a rerun that skips what is done, a changed setting refused, a SIGKILL mid-job then a rerun
with every input once, and a summary whose interval widens with fewer files."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from fer_core.errors import FerError

from helpers import (
    assert_one_line_error,
    cli,
    moving_faces_video,
    png_declaring,
    run_cli,
    start_cli,
    synthetic_face,
)

pytestmark = pytest.mark.slow


def write_corpus(root: Path) -> Path:
    """Photos (one and two faces), a video cut into three segments, and every kind of bad input,
    listed in a manifest with participant and condition."""
    import cv2

    from fer_core.data.synthetic import face_frame

    root.mkdir(parents=True)
    rows = []
    for k in range(4):
        faces = [(90 + 30 * k, 110, 160)] if k % 2 == 0 else [(50, 100, 150), (390, 120, 170)]
        cv2.imwrite(str(root / f"photo{k}.jpg"), face_frame(faces, seed=k))
        rows.append((f"photo{k}.jpg", f"P{k % 2 + 1}", "rest"))
    moving_faces_video(root / "interview.mp4", frames=30, fps=10)
    rows.append(("interview.mp4", "P1", "task"))
    (root / "notes.txt").write_text("not a picture")
    (root / "broken.jpg").write_bytes((root / "photo0.jpg").read_bytes()[:400])
    (root / "cut.mp4").write_bytes((root / "interview.mp4").read_bytes()[:3000])
    (root / "bomb.png").write_bytes(png_declaring(20_000, 20_000))
    (root / "empty.png").write_bytes(b"")
    for name in ("notes.txt", "broken.jpg", "cut.mp4", "bomb.png", "empty.png", "gone.jpg"):
        rows.append((name, "P2", "rest"))
    manifest = root / "manifest.csv"
    manifest.write_text("path,participant,condition\n" + "".join(f"{p},{who},{c}\n" for p, who, c in rows))
    return manifest


BAD = {
    "notes.txt": "neither an image nor a video",
    "broken.jpg": "truncated or corrupt",
    "cut.mp4": "the video cannot be read, truncated or corrupt",
    "bomb.png": "limit",
    "empty.png": "empty",
    "gone.jpg": "no such file",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "study")


@pytest.fixture(scope="module")
def local_job(corpus, tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("jobs") / "local"
    code, stdout, stderr = run_cli(
        "batch", "--manifest", corpus, "--out", out, "--model", tiny_run, "--segment-seconds", "1", "--workers", "2"
    )
    return out, code, stdout, stderr


def test_every_bad_input_is_a_failed_row_and_the_job_goes_on(local_job):
    from fer_core import batch

    out, code, stdout, _stderr = local_job
    assert code == 1
    assert stdout.strip().splitlines()[-1].startswith(f"fer-core: {len(BAD)} inputs failed")
    files = batch.load_files(out).set_index("source")
    assert set(files.index) == {*BAD, "interview.mp4", *(f"photo{k}.jpg" for k in range(4))}
    for name, reason in BAD.items():
        assert files.loc[name, "status"] == "failed" and reason in files.loc[name, "error"], files.loc[name, "error"]
        assert "\n" not in files.loc[name, "error"]
    done = files[files["status"] == "done"]
    assert len(done) == 5 and set(done["kind"]) == {"image", "video"}
    assert (out / "files.parquet").is_file() and json.loads((out / "job.json").read_text())["status"] == "finished"


def test_the_rows_are_predicts_and_videos_with_the_manifests_columns(local_job, corpus, tiny_run):
    from fer_core import Recognizer, batch

    out, *_ = local_job
    faces = batch.load(out)
    recognizer = Recognizer(tiny_run)
    classes = list(recognizer.classes)
    for k in range(4):
        expected = recognizer.analyze(corpus.parent / f"photo{k}.jpg")
        got = faces[faces["source"] == f"photo{k}.jpg"].sort_values("face")
        assert [tuple(row) for row in got[["x", "y", "w", "h"]].to_numpy()] == [f.box for f in expected]
        assert list(got["label"]) == [f.label for f in expected]
        np.testing.assert_allclose(got[classes].to_numpy(), [f.vector for f in expected], atol=1e-4)
        assert set(got["participant"]) == {f"P{k % 2 + 1}"} and set(got["condition"]) == {"rest"}
    # The video was cut into three segments of 10 frames that ran apart: its ids are one pass's.
    video = recognizer.analyze_video(corpus.parent / "interview.mp4", every=5)
    got = faces[faces["source"] == "interview.mp4"].reset_index(drop=True)
    assert len(got) == len(video) > 0
    columns = ["frame", "time", "face", "x", "y", "w", "h", "cut", "label"]
    pd.testing.assert_frame_equal(got[columns], video[columns], check_dtype=False)
    np.testing.assert_allclose(got[classes].to_numpy(), video[classes].to_numpy(), atol=1e-4)
    assert set(got["face"]) == {1, 2} and set(got["participant"]) == {"P1"}
    files = batch.load_files(out).set_index("source")
    assert files.loc["interview.mp4", "frames"] == 6 and files.loc["interview.mp4", "participant"] == "P1"


def test_a_rerun_skips_what_is_done_and_other_settings_are_refused(local_job, corpus, tiny_run):
    out, *_ = local_job
    code, stdout, _err = run_cli("batch", "--manifest", corpus, "--out", out, "--model", tiny_run)
    assert code == 1  # the bad inputs are tried again, and fail again
    assert "5 done before" in stdout and f"{len(BAD)} failed" in stdout
    code, _out, err = run_cli("batch", "--manifest", corpus, "--out", out, "--model", tiny_run, "--every", "3")
    assert_one_line_error(code, err, "holds a job with other settings", "every 5 there, 3 here")


def test_a_job_killed_mid_way_completes_on_a_rerun_with_every_input_once(tiny_run, tmp_path):
    from fer_core import batch

    crops = tmp_path / "crops"
    crops.mkdir()
    for k in range(240):
        Image.fromarray(synthetic_face(k % 7, k)).save(crops / f"face{k:03d}.png")
    out = tmp_path / "job"
    args = ("batch", str(crops), "--out", str(out), "--model", str(tiny_run), "--whole-image", "--quiet")
    process = start_cli(*args, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((out / "done").glob("*.parquet"))) < 2:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the job and its worker processes, at once
    process.wait()
    written = len(batch.load_files(out))
    assert 0 < written < 240, "killed mid-way"
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert f"{written} done before" in stdout
    files, faces = batch.load_files(out), batch.load(out)
    assert len(files) == 240 and files["source"].is_unique and (files["status"] == "done").all()
    assert len(faces) == 240 and faces["source"].is_unique  # one face a crop, none twice


def test_the_summary_interval_widens_with_fewer_files(tmp_path):
    """Built job folders: group A of 40 files, group B of 4, with the same share of happy faces."""
    import pyarrow as pa

    from fer_core import batch
    from fer_core.batch import store

    out = tmp_path / "job"
    store.claim(out, {"model": "built"})
    record = json.loads((out / "job.json").read_text())
    record["model"] = {"classes": ["happy", "sad"]}
    (out / "job.json").write_text(json.dumps(record))
    rng = np.random.default_rng(0)
    for group, files in (("A", 40), ("B", 4)):
        for k in range(files):
            labels = rng.choice(["happy", "sad"], size=30, p=[0.3 + 0.4 * (k % 2), 0.7 - 0.4 * (k % 2)])
            source = f"{group}{k}.mp4"
            faces = pa.table({"source": [source] * len(labels), "label": list(labels)})
            files_row = pa.Table.from_pylist([{"source": source, "status": "done", "participant": group}])
            store.write_shard(out, faces, files_row)
    shares = batch.summary(out, by=["participant"]).set_index(["participant", "class"])
    width = {group: shares.loc[(group, "happy"), "high"] - shares.loc[(group, "happy"), "low"] for group in "AB"}
    assert width["B"] > 2 * width["A"] > 0
    for group in "AB":
        assert shares.loc[(group, "happy"), "low"] < shares.loc[(group, "happy"), "share"]
        assert shares.loc[(group, "happy"), "share"] < shares.loc[(group, "happy"), "high"]
    code, stdout, _err = cli("batch", "--summary", out, "--by", "participant", "--json")
    assert code == 0 and len(json.loads(stdout)) == 4
    code, _out, err = cli("batch", "--summary", out, "--by", "condition")
    assert_one_line_error(code, err, "no column condition")


# ---- a real two-node Ray cluster on this machine, loopback addresses only ----


def _ray_node(args: list[str], env: dict, log: Path):
    import subprocess
    import sys

    ray = Path(sys.executable).with_name("ray")
    handle = open(log, "w")
    # Its own process group, ended by its id (never `ray stop`, which ends every Ray by name).
    process = subprocess.Popen(
        [str(ray), "start", "--block", "--num-cpus=1", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
        time.sleep(0.5)
    return process, handle


def _end(process, handle, temp: Path) -> None:
    import subprocess

    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            break
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    handle.close()
    # Ray's servers that left the group: by their id, found by the cluster's own temp folder.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(temp).encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head (127.0.0.2) and a second node (127.0.0.3), one CPU each, token-authenticated."""
    import secrets
    import tempfile

    from helpers import free_port

    logs = tmp_path_factory.mktemp("ray_logs")
    temp = Path(tempfile.mkdtemp(prefix="fr", dir="/tmp"))  # short: Ray's socket paths have a limit
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    port = free_port()
    # Loopback addresses other than 127.0.0.1: Ray swaps a node address of 127.0.0.1 (or an
    # --address naming it) for the machine's outward one as soon as more than one node may join.
    head = _ray_node(
        ["--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"],
        env,
        logs / "head.log",
    )
    nodes = [head]
    try:
        nodes.append(_ray_node([f"--address=127.0.0.2:{port}", "--node-ip-address=127.0.0.3"], env, logs / "node.log"))
        yield f"127.0.0.2:{port}", env
    finally:
        for process, handle in reversed(nodes):
            _end(process, handle, temp)


def _worker_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"MapWorker" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_a_two_node_ray_cluster_gives_the_local_rows_and_survives_a_killed_worker(
    ray_cluster, local_job, corpus, tiny_run, tmp_path, monkeypatch
):
    from fer_core import batch

    address, env = ray_cluster
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED"):
        monkeypatch.setenv(key, env[key])
    out = tmp_path / "ray"
    common = ("--model", tiny_run, "--engine", "ray", "--address", address, "--workers", "2", "--quiet")
    code, stdout, err = run_cli("batch", "--manifest", corpus, "--out", out, "--segment-seconds", "1", *common)
    assert code == 1, err
    assert f"{len(BAD)} failed" in stdout
    key = ["source", "frame", "face"]
    local = batch.load(local_job[0]).sort_values(key).reset_index(drop=True)
    on_ray = batch.load(out).sort_values(key).reset_index(drop=True)
    columns = ["source", "frame", "time", "face", "x", "y", "w", "h", "cut", "label", "participant", "condition"]
    pd.testing.assert_frame_equal(on_ray[columns], local[columns])
    classes = json.loads((out / "job.json").read_text())["model"]["classes"]
    np.testing.assert_allclose(on_ray[classes].to_numpy(), local[classes].to_numpy(), atol=1e-5)
    nodes = {node for row in batch.load_files(out)["node"] for node in str(row).split(",") if node}
    assert len(nodes) == 2, "both nodes analysed inputs"

    # One node's worker killed mid-job: Ray retries, or the rerun finishes; every input once.
    crops = tmp_path / "crops"
    crops.mkdir()
    for k in range(160):
        Image.fromarray(synthetic_face(k % 7, k)).save(crops / f"face{k:03d}.png")
    job = tmp_path / "killed"
    args = ("batch", str(crops), "--out", str(job), "--whole-image", *map(str, common))
    process = start_cli(*args)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((job / "done").glob("*.parquet")):
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    workers = _worker_processes()
    assert workers, "Ray Data's actors are running"
    os.kill(workers[0], signal.SIGKILL)
    _stdout, err = process.communicate(timeout=300)
    if process.returncode != 0:  # the job ended on the lost worker (one line): the rerun goes on
        assert "run the same command again" in err, err
        code, _out, err = run_cli(*args)
        assert code == 0, err
    files, faces = batch.load_files(job), batch.load(job)
    assert len(files) == 160 and files["source"].is_unique and (files["status"] == "done").all()
    assert len(faces) == 160 and faces["source"].is_unique


# ---- the Batch page in a real Streamlit server, driven by Chromium ----


@pytest.mark.e2e
@pytest.mark.parametrize("width", [1400, 800])
def test_the_batch_page_runs_a_job_and_shows_its_results(batch_server, browser, width):
    from playwright.sync_api import expect

    from chromium import SCREENSHOTS, settle

    url, corpus = batch_server
    page = browser.new_page(viewport={"width": width, "height": 2400})
    page.goto(f"{url}/batch")
    field = page.get_by_role("textbox", name=re.compile("^Inputs"))
    field.wait_for(timeout=120_000)
    if width == 1400:  # the wide visit names the manifest on the server, the narrow one brings it as a zip
        field.fill(str(corpus))
        page.get_by_role("textbox", name="Job name").fill("study")
    else:
        page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(str(zipped(corpus)))
        page.get_by_role("textbox", name="Job name").fill("zipped")
    page.get_by_role("button", name="Start").click()
    # Its results appear by themselves when it ends (the earlier job's, shown before, do not count).
    job = "study" if width == 1400 else "zipped"
    picked = page.get_by_role("combobox", name="Job")
    expect(picked).to_have_value(f"{job} (finished)", timeout=240_000)
    page.get_by_text("Failed inputs (6)").wait_for(timeout=120_000)
    page.reload()  # the address names the job: the same one opens
    expect(picked).to_have_value(f"{job} (finished)", timeout=120_000)
    page.get_by_text("Failed inputs (6)").wait_for(timeout=120_000)
    settle(page)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("Share of each emotion")).to_be_visible()
    expect(main.get_by_text("notes.txt").first).to_be_attached()
    assert page.locator('[data-testid="stException"]').count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"batch-{width}.png"), full_page=True)
    page.close()


def zipped(manifest: Path) -> Path:
    """The corpus's folder as a user zips it (the folder itself at the top), beside it."""
    import zipfile

    archive = manifest.parent.with_suffix(".zip")
    if not archive.exists():
        with zipfile.ZipFile(archive, "w") as zip_file:
            for path in sorted(manifest.parent.iterdir()):
                zip_file.write(path, f"{manifest.parent.name}/{path.name}")
    return archive


def test_a_zipped_corpus_is_unpacked_whole_with_its_manifest_or_refused(corpus, tmp_path, monkeypatch):
    import zipfile

    from fer_core.batch import launch

    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    arguments = launch.unpack_inputs(zipped(corpus).read_bytes(), "study")
    folder = launch.inputs_dir() / "study"
    assert arguments == ["--manifest", str(folder / "manifest.csv")]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in corpus.parent.iterdir())
    with pytest.raises(FerError, match="unpacked already"):
        launch.unpack_inputs(zipped(corpus).read_bytes(), "study")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zip_file:
        zip_file.writestr("photo.jpg", (corpus.parent / "photo0.jpg").read_bytes())
        zip_file.writestr("../outside.jpg", b"x")
    with pytest.raises(FerError, match="outside the folder"):
        launch.unpack_inputs(evil.read_bytes(), "evil")
    with pytest.raises(FerError, match="not a readable zip"):
        launch.unpack_inputs(b"not a zip", "plain")
    # Nothing half-written: only the good upload's folder, no staging folder left.
    assert [p.name for p in launch.inputs_dir().iterdir()] == ["study"]


@pytest.fixture(scope="module")
def batch_server(corpus, tiny_run, tmp_path_factory):

    from chromium import dashboard_server
    from fer_core.training.promote import promote

    base = tmp_path_factory.mktemp("batch_e2e")
    promote(tiny_run, "cnn", dest_root=base / "trained")
    with dashboard_server(base, base / "trained", corpus.parent) as (url, _pid):
        yield url, corpus
