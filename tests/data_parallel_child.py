"""Run by tests/test_data_parallel.py in a process of its own: JAX with two virtual CPU devices
(set before jax is imported, which is why it is a process of its own).

    python tests/data_parallel_child.py DATA OUT

Trains one seeded config on 1 and on 2 devices (and a student of the first on 2), recording the shape of every batch Keras hands
each device during the 2-device fit, and tries the device counts that must be refused. Prints
JSON: both runs' folders, the shards seen, the refusals' messages.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"


def main(data: str, out: str) -> None:
    import keras.src.backend.jax.distribution_lib as jax_distribution

    from fer_core.errors import FerError
    from fer_core.training.config import TrainConfig
    from fer_core.training.loop import train
    from helpers import TINY_RUN

    shards = []
    distribute = jax_distribution.distribute_data_input

    def recording(batch, layout, batch_dim_name):
        placed = distribute(batch, layout, batch_dim_name)
        shards.append(
            {"batch": list(placed.shape), "per_device": [list(s.data.shape) for s in placed.addressable_shards]}
        )
        return placed

    jax_distribution.distribute_data_input = recording  # what Keras' JAX trainer calls for each batch
    settings = {**TINY_RUN, "data": data, "epochs": 3, "seed": 7}
    runs = {}
    for devices in (1, 2):
        count = len(shards)
        runs[devices] = str(
            train(TrainConfig(**settings, devices=devices), run_dir=f"{out}/devices-{devices}", echo=False)
        )
        if devices == 1:
            assert len(shards) == count, "a one-device run must not go through the mesh"
    # A student on the mesh, taught by the one-device model: the teacher predicts outside the mesh.
    from fer_core.training.recipe import describe_teachers

    taught = TrainConfig(**{**settings, "epochs": 1}, devices=2, distill_from=describe_teachers(runs[1], 0.5))
    runs["distilled"] = str(train(taught, run_dir=f"{out}/distilled", echo=False))
    refused = {}
    for devices, batch in (("3", 12), ("2", 7)):
        try:
            train(
                TrainConfig(**{**settings, "batch_size": batch}, devices=int(devices)),
                run_dir=f"{out}/refused-{devices}",
            )
        except FerError as exc:
            refused[devices] = str(exc)
    print(json.dumps({"runs": runs, "shards": shards, "refused": refused}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
