"""One face through ONNX Runtime: the graph fer_core.onnx_graph writes against tf2onnx's, side by side.

    python tools/onnx_writers.py [--models cnn,attention_cnn,vgg_fer,resnet50] [--rounds 12] [--calls 100]
    python tools/onnx_writers.py --batches 64,256    # our graph against the compiled Keras call

Writes both graphs of each trained model to a temporary folder, checks both against `model(x)`
(a graph that differs by 1e-4 or more is reported and not timed), then times one-face calls in
interleaved rounds (A, B, A, B, ...) so that the machine's drift (large on a shared 2-core VM)
falls on both alike; prints each side's median of round medians, the range of the rounds, and the
time each writer took. TensorFlow backend (tf2onnx needs it).

With --batches, instead: images/s of the fast path's ONNX call (`onnx_engine.onnx_call`) against
`Classifier(model, engine="keras")` at each batch size, median of 3 alternating rounds of 4 batches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="cnn,attention_cnn,vgg_fer,resnet50")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--batches", help="compare batch throughput at these sizes (comma-separated)")
    args = parser.parse_args()
    if args.batches:
        compare_batches(args.models.split(","), [int(size) for size in args.batches.split(",")])
        return

    import onnx
    import onnxruntime

    from fer_core.artifacts import load_model
    from fer_core.inference.onnx_graph import keras_to_onnx

    folder = Path(tempfile.mkdtemp(prefix="onnx-writers-"))
    face = np.random.default_rng(0).integers(0, 256, (1, 48, 48, 1)).astype(np.float32)
    probe = np.random.default_rng(7).integers(0, 256, (16, 48, 48, 1)).astype(np.float32)
    print("| model | fer_core.onnx_graph p50 (rounds) | tf2onnx p50 (rounds) | ratio | writing: ours / tf2onnx |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        model = load_model(name)
        expected = np.asarray(model(probe, training=False))
        sessions, seconds, inexact = [], [], {}
        for writer in ("chain", "tf2onnx"):
            path = folder / f"{name}.{writer}.onnx"
            start = time.perf_counter()
            if writer == "chain":
                onnx.save(keras_to_onnx(model), str(path))
            else:
                model.export(str(path), format="onnx", verbose=False)
            seconds.append(time.perf_counter() - start)
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feed = session.get_inputs()[0].name
            difference = np.abs(session.run(None, {feed: probe})[0] - expected).max()
            if not difference < 1e-4:
                inexact[len(sessions)] = f"inexact: differs from model(x) by {difference:.2g}"
            sessions.append((session, feed))
        rounds = [[], []]
        for session, feed in sessions:
            for _ in range(args.calls):
                session.run(None, {feed: face})
        for _ in range(args.rounds):
            for side, (session, feed) in enumerate(sessions):
                if side in inexact:
                    continue
                samples = []
                for _ in range(args.calls):
                    start = time.perf_counter()
                    session.run(None, {feed: face})
                    samples.append(time.perf_counter() - start)
                rounds[side].append(1000 * float(np.median(samples)))
        cells = [
            inexact.get(side) or f"{np.median(r):.2f} ms ({min(r):.2f}-{max(r):.2f})" for side, r in enumerate(rounds)
        ]
        ratio = f"{np.median(rounds[0]) / np.median(rounds[1]):.3f}" if not inexact else "-"
        print(f"| {name} | {cells[0]} | {cells[1]} | {ratio} | {seconds[0]:.2f} s / {seconds[1]:.2f} s |")


def compare_batches(names: list[str], sizes: list[int]) -> None:
    from fer_core.artifacts import load_model
    from fer_core.inference import Classifier
    from fer_core.inference.onnx_engine import onnx_call

    rng = np.random.default_rng(0)
    print("| model | batch | ONNX Runtime (our graph), images/s | compiled Keras call, images/s |")
    print("|---|---|---|---|")
    for name in names:
        model = load_model(name)
        sides = {"onnx": onnx_call(model), "keras": Classifier(model, engine="keras")}
        if sides["onnx"] is None:
            print(f"| {name} | | no ONNX path here | |")
            continue
        for size in sizes:
            faces = rng.integers(0, 256, (size, 48, 48, 1)).astype(np.float32)
            rates = {side: [] for side in sides}
            for call in sides.values():
                call(faces)  # compile / warm up
            for _ in range(3):
                for side, call in sides.items():
                    start = time.perf_counter()
                    for _ in range(4):
                        call(faces)
                    rates[side].append(4 * size / (time.perf_counter() - start))
            print(f"| {name} | {size} | {np.median(rates['onnx']):.0f} | {np.median(rates['keras']):.0f} |")


if __name__ == "__main__":
    main()
