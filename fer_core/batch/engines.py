"""Who runs the units: `local` (worker processes on this machine, each holding one Recognizer) or
`ray` (Ray Data over the units: `map_batches` with a class holding one Recognizer per actor, a
pool of `--workers` actors, on an existing cluster or an embedded one). Both yield each unit's result as it completes; the job
(`job.run_job`) writes them, so the rows are the same whichever engine ran them, and only the
machine that owns the output folder writes it (workers need the inputs, not the folder).

We use a process pool rather than Ray for the embedded default: it needs nothing beyond the
standard library and no servers of its own; Ray is an optional extra for more than one machine.
"""

from __future__ import annotations

import os
import pickle
import socket
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from fer_core.batch.worker import BatchWorker, Settings
from fer_core.errors import FerError

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'fer-studio[ray]'"

_worker: BatchWorker | None = None  # this worker process's, made once by _start_worker


def _start_worker(settings: Settings) -> None:
    global _worker
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _worker = BatchWorker(settings)


def _work(unit: dict) -> dict:
    result = _worker(unit)
    result["node"] = socket.gethostname()
    result["worker"] = os.getpid()
    return result


def run_local(units, settings: Settings, workers: int, stopped):
    """Each unit's result, as the `workers` processes finish them; at most two units a worker in
    flight, so memory does not grow with the corpus; `stopped()` true stops handing out units.

    Raises:
        FerError: a worker process died (the units done so far are kept; a rerun goes on).
    """
    import multiprocessing

    units = iter(units)
    # spawn, never fork: a forked copy of a process that has imported TensorFlow can hang.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(settings,)) as pool:
        pending: set = set()
        exhausted = False
        while True:
            while not exhausted and not stopped() and len(pending) < 2 * workers:
                unit = next(units, None)
                if unit is None:
                    exhausted = True
                else:
                    pending.add(pool.submit(_work, unit))
            if not pending:
                return
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise FerError(
                        "a worker process died (out of memory?); what was written is kept: run the same command "
                        "again to go on"
                    ) from None


class RayWorker:
    """A Ray Data actor: one Recognizer, a batch of pickled units in, their pickled results out."""

    def __init__(self, settings: Settings):
        import ray

        _start_worker(settings)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        results = []
        for unit in batch["unit"]:
            result = _work(pickle.loads(unit))
            result["node"] = self.node
            results.append(pickle.dumps(result))
        return {"result": np.array(results, dtype=object)}


def run_ray(units, settings: Settings, workers: int, stopped, address: str | None = None, gpus: float | None = None):
    """Each unit's result from Ray Data: `workers` actors (an actor pool), each with `gpus` GPUs
    (default: one where the cluster has GPUs, else none). Joins the cluster at `address` (or
    RAY_ADDRESS); without one starts an embedded cluster listening on 127.0.0.1 only.

    Raises:
        FerError: Ray is not installed, or the cluster cannot be reached.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # An embedded cluster is one node: Ray then keeps to the loopback address (127.0.0.1 given
        # as the node's address is otherwise swapped for the machine's outward one, and its
        # servers listen on every interface).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise FerError(f"--engine ray needs Ray: {RAY_INSTALL}") from None
    embedded = address is None and not ray.is_initialized()
    try:
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:  # "local": a new cluster, never one another program left running here
                ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FerError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())[:200]}") from None
    try:
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        # Every actor of the pool loaded (a model each) before the first unit goes out, so a small
        # corpus spreads over all of them rather than the first one up.
        context.wait_for_min_actors_s = 600
        units = list(units)
        if not units:
            return
        items = [{"unit": pickle.dumps(unit)} for unit in units]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        results = dataset.map_batches(
            RayWorker,
            fn_constructor_args=(settings,),
            batch_size=1,
            # `workers` actors from the start, each given one unit at a time: a few long video
            # segments then spread over every actor instead of queueing behind the first.
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
            num_cpus=1,
            num_gpus=gpus,
        )
        try:
            for batch in results.iter_batches(batch_size=1, batch_format="numpy"):
                for blob in batch["result"]:
                    yield pickle.loads(blob)
                if stopped():
                    return
        except ray.exceptions.RayError as exc:
            raise FerError(
                f"the Ray job failed ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); what was written "
                "is kept: run the same command again to go on"
            ) from None
    finally:
        if embedded:
            ray.shutdown()
