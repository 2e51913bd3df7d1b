"""What tests share: synthetic FER-like data, small model sizes, the CLI in a subprocess, odd
image files, and the dashboard's page list (read from app.py, so a page added there is tested).

Test modules import from here, never from conftest.py (fixtures only) or from each other.
"""

from __future__ import annotations

import ast
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from fer_core import CLASS_NAMES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP = PROJECT_ROOT / "app.py"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "fer2013"
PER_CLASS = 6  # images per class per split in the synthetic folder dataset


def synthetic_face(label: int, index: int, size: int = 48) -> np.ndarray:
    """A face-like 48x48 uint8 image whose class is learnable: a bright bar at a class-specific row."""
    rng = np.random.default_rng(1000 * label + index)
    yy, xx = np.mgrid[0:size, 0:size]
    face = 90 + 60 * np.exp(-(((xx - size / 2) / (size / 3)) ** 2 + ((yy - size / 2) / (size / 2.4)) ** 2))
    face += rng.normal(0, 12, (size, size))
    row = 6 + label * 5
    face[row : row + 3, 8:40] = 235
    return np.clip(face, 0, 255).astype(np.uint8)


def write_folder_dataset(
    root: Path,
    per_class: int = PER_CLASS,
    prefixes: bool = True,
    class_folders=CLASS_NAMES,
    splits=(("train", "Training"), ("test", "PublicTest")),
) -> Path:
    import cv2

    for folder, usage in splits:
        for label, name in enumerate(class_folders):
            target = root / folder / name
            target.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                stem = f"{usage}_{label * 100 + i}" if prefixes else f"img_{label * 100 + i}"
                cv2.imwrite(
                    str(target / f"{stem}.png"),
                    synthetic_face(
                        CLASS_NAMES.index(name) if name in CLASS_NAMES else label,
                        i + (0 if usage == "Training" else 50),
                    ),
                )
    return root


def csv_text(rows, header="emotion,pixels,Usage") -> str:
    lines = [header]
    for label, pixels, usage in rows:
        lines.append(f"{label},{' '.join(str(int(v)) for v in np.ravel(pixels))},{usage}")
    return "\n".join(lines) + "\n"


def start_cli(*args, **kwargs) -> subprocess.Popen:
    """The real command started in a fresh process, its output piped (for a test that acts on it
    while it runs: stops it, reads it)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "fer_core", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run_cli(*args):
    """The real command in a fresh process, as a user or another tool runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "fer_core", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
    return done.returncode, done.stdout, done.stderr


def cli(*args):
    """The command run in this process: the parser and handlers `fer-core` runs, without a fresh
    process's start-up (importing TensorFlow is most of a short command's time). For what a
    command does; `run_cli` where the process itself is the point (its whole stderr, a kill)."""
    import contextlib
    import io

    from fer_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit:  # argparse's refusals
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fer-core: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


# The model the tests train: the registry's cnn at the smallest widths (a second an epoch on the
# synthetic folder, 2-core CPU). float32 whatever the processor: "auto" picks bf16 where the CPU
# has it, and the suite should compute alike on every machine.
TINY_RUN = {
    "model": "cnn",
    "epochs": 1,
    "batch_size": 8,
    "precision": "float32",
    "model_params": {"filters": [8, 16, 32], "dense_units": 32},
}


def tiny_config(data, **settings):
    """A `TrainConfig` for a tiny run on `data`; `settings` override any field of TINY_RUN or the config."""
    from fer_core.training.config import TrainConfig

    return TrainConfig(**{**TINY_RUN, "data": str(data), **settings})


def tiny_flags(data, **settings) -> list[str]:
    """`fer-core train`'s flags for the run `tiny_config(data, **settings)` describes."""
    fields = {**TINY_RUN, "data": str(data), **settings}
    flags = []
    for name, value in fields.items():
        if name == "model_params":
            for param, setting in value.items():
                flags += ["--param", f"{param}={json.dumps(setting, separators=(',', ':'))}"]
        else:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


# Small widths keep the suite fast; the architecture (layers, names, wiring) is the registry's.
SMALL = {
    "cnn": {"filters": (8, 16, 32), "dense_units": 16},
    "attention_cnn": {"filters": (8, 16, 32), "dense_units": 16},
    "resnet50": {"image_size": 32},
    "vgg_fer": {"filters": (8, 16, 16, 32), "dense_units": 16},
}


def raw_faces(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48, 1)).astype("float32")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels: a decompression bomb's shape."""

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


FACE = Image.fromarray(synthetic_face(3, 0)).resize((64, 80))
_exif = Image.Exif()
_exif[0x0112] = 6  # "rotate 90 CW to display"

# name -> (bytes, expected decoded shape or the error it must raise)
IMAGE_CASES = {
    "zero-bytes.jpg": (b"", "empty"),
    "text.jpg": (b"just some text, not a picture", "not an image"),
    "document.png": (b"%PDF-1.7\n1 0 obj <<>> endobj\n", "not an image"),
    "page.jpg": (b"<!doctype html><html><body>hi</body></html>", "not an image"),
    "truncated.jpg": (encode(FACE.convert("RGB"), "JPEG")[:300], "truncated or corrupt"),
    "truncated.png": (encode(FACE, "PNG")[:150], "truncated or corrupt"),
    "bomb.png": (png_declaring(100_000, 100_000), "decompression bomb|Mpx limit"),
    "over-limit.png": (png_declaring(8000, 8000), "Mpx limit"),
    "sixteen-bit.png": (
        encode(Image.fromarray((np.arange(80 * 64).reshape(80, 64) * 9).astype(np.uint16)), "PNG"),
        (80, 64),
    ),
    "cmyk.jpg": (encode(FACE.convert("CMYK"), "JPEG"), (80, 64)),
    "palette.png": (encode(FACE.convert("P"), "PNG"), (80, 64)),
    "alpha.png": (encode(FACE.convert("RGBA"), "PNG"), (80, 64)),
    "animated.gif": (
        encode(FACE.convert("P"), "GIF", save_all=True, append_images=[FACE.rotate(90).convert("P")]),
        (80, 64),
    ),
    "exif-rotated.jpg": (encode(FACE.convert("RGB"), "JPEG", exif=_exif.tobytes()), (64, 80)),
    "webp.webp": (encode(FACE.convert("RGB"), "WEBP"), (80, 64)),
    "bitmap.bmp": (encode(FACE, "BMP"), (80, 64)),
}


def app_pages() -> dict[str, str]:
    """{page file: navigation title} for every `st.Page(...)` in app.py, in the app's order."""
    pages = {}
    for node in ast.walk(ast.parse(APP.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page":
            title = next(k.value.value for k in node.keywords if k.arg == "title")
            pages[node.args[0].value] = title
    return pages


# Models whose tests take half a minute each on the 2-core CPU even at SMALL sizes (ResNet50's
# graph: building and training a batch).
SLOW_MODELS = {"resnet50"}


def model_params(names) -> list:
    """`names` for @pytest.mark.parametrize, the SLOW_MODELS among them marked slow."""
    import pytest

    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_MODELS else name for name in names]


def write_video(path, frames, fps: int = 10, codec: str = "libx264") -> Path:
    """An MP4 of the given (H, W, 3) uint8 BGR frames, as a phone or camera would hand one over."""
    import av

    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_faces_video(path, frames: int = 30, fps: int = 10) -> Path:
    """Two drawn faces crossing a 640x480 scene without meeting: face 1 (the larger) moves right
    along the top, face 2 left along the bottom, each turning back after 50 frames."""
    from fer_core.data.synthetic import face_frame

    def step(k: int) -> int:
        return k % 100 if k % 100 <= 50 else 100 - k % 100

    images = [
        face_frame([(60 + 8 * step(k), 40, 180), (460 - 8 * step(k), 270, 140)], seed=k, mouth_open=(k % 10) / 9)
        for k in range(frames)
    ]
    return write_video(path, images, fps=fps)


def wait_until(condition, seconds: float, what: str, every: float = 0.5) -> None:
    """Poll `condition()` until it holds; fail after `seconds`, naming what was waited for."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:g} s for {what}"
        time.sleep(every)


def free_port() -> int:
    """A TCP port nothing listens on now, for a test's own server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_dashboard(process, log) -> None:
    """End a server `start_dashboard` started (a kill after 10 s) and close its log."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def start_dashboard(base: Path, trained: Path, data: Path):
    """A real `streamlit run app.py` on a free port, its folders under `base`, once healthy:
    (process, url, log file). The caller stops the process and closes the log."""
    import time
    import urllib.request

    import pytest

    port = free_port()
    env = {
        **os.environ,
        "FER_TRAINED_DIR": str(trained),
        "FER_DATA": str(data),
        "FER_RUNS_DIR": str(base / "runs"),
        "FER_CACHE_DIR": str(base / "cache"),
    }
    log = open(base / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
        + ["--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=APP.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return process, url, log
        except OSError:
            time.sleep(0.3)
    process.kill()
    log.close()
    pytest.fail(f"streamlit did not start: {(base / 'server.log').read_text()[-2000:]}")
