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
    assert result["frame_ms"]["p50"] > 0 and result["frames_per_s"] > 0 and result["detect_ms"]["p50"] > 0
    assert result["frame_ms_detect_every_frame"]["p50"] > 0
    assert result["faces_detected"] == 1  # the benchmark frame is a real detection workload
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
