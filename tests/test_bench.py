"""`fer-core bench`: the JSON keys other tools rely on, with real (small) measurements."""

from __future__ import annotations

import json

import pytest

from fer_core.cli import main


@pytest.mark.slow
def test_bench_json_keys(tiny_run, capsys):
    assert (
        main(
            [
                "bench",
                "--models",
                str(tiny_run),
                "--repeats",
                "5",
                "--train-images",
                "32",
                "--train-rounds",
                "2",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    name = tiny_run.name
    for key in ("latency_ms", "baseline_latency_ms"):
        assert result[key][name]["p50"] > 0 and result[key][name]["p95"] >= result[key][name]["p50"]
    assert result["throughput_ips"][name] > 0
    assert result["max_abs_diff_vs_model_call"][name] < 1e-4  # the fast path computes the same function
    assert result["batch_engine"][name] == "keras"  # large batches: the compiled call, whatever one face uses
    from fer_core.inference.detectors import DETECTORS

    assert set(result["live"]) == set(DETECTORS)  # the live frame timed with every detector
    for live in result["live"].values():
        assert live["frame_ms"]["p50"] > 0 and live["frames_per_s"] > 0 and live["detect_ms"]["p50"] > 0
        assert live["frame_ms_detect_every_frame"]["p50"] > 0
        assert live["faces_detected"] == 1  # the benchmark frame is a real detection workload
        for timed in ("frame_ms_paced", "overlay_frame_ms"):  # "where it looks" beside the plain frame
            assert all(
                live[timed][faces]["p95"] >= live[timed][faces]["p50"] > 0 for faces in ("one_face", "three_faces")
            )
        assert live["overlay_kind"] == "gradcam"  # the tiny cnn has no attention map
    assert set(result["video_frames_per_s"]) == {f"{d}, every {n}" for d in DETECTORS for n in (1, 5)}
    assert all(rate > 0 for rate in result["video_frames_per_s"].values())
    assert set(result["video_explain_frames_per_s"]) == {"retinaface, every 1, gradcam", "retinaface, every 5, gradcam"}
    detection = result["detection"]
    assert detection["faces_pasted"] == "96 drawn faces"
    for name in DETECTORS:
        found = detection[name]
        assert 0 < found["faces_found"] <= found["faces"] == 2 + 2 * 4 * 12  # two photos, two faces a scene
        assert found["photos"]["astronaut"].startswith("1 of 1")  # a real photo's face
        assert found["frame_ms"]["p50"] > 0 and found["empty_scenes"] == 12
        assert set(found["crowd"]) == {"close", "cut", "small"}  # the crowd's cases, each "N of M"
        assert all(share.split(" of ")[1] == str(total) for share, total in zip(found["crowd"].values(), (6, 24, 8)))
    for neural in ("retinaface", "blazeface"):
        crowd = detection[neural]["crowd"]
        assert int(crowd["close"].split()[0]) >= 4 and int(crowd["cut"].split()[0]) >= 4  # the photos' faces
        assert detection[neural]["phantoms_in_empty_scenes"] == 0
        assert detection[neural]["phantoms_in_crowd_scenes"] == 0  # the margins box nothing but faces
    assert result["train_ratio_vs_keras_fit"] > 0 and result["train_rounds"] == 2
    assert result["train_ips_per_model"]["cnn"]["ratio"] == result["train_ratio_vs_keras_fit"]
    assert {"backend", "keras", "cores", "cpu"} <= set(result["environment"])


@pytest.mark.parametrize("flag", ["--repeats", "--train-images", "--train-rounds"])
def test_bench_refuses_bad_numbers(flag, capsys):
    assert main(["bench", flag, "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_bench_refuses_an_unknown_training_model(capsys):
    assert main(["bench", "--train-models", "cnn,nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_the_detection_benchmark_counts_hits_and_phantoms_by_its_rule():
    from fer_core.detection_bench import match

    truth = [(100, 100, 80, 80), (300, 100, 40, 40)]
    # inside and of a similar size: found; too large for the second: a phantom; far away: a phantom
    found = [(110, 105, 70, 70), (250, 50, 160, 160), (500, 400, 50, 50)]
    assert match(found, truth) == (1, 2)
    assert match([(110, 105, 70, 70), (112, 104, 70, 70)], truth[:1]) == (1, 1)  # one face found once
    assert match([], truth) == (0, 0)


@pytest.mark.parametrize("count", ["-1", "2"])
def test_bench_refuses_a_batch_corpus_too_small_to_measure_once_started(count, capsys):
    assert main(["bench", "--batch-only", "--batch-inputs", count]) == 2
    assert "--batch-inputs must be > 2" in capsys.readouterr().err
