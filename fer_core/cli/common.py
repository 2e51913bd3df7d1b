"""What the command modules share: JSON output, load-report warnings, model references."""

from __future__ import annotations

import json
import sys


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def warn_report(dataset) -> None:
    for line in dataset.report.messages():
        print(f"fer-core: warning: {line}", file=sys.stderr)


def load_models(spec: str):
    """Comma-separated model references → (loaded models, their ModelRefs)."""
    from fer_core.artifacts import load_model, resolve_models

    refs = resolve_models(spec or [])
    return [load_model(r) for r in refs], refs


def warn_unnamed_classes(refs) -> None:
    """A model file without records is labelled with FER2013's seven classes: said, once a model."""
    from fer_core.artifacts import recorded_classes

    for ref in refs:
        if recorded_classes(ref) is None:
            print(
                f"fer-core: warning: {ref.model_file.name} has no records naming its classes: its 7 outputs are read "
                'as FER2013\'s (put a config.json with "classes" beside it to name others)',
                file=sys.stderr,
            )
