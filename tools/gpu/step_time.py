"""Training step time on 1 and on N devices, as a ratio: what data parallelism costs or saves on
the machine it runs on. On a CPU the devices are virtual (XLA splits the host into N), so the ratio
says what the mesh's bookkeeping costs, not how GPUs scale (docs/gpu.md says what to expect there).

    .venv/bin/python tools/gpu/step_time.py [--devices 2] [--model cnn] [--batch-size 64] [--steps 30]
        [--precision auto]

Each count runs in its own process (JAX's device count is fixed before jax is imported), on random
48x48 images, timing `--steps` steps after a warm-up epoch that compiles. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child(devices: int, model: str, batch_size: int, steps: int, precision: str) -> dict:
    import numpy as np

    from fer_core.backend import environment, load_keras, resolve_precision
    from fer_core.training.config import TrainConfig
    from fer_core.training.devices import distribution_scope, resolve_devices
    from fer_core.training.recipe import build_training_model

    keras = load_keras()
    config = TrainConfig(
        model=model, data="-", batch_size=batch_size, devices=devices, precision=resolve_precision(precision)
    )
    config = resolve_devices(config)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch_size * steps, 48, 48, 1), dtype=np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, 7, size=len(images)), 7)
    with distribution_scope(config.devices):
        training_model, _ = build_training_model(config)
        training_model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)  # compiles
        start = time.perf_counter()
        training_model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
    env = environment()
    return {
        "devices": devices,
        "ms_per_step": round(1000 * seconds / steps, 1),
        "precision": config.precision,
        "backend": env["backend"],
        "cpu": env.get("cpu"),
        "cores": env.get("cores"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--precision", default="auto", help="as `fer-core train --precision`")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.batch_size, args.steps, args.precision)))
        return 0
    results = []
    for devices in (1, args.devices):
        # JAX's own devices: a GPU machine's GPUs, else the CPU split into --devices virtual ones
        # (the flag only shapes the host platform, so it changes nothing where there are GPUs).
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.devices}"
        env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": flags.strip()}
        command = [sys.executable, __file__, "--child", str(devices), "--model", args.model]
        command += ["--batch-size", str(args.batch_size), "--steps", str(args.steps), "--precision", args.precision]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode:
            sys.exit(f"step_time: {devices} device(s) failed: {done.stderr.strip().splitlines()[-1:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    ratio = results[1]["ms_per_step"] / results[0]["ms_per_step"]
    print(
        json.dumps(
            {"model": args.model, "batch_size": args.batch_size, "runs": results, "ratio": round(ratio, 2)}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
