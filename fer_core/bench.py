"""`fer-core bench`: speed measured on the machine it runs on, fast paths beside naive baselines.

Latency is one face per call (what the live page and a single upload feel); throughput is
evaluation-sized batches; the frame pipeline is the live path on a 640x480 frame with one face;
training compares `fer-core train`'s loop (its callback writing progress, history, checkpoints)
with a plain `model.fit` of the same compiled model on the same data.
"""

from __future__ import annotations

import time

import numpy as np

from fer_core import CLASS_NAMES, IMAGE_SIZE
from fer_core.backend import environment, load_keras
from fer_core.timing import percentiles as _percentiles
from fer_core.timing import timed as _timed


def _models(refs: list[str] | None) -> dict:
    """name -> model: the given references, else every trained model, else fresh registry builds."""
    from fer_core.artifacts import list_trained, load_model, resolve_model
    from fer_core.models import build_model, list_models

    if refs:
        return {resolve_model(r).name: load_model(r) for r in refs}
    trained = list_trained()
    if trained:
        return {name: load_model(name) for name in trained}
    # Speed does not depend on the weights, so untrained builds measure the same thing.
    # FER2013-shaped: the speeds are those of the shipped models' shape.
    return {f"{name} (untrained)": build_model(name, num_classes=len(CLASS_NAMES)) for name in list_models()}


def bench_inference(models: dict, repeats: int = 200, batch: int = 256, batches: int = 8) -> dict:
    """Per model: the fast path (`Classifier`, engine "auto"), the backend's compiled Keras call and
    the naive `model.predict`, one face per call; then batch throughput and the fast path's error."""
    from fer_core.inference import Classifier

    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (1, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
    many = rng.integers(0, 256, (batch * batches, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
    result = {
        "latency_ms": {},
        "keras_compiled_latency_ms": {},
        "baseline_latency_ms": {},
        "latency_speedup": {},
        "engine": {},
        "batch_engine": {},
        "throughput_ips": {},
        "keras_compiled_throughput_ips": {},
        "max_abs_diff_vs_model_call": {},
    }

    def throughput(classify) -> float:
        classify(many[:batch])
        start = time.perf_counter()
        classify(many)
        return round(len(many) / (time.perf_counter() - start), 1)

    for name, model in models.items():
        fast, compiled = Classifier(model), Classifier(model, engine="keras")
        result["engine"][name] = fast.engines[0]
        result["batch_engine"][name] = fast.engines_for(batch)[0]
        result["latency_ms"][name] = _percentiles(_timed(lambda fast=fast: fast(face), repeats))
        result["keras_compiled_latency_ms"][name] = _percentiles(
            _timed(lambda compiled=compiled: compiled(face), repeats)
        )
        naive = max(20, repeats // 5)  # model.predict is slow; fewer samples give the same median
        result["baseline_latency_ms"][name] = _percentiles(
            _timed(lambda model=model: model.predict(face, verbose=0), naive)
        )
        result["latency_speedup"][name] = round(
            result["baseline_latency_ms"][name]["p50"] / max(result["latency_ms"][name]["p50"], 1e-9), 2
        )
        result["throughput_ips"][name] = throughput(fast)
        result["keras_compiled_throughput_ips"][name] = throughput(compiled)
        # Both of the fast path's engines: a few faces (ONNX Runtime) and a large batch (compiled).
        reference = np.asarray(model(many[:batch], training=False))
        result["max_abs_diff_vs_model_call"][name] = float(
            max(np.abs(fast(many[:32]) - reference[:32]).max(), np.abs(fast(many[:batch]) - reference).max())
        )
    return result


# The camera's frame interval the overlay is timed at: "where it looks" runs Grad-CAM on a worker
# thread, which takes the cores between frames; back-to-back frames would leave it none.
CAMERA_FRAME_S = 0.04


def bench_live(model, repeats: int = 100, detector_name: str = "haar", gradcam_model=None) -> dict:
    """The live page's path on a 640x480 frame with one real face moving across it: the detector
    alone on the downscaled copy, then whole frames (detect or track, crop, classify, draw) through
    `fer_core.inference.live.LiveProcessor`, with detection on every frame and at the page's default
    interval; then one and three faces with "where it looks" on and off, frames arriving every
    CAMERA_FRAME_S as from a 25-frame/s camera (with `gradcam_model`, its Grad-CAM overlay too)."""
    import cv2

    from fer_core.inference import Classifier, make_detector
    from fer_core.inference.live import LiveProcessor, LiveSettings
    from fer_core.inference.tracking import LIVE_DETECTION_SIDE
    from fer_core.detection_bench import photo_frame

    frames = [photo_frame([(150 + 2 * (i % 100), 100, 220)]) for i in range(repeats)]
    detector, classifier = make_detector(detector_name, live=True), Classifier(model)
    small = cv2.resize(frames[0], (LIVE_DETECTION_SIDE, LIVE_DETECTION_SIDE * 3 // 4), interpolation=cv2.INTER_AREA)
    small = small if detector.reads_colour else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    detector.detect(small, min_face=45)  # the first call sets up the runtime
    detect = _timed(lambda: detector.detect(small, min_face=45, max_side=LIVE_DETECTION_SIDE), repeats)
    faces_found = len(detector.detect(small, min_face=45, max_side=LIVE_DETECTION_SIDE))

    def frame_times(detect_every: int, clip=frames, looks=False, paced=False, classify=classifier) -> list[float]:
        processor = LiveProcessor(classify, detector, LiveSettings(detect_every=detect_every, looks=looks))
        processor.process(clip[0])  # the first call compiles
        samples, due = [], time.perf_counter()
        for frame in clip:
            if paced:  # wait for the camera's next frame, as a live stream does
                due += CAMERA_FRAME_S
                time.sleep(max(0.0, due - time.perf_counter()))
            start = time.perf_counter()
            processor.process(frame)
            samples.append(time.perf_counter() - start)
        processor.close()
        return samples

    default_every = LiveSettings().detect_every
    every_frame, default = frame_times(1), frame_times(default_every)
    p50 = float(np.percentile(default, 50))
    three = [photo_frame([(40 + i % 60, 60, 150), (250, 250, 150), (470 - i % 60, 90, 150)]) for i in range(repeats)]
    paced = {
        name: {
            "one_face": _percentiles(frame_times(default_every, frames, looks, True, classify)),
            "three_faces": _percentiles(frame_times(default_every, three, looks, True, classify)),
        }
        for name, looks, classify in (
            ("frame_ms_paced", False, classifier),
            ("overlay_frame_ms", True, classifier),
            *((("overlay_gradcam_frame_ms", True, Classifier(gradcam_model)),) if gradcam_model is not None else ()),
        )
    }
    return {
        "detect_ms": _percentiles(detect),
        "frame_ms": _percentiles(default),
        "frame_ms_detect_every_frame": _percentiles(every_frame),
        "frames_per_s": round(1.0 / p50, 1),
        "frame": f"640x480, one 220-px face, detection on a {LIVE_DETECTION_SIDE}-px copy every "
        f"{default_every} frames (tracked between)",
        "faces_detected": faces_found,
        **paced,
        "overlay_kind": "attention" if classifier.gives_attention else "gradcam",
        "overlay_frames": f"one 220-px face, or three of 150 px; a frame every {CAMERA_FRAME_S * 1000:.0f} ms",
    }


def bench_video(model, frames: int = 100, detector_names=None, gradcam_model=None) -> dict:
    """Video files through `fer_core.inference.video.analyze`: frames/s of a 640x480 clip with two
    real faces moving, analysing every frame and every 5th, writing the annotated MP4 as well; with
    the default detector, the same with "where it looks" drawn (`explain`: the model's own map kind,
    and Grad-CAM with `gradcam_model`)."""
    import tempfile
    from pathlib import Path

    import av

    from fer_core.detection_bench import photo_frame
    from fer_core.inference import Classifier, make_detector
    from fer_core.inference.detectors import DEFAULT_DETECTOR, DETECTORS
    from fer_core.inference.video import analyze

    classifier = Classifier(model)
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        with av.open(str(clip), mode="w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
            for k in range(frames):
                image = photo_frame([(60 + 3 * k, 40, 180), (460 - 3 * k, 290, 140)])
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        for name in detector_names or list(DETECTORS):
            detector = make_detector(name)
            for every in (1, 5):
                start = time.perf_counter()
                analyze(clip, classifier, detector, every=every, output=Path(folder) / "out.mp4")
                result[f"{name}, every {every}"] = round(frames / (time.perf_counter() - start), 1)
        explained = {}
        detector = make_detector(DEFAULT_DETECTOR)
        for explainer in (classifier, *((Classifier(gradcam_model),) if gradcam_model is not None else ())):
            kind = "attention" if explainer.gives_attention else "gradcam"
            for every in (1, 5):
                start = time.perf_counter()
                analyze(clip, explainer, detector, every=every, output=Path(folder) / "out.mp4", explain=True)
                explained[f"{DEFAULT_DETECTOR}, every {every}, {kind}"] = round(
                    frames / (time.perf_counter() - start), 1
                )
    return {
        "video_frames_per_s": result,
        "video_explain_frames_per_s": explained,
        "video_clip": f"{frames} frames of 640x480, two faces, annotated MP4 written",
    }


def gradcam_companion(loaded: dict, gradcam_name: str | None):
    """The model Grad-CAM's overlay is timed with besides the live model: none where the live
    model (the first) is that model already."""
    return loaded[gradcam_name] if gradcam_name not in (None, next(iter(loaded))) else None


# Images an epoch in the training comparison. fer-core's loop saves the best model and a resumable
# checkpoint at each epoch's end: a sizeable part of a short epoch, well under 1% of a real one
# (25,838 images), so short epochs would measure the saving, not the loop.
TRAIN_IMAGES = 2048


def bench_training(model_name: str = "cnn", images: int = TRAIN_IMAGES, batch_size: int = 64, rounds: int = 3) -> dict:
    """images/s of fer-core's training loop vs a plain model.fit of the same model and data.

    Both are built and warmed up first, then timed in alternation, `rounds` times two epochs
    each, and each side's median is kept: one timing of each, one after the other, drifted by
    several percent between runs on the 2-core machine (background load, clocks), more than the
    difference being measured.
    """
    keras = load_keras()
    from fer_core.training.recipe import build_training_model
    from fer_core.training.config import TrainConfig
    from fer_core.training.callback import RunCallback
    from fer_core.training.stop_request import StopRequest
    from fer_core.training.state import RunState

    import logging
    import tempfile
    from pathlib import Path

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (images, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, len(CLASS_NAMES), images), len(CLASS_NAMES))
    val = (x[:batch_size], y[:batch_size])
    config = TrainConfig(model=model_name, epochs=1 + 2 * rounds, batch_size=batch_size, patience=0)

    with tempfile.TemporaryDirectory() as folder:
        log = logging.getLogger("fer_core.bench")
        log.addHandler(logging.NullHandler())
        log.propagate = False
        arms = {}
        for arm in ("keras_fit", "fer_core"):
            training_model, model = build_training_model(config)
            callbacks = []
            if arm == "fer_core":
                state = RunState()
                callbacks = [
                    RunCallback(
                        Path(folder), config, model, state, StopRequest(Path(folder)), -(-images // batch_size), log
                    )
                ]
            training_model.fit(
                x, y, batch_size=batch_size, epochs=1, verbose=0, validation_data=val, callbacks=callbacks
            )  # compiles the step
            arms[arm] = (training_model, callbacks)
        rates: dict[str, list[float]] = {arm: [] for arm in arms}
        for round_index in range(rounds):
            first_epoch = 1 + 2 * round_index
            for arm, (training_model, callbacks) in arms.items():
                start = time.perf_counter()
                training_model.fit(
                    x,
                    y,
                    batch_size=batch_size,
                    epochs=first_epoch + 2,
                    initial_epoch=first_epoch,
                    verbose=0,
                    validation_data=val,
                    callbacks=callbacks,
                )
                rates[arm].append(2 * images / (time.perf_counter() - start))
    plain, ours = (float(np.median(rates[arm])) for arm in ("keras_fit", "fer_core"))
    return {
        "train_ips": {"fer_core": round(ours, 1), "keras_fit": round(plain, 1)},
        "train_ratio_vs_keras_fit": round(ours / plain, 3),
        "train_model": model_name,
        "train_images": images,
        "train_rounds": rounds,
    }


def run(
    models: list[str] | None = None,
    repeats: int = 200,
    train_images: int = TRAIN_IMAGES,
    train: bool = True,
    train_models: list[str] | None = None,
    train_rounds: int = 3,
    detection: bool = True,
    data: str | None = None,
) -> dict:
    """Everything `fer-core bench` prints. The training comparison runs for each of `train_models`
    (registry names, default the paper CNN); `train_ips`/`train_ratio_vs_keras_fit` are the first's.
    The live frame is timed with every detector; the detection benchmark pastes `data`'s
    PublicTest faces into its scenes (drawn faces without `data`)."""
    from fer_core.models import get_spec

    names = train_models or ["cnn"]
    for name in names:
        get_spec(name)  # an unknown name fails before minutes of measuring
    loaded = _models(models)
    result = {"environment": environment(), **bench_inference(loaded, repeats=repeats)}
    first = next(iter(loaded.values()))
    from fer_core.inference import Classifier
    from fer_core.inference.detectors import DETECTORS

    # Grad-CAM's overlay timed with the first model that has no attention map (the live model's is
    # its attention, where it has one).
    gradcam_name = next((n for n, m in loaded.items() if not Classifier(m).gives_attention), None)
    result["live"] = {
        name: bench_live(
            first,
            repeats=max(8, repeats // 2),
            detector_name=name,
            gradcam_model=gradcam_companion(loaded, gradcam_name),
        )
        for name in DETECTORS
    }
    result["live_model"] = next(iter(loaded))
    result["live_gradcam_model"] = gradcam_name
    # The clip and the detection timings scale down with `repeats` (a quick check of the keys),
    # and are the full 100 frames and 20 rounds at the default.
    clip_frames = max(10, min(100, repeats // 2))
    result.update(bench_video(first, frames=clip_frames, gradcam_model=gradcam_companion(loaded, gradcam_name)))
    if detection:
        from fer_core.detection_bench import bench_detectors, benchmark_faces

        faces, described = benchmark_faces(data)
        rounds = max(2, min(20, repeats // 10))
        result["detection"] = {"faces_pasted": described, **bench_detectors(faces, repeats=rounds)}
    if train:
        per_model = {name: bench_training(name, images=train_images, rounds=train_rounds) for name in names}
        result.update(per_model[names[0]])
        result["train_ips_per_model"] = {
            name: {**r["train_ips"], "ratio": r["train_ratio_vs_keras_fit"]} for name, r in per_model.items()
        }
    return result
