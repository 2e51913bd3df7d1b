"""Finding and loading saved models: `trained/<name>/`, run directories, or a `.keras` file.

Models load only from `.keras` files with safe_mode on, so a file asking for arbitrary code
(a Lambda layer, unknown custom objects) is refused rather than run.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fer_core import IMAGE_SIZE, NUM_CLASSES
from fer_core.errors import FerError
from fer_core.fileio import read_json

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_FILE = "model.keras"


def trained_dir() -> Path:
    """Where promoted models live: $FER_TRAINED_DIR, else the project's trained/."""
    return Path(os.environ.get("FER_TRAINED_DIR") or PROJECT_ROOT / "trained")


def list_trained() -> list[str]:
    root = trained_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MODEL_FILE).is_file())


@dataclass(frozen=True)
class ModelRef:
    """A saved model on disk: its `.keras` file and the folder holding config/metrics beside it."""

    name: str
    model_file: Path
    folder: Path | None

    @property
    def config(self) -> dict:
        return read_json(self.folder / "config.json", {}) if self.folder else {}

    @property
    def metrics(self) -> dict:
        return read_json(self.folder / "metrics.json", {}) if self.folder else {}


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
    raise FerError(f"no model {text!r}: not a trained model name (trained: {available}), a run folder or a .keras file")


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

    import fer_core.models  # noqa: F401  registers the custom layers for deserialisation

    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad files; all mean "cannot load".
        message = " ".join(str(exc).split())
        if "safe_mode" in message or "Lambda" in message or "arbitrary code" in message:
            raise FerError(f"{path}: refused: the model asks to run code (Lambda or custom code), which safe_mode blocks") from None
        if "Could not locate" in message or "Unknown" in message:
            raise FerError(f"{path}: refused: the model uses unknown custom objects ({message[:160]})") from None
        raise FerError(f"{path}: cannot load the model ({message[:200]})") from None
    check_model_shapes(model, str(path))
    return model


def check_model_shapes(model, name: str) -> None:
    input_shape = tuple(model.inputs[0].shape[1:])
    output_shape = tuple(model.outputs[0].shape[1:])
    if input_shape != (IMAGE_SIZE, IMAGE_SIZE, 1):
        raise FerError(f"{name}: the model takes input of shape {input_shape}, not 48x48x1 grayscale faces")
    if output_shape != (NUM_CLASSES,):
        raise FerError(f"{name}: the model outputs shape {output_shape}, not the {NUM_CLASSES} FER2013 classes")
