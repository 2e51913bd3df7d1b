"""The shipped training-speed prior: how fast `fer-core train` trains each model at its default
settings, per precision, on the processor kinds this machine can stand for. The launch's estimate
(fer_core.training.estimate) falls back on it where a machine has no timed run of its own.

    python tools/speed_prior.py --data ../shared/fer2013 [--images 512] [--epochs 2]

Each entry is a real run, `fer-core train --limit IMAGES --epochs EPOCHS`, timed as every run
times itself (its training images over the median epoch after the first). On a CPU with AVX-512
the runs are made twice: as it is, and with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2), which
stands for a processor with AVX2 only (TensorFlow's own kernels are built for AVX2 at most) at
this one's clock and caches: a rough prior, said so where it is used. Only the precision `auto`
picks there (float32) is timed for that kind. Writes fer_core/training/speed_prior.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core.backend import SPEED_FLAGS, cpu_flags  # noqa: E402
from fer_core.fileio import read_json, write_json_atomic  # noqa: E402
from fer_core.models import MODEL_NAMES  # noqa: E402
from fer_core.training.estimate import SPEED_PRIOR, images_per_second  # noqa: E402

AVX2_ONLY = ["avx2"]


def kinds() -> list[tuple[list[str], dict, list[str]]]:
    """(the processor features a kind has, the environment that makes this CPU stand for it, its precisions)."""
    native = sorted(set(SPEED_FLAGS) & cpu_flags())
    precisions = ["float32", *(["mixed_bfloat16"] if {"avx512_bf16", "amx_bf16"} & set(native) else [])]
    found = [(native, {}, precisions)]
    if "avx512f" in native:
        found.append((AVX2_ONLY, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, ["float32"]))
    return found


def timed_run(model: str, precision: str, env: dict, data: str, images: int, epochs: int, folder: Path) -> dict:
    command = [sys.executable, "-m", "fer_core", "train", "--model", model, "--data", data, "--precision", precision]
    command += ["--limit", str(images), "--epochs", str(epochs), "--run-dir", str(folder), "--quiet"]
    done = subprocess.run(
        command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"{model} {precision}: {done.stderr.strip().splitlines()[-1:]}")
    progress = read_json(folder / "progress.json")
    return {
        "images_per_second": round(images_per_second(folder, progress), 2),
        "train_images": progress["train_images"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--images", type=int, default=512, help="images per split (--limit)")
    parser.add_argument("--epochs", type=int, default=2, help="the first compiles; the rest are timed")
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    args = parser.parse_args()
    entries = []
    with tempfile.TemporaryDirectory(prefix="fer-speed-prior-") as tmp:
        for flags, env, precisions in kinds():
            for precision in precisions:
                for model in args.models.split(","):
                    folder = Path(tmp) / f"{model}-{precision}-{'-'.join(flags)}"
                    timed = timed_run(model, precision, env, args.data, args.images, args.epochs, folder)
                    entry = {"model": model, "precision": precision, "cpu_flags": flags, "cores": os.cpu_count()}
                    entry |= {**timed, "epochs": args.epochs, "stands_in": env.get("ONEDNN_MAX_CPU_ISA")}
                    print(json.dumps(entry), flush=True)
                    entries.append(entry)
                    _write(entries, args)  # after each run: a run cut short keeps what was measured
    return 0


def _write(entries: list[dict], args) -> None:
    from importlib.metadata import version

    write_json_atomic(
        SPEED_PRIOR,
        {
            "cpu": _cpu_name(),
            "versions": {name: version(name) for name in ("keras", "tensorflow")},
            "command": f"python tools/speed_prior.py --images {args.images} --epochs {args.epochs}",
            "runs": entries,
        },
    )


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
