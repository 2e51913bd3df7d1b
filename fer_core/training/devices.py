"""Where a run trains: the backend's devices, and data parallelism over several of them.

One device is the default on every backend. Several are Keras' own engine: on the JAX backend
(the one where Keras 3 distributes training), `keras.distribution.DataParallel` over a one-axis
`DeviceMesh`. Every device holds all the weights; each step's global batch (`batch_size`) is split
along its first axis, one equal share a device; XLA all-reduces the gradients. Under this SPMD
program the batch-norm statistics are those of the whole global batch, as on one device, so a
seeded run follows the same loss curve on 1 or N devices up to the order of float sums
(tests/test_data_parallel.py measures it).

Two things a mesh needs that one device does not, both handled here:
- every batch must split evenly: the global batch must be a multiple of the device count (refused
  otherwise), the training images are trimmed to a multiple of it (fewer than one image a device
  is dropped), and the selection split is padded with zero-weight copies, which leave its accuracy
  exact (a weighted accuracy), and the validation loss, which Keras averages over all rows, is
  rescaled to the real rows (`real_rows_only`);
- the model and its optimizer must be built inside the distribution's scope, or JAX refuses to mix
  their single-device variables with the mesh's (`distribution_scope`).

Several hosts: each process joins with `keras.distribution.initialize()` when the environment
names a cluster (`KERAS_DISTRIBUTION_NUM_PROCESSES` > 1 with the coordinator's address and the
process id, docs/gpu.md), then sees every device of every host; it feeds its own share of the
images (`local_share`), `batch_size / processes` a step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from dataclasses import dataclass

import numpy as np

from fer_core.errors import FerError

MESH_AXIS = "batch"
CLUSTER_VARIABLE = "KERAS_DISTRIBUTION_NUM_PROCESSES"
# The backend runs launched from the dashboard train on, where it is not the dashboard's own: the
# dashboard serves on TensorFlow while its runs train on JAX, on every GPU (docs/gpu.md).
TRAIN_BACKEND_VARIABLE = "FER_TRAIN_BACKEND"
_joined = False


def join_cluster() -> None:
    """Join the multi-host cluster the environment names (once per process); nothing without one."""
    global _joined
    if _joined or int(os.environ.get(CLUSTER_VARIABLE, "1") or 1) <= 1:
        return
    from fer_core.backend import load_keras

    load_keras().distribution.initialize()
    _joined = True


def _backend_devices() -> list:
    """The devices a mesh can span: JAX's (every host's, in a cluster); none listed elsewhere."""
    from fer_core.backend import load_keras

    if load_keras().backend.backend() != "jax":
        return []
    join_cluster()
    import jax

    return list(jax.devices())


def describe_devices() -> dict:
    """What this process would train on: the backend, how many devices a run can use, their kind
    ("cpu" or the GPU's name) and, in a cluster, how many processes share them."""
    from fer_core.backend import gpu_names, load_keras

    backend = load_keras().backend.backend()
    devices = _backend_devices()
    if devices:
        import jax

        first = devices[0]
        kind = "cpu" if first.platform == "cpu" else first.device_kind
        return {"backend": backend, "count": len(devices), "kind": kind, "processes": jax.process_count()}
    gpus = gpu_names()
    return {"backend": backend, "count": 1, "kind": gpus[0] if gpus else "cpu", "processes": 1}


def training_environment() -> dict:
    """The environment of a launched training process: this one, with KERAS_BACKEND set to
    FER_TRAIN_BACKEND where that is given."""
    backend = os.environ.get(TRAIN_BACKEND_VARIABLE, "").strip()
    return {**os.environ, "KERAS_BACKEND": backend} if backend else dict(os.environ)


def describe_training_devices() -> dict:
    """What a launched run would train on (`describe_devices` in the training process's
    environment): asked of a `fer-core devices` process where its backend is not this one's, once
    per environment (a JAX start takes seconds, and the Train page asks on every rerun and launch)."""
    from fer_core.backend import load_keras

    env = training_environment()
    if env.get("KERAS_BACKEND", load_keras().backend.backend()) == load_keras().backend.backend():
        return describe_devices()
    return dict(_ask_training_process(tuple(sorted(env.items()))))


@functools.lru_cache(maxsize=8)
def _ask_training_process(env: tuple) -> tuple:
    """`fer-core devices --json` run in `env` (its items: the cache key), as sorted items; a
    failure raises FerError, which lru_cache does not keep."""
    import json
    import subprocess
    import sys

    env = dict(env)
    done = subprocess.run(
        [sys.executable, "-m", "fer_core", "devices", "--json"], capture_output=True, text=True, env=env, timeout=300
    )
    if done.returncode:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FerError(f"the training backend {env['KERAS_BACKEND']} cannot start here: {reason}")
    return tuple(sorted(json.loads(done.stdout).items()))


def devices_text(layout: dict) -> str:
    """A layout (`resolve_devices`) or what `describe_devices` found, said in a few words."""
    count = int(layout.get("devices", layout.get("count", 1)))
    kind = layout.get("device_kind", layout.get("kind", "?"))
    where = f"{count} {kind} device{'s' if count != 1 else ''}"
    if layout.get("processes", 1) > 1:
        where += f" on {layout['processes']} hosts"
    if "mesh_shape" in layout:
        where += f", data-parallel ({layout['per_device_batch']} images a device of each batch)"
    return f"{where}, {layout.get('backend', '?')} backend"


def resolve_devices(config, found: dict | None = None):
    """`config` with `devices` a count ("all" resolved) and `layout` recording where it trains:
    backend, devices, their kind, and for several the mesh and each device's share of a batch.
    `found`: what `describe_devices` says in the process that will train (default: this one).

    Raises:
        FerError: more devices than the backend sees, several on a backend that cannot
        distribute, or a batch that does not split evenly over them.
    """
    found = found or describe_devices()
    count = found["count"] if config.devices == "all" else int(config.devices)
    if count > 1 and found["backend"] != "jax":
        raise FerError(
            f"training on {count} devices needs the JAX backend (KERAS_BACKEND=jax); this process runs "
            f"{found['backend']}, which trains on one"
        )
    if count > found["count"]:
        raise FerError(
            f"--devices {count}: the {found['backend']} backend sees {found['count']} device(s) here ({found['kind']})"
        )
    if config.batch_size % count:
        raise FerError(
            f"batch size {config.batch_size} does not split evenly over {count} devices: give a multiple of {count}"
        )
    layout = {"backend": found["backend"], "devices": count, "device_kind": found["kind"]}
    if count > 1:
        layout |= {
            "strategy": "DataParallel",
            "mesh_shape": [count],
            "mesh_axes": [MESH_AXIS],
            "per_device_batch": config.batch_size // count,
            "processes": found["processes"],
        }
    return dataclasses.replace(config, devices=count, layout=layout)


@contextlib.contextmanager
def distribution_scope(devices: int):
    """Inside: Keras' DataParallel over the first `devices` devices (models, optimizers and fits
    made here are distributed); with one device, nothing changes."""
    if devices <= 1:
        yield None
        return
    from fer_core.backend import load_keras

    keras = load_keras()
    mesh = keras.distribution.DeviceMesh(shape=(devices,), axis_names=[MESH_AXIS], devices=_backend_devices()[:devices])
    distribution = keras.distribution.DataParallel(device_mesh=mesh)
    # In a cluster each process feeds its own share (`local_share`); Keras would otherwise ask
    # for a tf.data pipeline to shard itself.
    distribution.auto_shard_dataset = False
    with distribution.scope():
        yield distribution


@dataclass
class FitArrays:
    """What `fit` gets on a mesh: every array's length a multiple of the device count."""

    x_train: np.ndarray
    y_train: np.ndarray
    weights: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray
    val_weights: np.ndarray | None  # zeros on the padding rows; None when nothing was padded
    dropped: int  # training images left out so the epoch's last batch splits
    padded: int  # zero-weight rows added to the selection split


def local_share(fit: FitArrays, processes: int, index: int) -> FitArrays:
    """This process's share in a cluster: every `processes`-th row from `index` of arrays already
    split evenly over all the devices (so every process gets as many rows, and takes as many
    steps; the counts of what was cut and padded stay the whole cluster's)."""
    if processes <= 1:
        return fit

    def share(array):
        return None if array is None else array[index::processes]

    return dataclasses.replace(
        fit,
        **{f.name: share(getattr(fit, f.name)) for f in dataclasses.fields(fit) if f.name not in ("dropped", "padded")},
    )


def split_evenly(x_train, y_train, weights, x_val, y_val, devices: int) -> FitArrays:
    """The arrays cut and padded so every batch, the last one of an epoch included, splits over
    `devices` (see the module's docstring); unchanged on one device."""
    if devices <= 1:
        return FitArrays(x_train, y_train, weights, x_val, y_val, None, 0, 0)
    keep = len(x_train) - len(x_train) % devices
    if keep == 0:
        raise FerError(f"{len(x_train)} training images cannot be shared by {devices} devices")
    padded = -len(x_val) % devices
    copies = np.arange(padded) % len(x_val)  # the first images again (round again on a tiny split)
    val_weights = np.concatenate([np.ones(len(x_val), np.float32), np.zeros(padded, np.float32)])
    return FitArrays(
        x_train[:keep],
        y_train[:keep],
        None if weights is None else weights[:keep],
        np.concatenate([x_val, x_val[copies]]),
        np.concatenate([y_val, y_val[copies]]),
        val_weights if padded else None,
        len(x_train) - keep,
        padded,
    )


def real_rows_only(real_rows: int, padded: int):
    """A callback, first in the list, that makes the validation numbers the real rows' alone. Keras
    weights each batch's mean loss by its row count, padding included, so the loss it reports is
    the real rows' sum over `real_rows + padded`: rescaled. The accuracy is the weighted one the
    training model carries on a mesh (`REAL_ROWS_ACCURACY`, padding weighing zero)."""
    from fer_core.backend import load_keras
    from fer_core.training.recipe import REAL_ROWS_ACCURACY

    keras = load_keras()
    scale = (real_rows + padded) / real_rows

    class RealRowsOnly(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            logs.pop(REAL_ROWS_ACCURACY, None)  # on the training images: the plain accuracy stays
            if f"val_{REAL_ROWS_ACCURACY}" in logs:
                logs["val_accuracy"] = logs.pop(f"val_{REAL_ROWS_ACCURACY}")
            if "val_loss" in logs:
                logs["val_loss"] = float(logs["val_loss"]) * scale

    return RealRowsOnly()
