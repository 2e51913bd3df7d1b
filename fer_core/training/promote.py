"""Promotion: a finished run's best model copied to `trained/<name>/`, stored compactly and measured
again; never destroying a model (the model it replaces is kept: `versions`). Its card is written
by `model_card`. `list_versions`, `restore` and `versions_dir` are re-exported for the CLI and the
Train page."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from fer_core.artifacts import MODEL_FILE
from fer_core.errors import FerError
from fer_core.evaluation.unseen import HELD_OUT_FILE, SEEN_FILE
from fer_core.fileio import read_json
from fer_core.paths import trained_dir
from fer_core.training.model_card import accuracy_text, model_card
from fer_core.training.runs import RunInfo, read_run
from fer_core.training.versions import check_model_name, list_versions, restore, swap_in, versions_dir

# Files a promoted model carries (MODEL_CARD.md is written by the promotion when missing).
PROMOTED_FILES = ("model.keras", "config.json", "history.csv", "metrics.json")
# Copied where the run has them: a one-pool dataset's held-out images, and the faces it learned
# (evaluation leaves both kinds out, `evaluation.unseen`).
OPTIONAL_FILES = (HELD_OUT_FILE, SEEN_FILE)
# A run stopped on request has no metrics.json: promotion measures its model instead.
MEASURED_ON_PROMOTION = ("metrics.json",)
# The records of the runs behind a model's weights, one folder each (see `lineage_name`).
LINEAGE_FOLDER = "lineage"
LINEAGE_FILES = ("config.json", "history.csv", "progress.json", "metrics.json")


def promote(
    run_dir: str | os.PathLike,
    name: str | None = None,
    dest_root: str | os.PathLike | None = None,
    compact: bool = True,
    dataset=None,
    replace: bool = False,
    again: bool = False,
) -> Path:
    """Copy a finished run's best model and records to `trained/<name>/`.

    Never destroys a model: without `replace`, an existing `trained/<name>/` is refused (one line
    with both accuracies); with it, the old folder moves whole to `trained/.versions/<name>/<time>/`,
    where `restore` brings it back. No name: the run's model name, or, without `replace`,
    `<model>-<date>` when that is taken. The new folder is assembled beside the old one and swapped in atomically, so a failure
    or a kill midway leaves the old model as it was.

    With `compact` (the default) the copy is stored as shipped models are: float16 weights,
    float32 compute (`compact_model_file`), and metrics.json is measured again from that stored
    file on the reported split, so `fer-core evaluate` on it reproduces the shipped numbers.
    `dataset`: the data to measure on, for a run trained where its config.json's data path is not
    this machine's (a GPU machine's copy). A run already promoted is refused (a second copy by
    accident) unless `again`, or it replaces that same model.
    """
    info = read_run(run_dir)
    if info.active:
        raise FerError(f"{info.path}: the run is still {info.status}; stop it or wait before promoting")
    root = Path(dest_root) if dest_root is not None else trained_dir()
    missing = [f for f in PROMOTED_FILES if not (info.path / f).is_file() and f not in MEASURED_ON_PROMOTION]
    if missing:
        raise FerError(f"{info.path}: cannot promote, missing {', '.join(missing)}")
    # Replacing means the model of that name: never a dated new name beside it.
    name = name or (info.model if replace else default_promote_name(info.model, root))
    check_model_name(name)
    final = root / name
    if final.exists() and not replace:
        raise FerError(replace_refusal(final, info.path))
    earlier = promoted_as(info, root)
    if earlier and name not in earlier and not again:
        raise FerError(
            f"{info.path.name} is promoted already, as {', '.join(earlier)}; to keep a second copy as {name}, "
            "promote it again on purpose (--again)"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.new-", dir=root))
    staging.chmod(0o755)  # mkdtemp makes it private; a shipped model is for everyone
    handed_over = False
    try:
        for file in PROMOTED_FILES + OPTIONAL_FILES:
            if (info.path / file).is_file():
                shutil.copy2(info.path / file, staging / file)
        if compact or not (staging / "metrics.json").is_file():
            from fer_core.artifacts import compact_model_file
            from fer_core.training.reporting import write_reported_metrics

            if compact:
                compact_model_file(staging / MODEL_FILE)
            write_reported_metrics(staging, dataset=dataset, name=name)
        lineage = write_lineage(info, staging)
        card = info.path / "MODEL_CARD.md"
        if card.is_file():
            shutil.copy2(card, staging / "MODEL_CARD.md")
        else:
            metrics = read_json(staging / "metrics.json", {}) or {}
            data = dataset.root if dataset is not None and dataset.root else None
            card_text = model_card(info, name, metrics, data=data)
            card_text += f"\nThe runs behind these weights, oldest first: `{LINEAGE_FOLDER}/` ({', '.join(lineage)}).\n"
            (staging / "MODEL_CARD.md").write_text(card_text, encoding="utf-8")
        # Check the copy loads before it replaces anything.
        from fer_core.artifacts import load_model

        load_model(staging / MODEL_FILE)
        handed_over = True  # from here `staging` may hold the old model: never delete it
        swap_in(staging, final)
    finally:
        if staging.exists() and not handed_over:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def promoted_as(info: RunInfo, root: Path) -> list[str]:
    """The trained models (in `root`) whose weights came from this run: the newest entry of
    their lineage is the run's own record (a model warm-started from it has a newer one)."""
    names = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        lineage = folder / LINEAGE_FOLDER
        if folder.name.startswith(".") or not lineage.is_dir():
            continue
        entries = sorted(p for p in lineage.iterdir() if p.is_dir())
        if entries and entries[-1] == own_lineage_entry(lineage, info):
            names.append(folder.name)
    return names


def _same_run(entry: Path, info: RunInfo) -> bool:
    """Whether a lineage entry is this run's record: the name says the minute it started and what
    it did, not which model; two runs of the same minute and settings differ in that, and in the
    second they started."""
    config = read_json(entry / "config.json", {}) or {}
    progress = read_json(entry / "progress.json", {}) or {}
    return config.get("model") == info.config.get("model") and progress.get("started_at") == info.progress.get(
        "started_at"
    )


def write_lineage(info: RunInfo, folder: Path) -> list[str]:
    """`folder/lineage/`: the lineage of the model this run warm-started from, when that model has
    one (the records follow the weights), then this run's own records. Returns the entries'
    names, oldest first."""
    target = folder / LINEAGE_FOLDER
    target.mkdir()
    source = Path(str((info.config.get("init_from") or {}).get("path") or "")).parent
    if source != Path(".") and (source / LINEAGE_FOLDER).is_dir():
        for entry in sorted((source / LINEAGE_FOLDER).iterdir()):
            if entry.is_dir():
                shutil.copytree(entry, target / entry.name)
    entry = own_lineage_entry(target, info)
    if not entry.exists():  # the same run promoted twice has one record
        entry.mkdir()
        for file in LINEAGE_FILES:
            if (info.path / file).is_file():
                shutil.copy2(info.path / file, entry / file)
    return sorted(p.name for p in target.iterdir())


def own_lineage_entry(lineage: Path, info: RunInfo) -> Path:
    """The run's entry in `lineage`: its name, numbered on (`-2`, `-3`) past entries of other runs
    that started in the same minute with the same settings, so no run's record takes another's."""
    name = lineage_name(info.config, info.progress)
    entry, number = lineage / name, 2
    while entry.exists() and not _same_run(entry, info):
        entry, number = lineage / f"{name}-{number}", number + 1
    return entry


def lineage_name(config: dict, progress: dict) -> str:
    """A lineage entry's name: when the run started, then what it did, as in
    `2026-11-26-0316-distilled-warm-start-cpu`: how it began (from scratch, a warm start,
    distilled), model parameters that differ from the default, the machine."""
    started = str(progress.get("started_at") or "")
    when = f"{started[:10]}-{started[11:13]}{started[14:16]}" if len(started) >= 16 else "undated"
    what = ["distilled"] if config.get("distill_from") else []
    what.append("warm-start" if config.get("init_from") else "from-scratch")
    what += [
        f"{key}-{'-'.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in sorted((config.get("model_params") or {}).items())
    ]
    if config.get("optimizer") not in (None, "adam"):
        what.append(str(config["optimizer"]))
    gpus = (progress.get("environment") or {}).get("gpus") or []
    what.append(_short_gpu_name(gpus[0]) if gpus else "cpu")
    return "-".join([when, *what]).replace(" ", "").replace("/", "-")


def _short_gpu_name(gpu: str) -> str:
    """ "NVIDIA H200" → "h200": the model number, which is what tells GPUs apart."""
    return gpu.split()[-1].lower() if gpu.split() else "gpu"


def default_promote_name(model: str, root: str | os.PathLike | None = None) -> str:
    """The model's name while trained/ has none of it, else `<model>-<YYYYMMDD>` (then -2, -3...):
    a plain promote never lands on an existing model."""
    base = Path(root) if root is not None else trained_dir()
    if not (base / model).exists():
        return model
    stem = f"{model}-{time.strftime('%Y%m%d')}"
    candidate, n = stem, 1
    while (base / candidate).exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def measured_on(folder: str | os.PathLike) -> str:
    """ "0.6562 on 3,589 PublicTest images": a model folder's or run's accuracy as its
    metrics.json records it, with the set it was measured on; "not measured" without one."""
    return _measured_on(_metrics(folder))


def _metrics(folder: str | os.PathLike) -> dict:
    return read_json(Path(folder) / "metrics.json", {}) or {}


def _measured_on(metrics: dict) -> str:
    if not isinstance(metrics.get("accuracy"), (int, float)):
        return "not measured"
    count = metrics.get("n")
    size = f"{count:,} " if isinstance(count, int) else ""
    return f"{accuracy_text(metrics['accuracy'])} on {size}{metrics.get('split', '?')} images"


def replacement_summary(existing: Path, run_dir: str | os.PathLike) -> str:
    """ "cnn 0.6562 on 3,589 PublicTest images now; this run 0.6100 on 3,589 PublicTest images":
    the two accuracies as recorded (the run's from its own metrics.json, measured when it
    ended), and a warning when they were measured on different sets and so do not compare."""
    now, run = _metrics(existing), _metrics(run_dir)
    text = f"{existing.name} {_measured_on(now)} now; this run {_measured_on(run)}"
    same_set = all(now.get(key) == run.get(key) for key in ("split", "n", "data"))
    if now and run and not same_set:
        text += " (measured on different sets: the two numbers do not compare)"
    return text


def replace_refusal(existing: Path, run_dir: str | os.PathLike) -> str:
    return (
        f"trained/{existing.name} exists ({replacement_summary(existing, run_dir)}); promote under another "
        f"name (--name), or replace it with --replace (the current version is kept, and "
        f"`fer-core promote --restore {existing.name}` brings it back)"
    )


__all__ = ["list_versions", "model_card", "promote", "restore", "versions_dir"]
