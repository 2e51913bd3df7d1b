"""Finding and loading saved models: `trained/<name>/`, run directories, or a `.keras` file.

Models load only from `.keras` files with safe_mode on, so a file asking for arbitrary code
(a Lambda layer, unknown custom objects) is refused rather than run.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fer_core import IMAGE_SIZE
from fer_core.errors import FerError
from fer_core.fileio import read_json
from fer_core.paths import trained_dir

MODEL_FILE = "model.keras"


class UnknownModel(FerError):
    """A reference that names no saved model (the service answers it with 404)."""


def list_trained() -> list[str]:
    root = trained_dir()
    if not root.is_dir():
        return []
    # Hidden folders are never models of their own: kept versions (.versions/) and the staging
    # folder of a promotion that was killed before it finished.
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / MODEL_FILE).is_file())


@dataclass(frozen=True)
class ModelRef:
    """A saved model on disk, the one way fer_core and the pages name a model: its `.keras` file,
    the folder holding config/metrics/history beside it, and the name users see."""

    name: str
    model_file: Path
    folder: Path | None

    @property
    def config(self) -> dict:
        return read_json(self.folder / "config.json", {}) if self.folder else {}

    @property
    def metrics(self) -> dict:
        return read_json(self.folder / "metrics.json", {}) if self.folder else {}

    @property
    def history(self) -> list[dict]:
        from fer_core.rundir import read_history

        return read_history(self.folder) if self.folder else []

    @property
    def spec(self):
        """The registry entry of the model's family, from its saved config.json (None for a bare
        `.keras` file or a family no longer registered)."""
        from fer_core.models import get_spec, list_models

        family = self.config.get("model")
        return get_spec(family) if family in list_models() else None

    @property
    def version(self) -> tuple[int, int] | None:
        """(mtime, size) of the model file: a cache key part, so a model promoted or retrained to
        the same path is loaded again rather than served from an old cache entry."""
        try:
            stat = self.model_file.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size


def recorded_classes(ref: ModelRef) -> tuple[str, ...] | None:
    """The class names a saved model's records name (config.json, else metrics.json), or None."""
    for record in (ref.config, ref.metrics):
        classes = record.get("classes")
        if isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes):
            return tuple(classes)
    return None


def model_classes(ref: ModelRef) -> tuple[str, ...]:
    """The class names a saved model predicts, in its output order: its records say so; a bare
    file without records is taken for FER2013's seven (`load_model` refuses one of another
    width, see `unrecorded_classes`)."""
    from fer_core import CLASS_NAMES

    return recorded_classes(ref) or CLASS_NAMES


def unrecorded_classes(outputs: int, name: str) -> tuple[str, ...]:
    """The classes of a model whose records name none: FER2013's for seven outputs (the shape of
    every FER2013 model), refused for any other width.

    Raises:
        FerError: not seven outputs.
    """
    from fer_core import CLASS_NAMES

    if outputs == len(CLASS_NAMES):
        return CLASS_NAMES
    raise FerError(
        f"{name}: the model outputs {outputs} probabilities and nothing names its classes; put a config.json "
        'beside it with {"classes": ["first", "second", ...]} in output order'
    )


def saved_models() -> list[ModelRef]:
    """Every trained model, by name (`fer_core.training.runs.models_and_runs` adds the finished runs)."""
    return [resolve_model(name) for name in list_trained()]


def resolve_model(ref: str | os.PathLike) -> ModelRef:
    """A trained model's name, a folder holding model.keras, or a .keras file.

    Raises:
        FerError: nothing found, or a file that is not `.keras`.
    """
    text = str(ref).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return ModelRef(path.name, path / MODEL_FILE, path)
        raise FerError(f"{path}: the folder holds no {MODEL_FILE}")
    if path.is_file():
        if path.suffix != ".keras":
            raise FerError(f"{path}: only .keras model files are loaded (got {path.suffix or 'no extension'})")
        return ModelRef(path.stem, path, path.parent if (path.parent / "config.json").is_file() else None)
    named = trained_dir() / text
    if "/" not in text and (named / MODEL_FILE).is_file():
        return ModelRef(text, named / MODEL_FILE, named)
    available = ", ".join(list_trained()) or "none yet"
    raise UnknownModel(
        f"no model {text!r}: not a trained model name (trained: {available}), a run folder or a .keras file"
    )


def resolve_models(spec, names_only: bool = False) -> list[ModelRef]:
    """One model or an ensemble's: a `ModelRef`, a name, folder or `.keras` file, a comma list of
    them, or a list (the default model, when none is named, is `fer_core.catalog`'s). `names_only` accepts trained models' names alone
    (the service reads no paths).

    Raises:
        FerError: nothing given, or a path where names only are accepted.
        UnknownModel: a part that names no saved model.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = str(spec).split(",") if isinstance(spec, str) else [spec]
    parts = [part for part in spec if isinstance(part, ModelRef) or str(part).strip()]
    if not parts:
        raise FerError("no model given (NAME_OR_DIR[,NAME_OR_DIR...])")
    refs = []
    for part in parts:
        if isinstance(part, ModelRef):
            refs.append(part)
            continue
        text = str(part).strip()
        if names_only and ("/" in text or "\\" in text or text.startswith(".")):
            raise FerError("model: name a trained model (GET /v1/models); paths are not accepted")
        if names_only and text not in list_trained():
            raise UnknownModel(f"no model {text!r}; models: {', '.join(list_trained()) or 'none yet'}")
        refs.append(resolve_model(text))
    return refs


def shared_classes(refs: list[ModelRef]) -> tuple[str, ...]:
    """The classes all of `refs` predict, in their one order: an ensemble averages its members'
    probabilities class by class, so they must agree.

    Raises:
        FerError: models whose classes differ, each named with its classes.
    """
    classes = {model_classes(ref) for ref in refs}
    if len(classes) > 1:
        named = "; ".join(f"{ref.name}: {', '.join(model_classes(ref))}" for ref in refs)
        raise FerError(f"an ensemble needs models with the same classes in the same order ({named})")
    return classes.pop()


def load_model(ref: str | os.PathLike | ModelRef):
    """Load a model for inference (no optimizer), with safe_mode on and its shapes checked.

    Raises:
        FerError: missing, not a `.keras` zip, corrupt, asks for code, or wrong shapes.
    """
    model_ref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    path = model_ref.model_file
    if not zipfile.is_zipfile(path):
        raise FerError(f"{path}: not a valid .keras file (a .keras file is a zip archive)")
    from fer_core.backend import load_keras

    keras = load_keras()

    from fer_core.models import load_families

    load_families()  # registers the custom layers for deserialisation

    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad files; all mean "cannot load".
        message = " ".join(str(exc).split())
        if "safe_mode" in message or "Lambda" in message or "arbitrary code" in message:
            raise FerError(
                f"{path}: refused: the model asks to run code (Lambda or custom code), which safe_mode blocks"
            ) from None
        if "Could not locate" in message or "Unknown" in message:
            raise FerError(f"{path}: refused: the model uses unknown custom objects ({message[:160]})") from None
        raise FerError(f"{path}: cannot load the model ({message[:200]})") from None
    records = recorded_classes(model_ref)
    check_model_shapes(model, str(path), len(records) if records else None)
    if records is None:
        unrecorded_classes(int(model.outputs[0].shape[-1]), str(path))
    return model


def check_model_shapes(model, name: str, classes: int | None = None) -> None:
    """48x48x1 faces in, one probability per class out (`classes`: as many as its records name)."""
    input_shape = tuple(model.inputs[0].shape[1:])
    output_shape = tuple(model.outputs[0].shape[1:])
    if input_shape != (IMAGE_SIZE, IMAGE_SIZE, 1):
        raise FerError(f"{name}: the model takes input of shape {input_shape}, not 48x48x1 grayscale faces")
    if len(output_shape) != 1 or output_shape[0] is None or output_shape[0] < 2:
        raise FerError(f"{name}: the model outputs shape {output_shape}, not one probability per class")
    if classes is not None and output_shape[0] != classes:
        raise FerError(
            f"{name}: the model outputs {output_shape[0]} probabilities but its records name {classes} classes"
        )


def _float32_policies(config):
    """The model config with every mixed-precision dtype policy made float32 (weights unchanged:
    mixed precision keeps its variables in float32 already)."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and str(
            (config.get("config") or {}).get("name", "")
        ).startswith("mixed_"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {k: _float32_policies(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float32_policies(v) for v in config]
    return config


def compact_model_file(source: str | os.PathLike, destination: str | os.PathLike | None = None) -> dict:
    """Store a `.keras` file's float32 weights as float16: half the bytes, same architecture;
    and compute in float32: a model trained under mixed_bfloat16 would otherwise run in bf16 on
    every machine, ~5x slower on CPUs without bf16 instructions (measured on AVX2-only ones).

    Keras loads float16 weights into the model's float32 variables (they are cast on assign), so
    a compacted file runs exactly like the original except for float16's rounding (~1e-3
    relative); re-evaluate it before shipping. Replaces `destination` (default: `source`)
    atomically, after checking the compacted file loads and predicts close to the original.

    Returns: {"bytes_before", "bytes_after", "max_abs_difference"} on a fixed random batch.

    Raises:
        FerError: not a loadable `.keras` file.
    """
    import h5py
    import numpy as np

    from fer_core.fileio import write_atomic

    source = Path(source)
    destination = Path(destination) if destination is not None else source
    original = load_model(source)
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    weights_name = "model.weights.h5"
    if weights_name not in members:
        raise FerError(f"{source}: no {weights_name} inside; not a Keras 3 .keras file")
    buffer = io.BytesIO()
    with h5py.File(io.BytesIO(members[weights_name]), "r") as old, h5py.File(buffer, "w") as new:
        for key, value in old.attrs.items():
            new.attrs[key] = value

        def copy(name, item):
            if isinstance(item, h5py.Group):
                group = new.require_group(name)
                for key, value in item.attrs.items():
                    group.attrs[key] = value
                return
            array = item[()]
            if array.dtype == np.float32:
                array = array.astype(np.float16)
            dataset = new.create_dataset(name, data=array)
            for key, value in item.attrs.items():
                dataset.attrs[key] = value

        old.visititems(copy)
    members[weights_name] = buffer.getvalue()
    import json

    members["config.json"] = json.dumps(_float32_policies(json.loads(members["config.json"]))).encode()

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, data in members.items():
                # A fixed timestamp: the same model compacts to the same bytes (no spurious diffs).
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
        compacted = load_model(tmp)
        batch = np.random.default_rng(0).integers(0, 256, size=(16, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
        report["max_abs_difference"] = float(np.max(np.abs(np.asarray(original(batch)) - np.asarray(compacted(batch)))))

    report = {"bytes_before": source.stat().st_size}
    write_atomic(destination, write)
    report["bytes_after"] = destination.stat().st_size
    return report
