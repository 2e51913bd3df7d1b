"""Promotion: a finished run's best model copied to `trained/<name>/`, stored compactly and measured
again; never destroying a model (kept versions in `trained/.versions/<name>/`, `restore`)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from fer_core.artifacts import MODEL_FILE
from fer_core.errors import FerError
from fer_core.evaluation.unseen import HELD_OUT_FILE, SEEN_FILE
from fer_core.fileio import read_json
from fer_core.paths import trained_dir
from fer_core.rundir import minutes_trained, read_history
from fer_core.training.runs import RunInfo, read_run

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
# Kept versions of replaced models: trained/.versions/<name>/<UTC time>/ (a hidden folder, so no
# picker lists an old version as a model of its own).
VERSIONS_FOLDER = ".versions"


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
        _swap_in(staging, final)
    finally:
        if staging.exists() and not handed_over:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def promoted_as(info: RunInfo, root: Path) -> list[str]:
    """The trained models (in `root`) whose weights came from this run: the newest entry of
    their lineage is the run's own record (a model warm-started from it has a newer one)."""
    own = lineage_name(info.config, info.progress)
    names = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        lineage = folder / LINEAGE_FOLDER
        if folder.name.startswith(".") or not lineage.is_dir():
            continue
        entries = sorted(p.name for p in lineage.iterdir() if p.is_dir())
        if entries and entries[-1] == own:
            names.append(folder.name)
    return names


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
    entry = target / lineage_name(info.config, info.progress)
    if not entry.exists():  # the same run promoted twice has one record
        entry.mkdir()
        for file in LINEAGE_FILES:
            if (info.path / file).is_file():
                shutil.copy2(info.path / file, entry / file)
    return sorted(p.name for p in target.iterdir())


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


def check_model_name(name: str) -> None:
    """A trained/ folder name: one path part, not hidden (hidden folders hold kept versions)."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise FerError(f"invalid model name for trained/: {name!r}")


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
    return f"{_accuracy(metrics['accuracy'])} on {size}{metrics.get('split', '?')} images"


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


def versions_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    base = Path(root) if root is not None else trained_dir()
    return base / VERSIONS_FOLDER / name


def list_versions(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The kept versions of `trained/<name>/`, newest first."""
    folder = versions_dir(name, root)
    if not folder.is_dir():
        return []
    kept = [p for p in folder.iterdir() if not p.name.startswith(".") and (p / MODEL_FILE).is_file()]
    return sorted(kept, key=lambda p: p.name, reverse=True)


def restore(name: str, version: str | None = None, root: str | os.PathLike | None = None) -> Path:
    """Bring back a kept version of `trained/<name>/` (the newest, or `version`); the model it
    replaces is kept in turn, so a restore can itself be undone.

    Raises:
        FerError: no such model or kept version.
    """
    check_model_name(name)
    kept = list_versions(name, root)
    if not kept:
        raise FerError(f"no kept versions of {name!r} (kept versions live in {versions_dir(name, root)})")
    chosen = next((p for p in kept if p.name == version), None) if version else kept[0]
    if chosen is None:
        raise FerError(f"no version {version!r} of {name!r}; kept: {', '.join(p.name for p in kept)}")
    final = (Path(root) if root is not None else trained_dir()) / name
    # The chosen version moves aside first, so a kill midway never leaves two copies half-moved.
    incoming = chosen.with_name(f".restoring-{chosen.name}")
    os.rename(chosen, incoming)
    _swap_in(incoming, final)
    return final


def _swap_in(new: Path, final: Path) -> None:
    """Put the folder `new` at `final`. An existing `final` is moved whole to the kept versions,
    first exchanged with `new` in one atomic step where the system allows (Linux renameat2), so
    `final` names a complete model at every moment."""
    if not final.exists():
        os.rename(new, final)
        return
    kept = versions_dir(final.name, final.parent)
    kept.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target, n = kept / stamp, 1
    while target.exists():
        n += 1
        target = kept / f"{stamp}-{n}"
    if _exchange(new, final):
        os.rename(new, target)  # `new` now holds the old model
    else:  # no atomic exchange here: two renames, microseconds apart
        os.rename(final, target)
        os.rename(new, final)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE); False where unsupported."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def reported_line(metrics: dict) -> str:
    """The card's line of reported numbers, with the faces it learned that the split held again."""
    tta, zoom = metrics.get("with_tta"), metrics.get("with_flip_zoom")
    left_out = metrics.get("left_out_learned")
    return (
        f"- Reported on {metrics.get('split', '?')} ({metrics.get('n', '?')} images"
        + (f"; {left_out} pixel copies of faces it trained or selected on left out" if left_out else "")
        + f"): accuracy {metrics.get('accuracy', float('nan')):.4f}, macro-F1 {metrics.get('macro_f1', float('nan')):.4f}"
        + (f"; with flip TTA {tta['accuracy']:.4f} / {tta['macro_f1']:.4f}" if tta else "")
        + (f"; with flip+zoom TTA {zoom['accuracy']:.4f} / {zoom['macro_f1']:.4f}" if zoom else "")
    )


def model_card(info: RunInfo, name: str | None = None, metrics: dict | None = None, data: str | None = None) -> str:
    """MODEL_CARD.md from the run's own records: data and splits, recipe, time and hardware
    (cumulative over warm starts), the reported accuracy and the weakest classes. `metrics`:
    those of the file being shipped (default: the run's metrics.json); `data`: where the numbers
    were measured, when not where the run trained (a run made on a GPU machine)."""
    if metrics is None:
        metrics = read_json(info.path / "metrics.json", {}) or {}
    history = read_history(info.path)
    minutes = minutes_trained(history)
    c = info.config
    p = info.progress
    init = c.get("init_from") or {}
    per_class = metrics.get("per_class", {})
    weakest = sorted(per_class.items(), key=lambda kv: kv[1].get("f1", 0.0))[:3]
    classes = c.get("classes") or metrics.get("classes") or []
    budget = f"{c['minutes']:g}-minute budget" if c.get("minutes") else f"{c.get('epochs')} epochs"
    lines = [
        f"# {info.model} (run {info.name})",
        "",
        f"- Data: {c.get('data')}; trained on {p.get('train_images', '?')} images; "
        f"best epoch selected on **{metrics.get('selection_split', p.get('val_split', '?'))}** "
        f"({p.get('val_images', '?')} images), reported on **{metrics.get('split', '?')}**",
        f"- Recipe: {c.get('optimizer')} lr {c.get('learning_rate')} ({c.get('lr_schedule')} schedule over the {budget}, "
        f"warm-up {c.get('warmup_epochs')} epochs), batch {c.get('batch_size')}, label smoothing {c.get('label_smoothing')}, "
        f"class weights {c.get('class_weights')}, augmentation flip={c.get('flip')} rotation={c.get('rotation_degrees')} "
        f"zoom={c.get('zoom')} shift={c.get('shift')} erasing={c.get('erasing')}, precision {c.get('precision')}"
        + (f", model parameters {c.get('model_params')}" if c.get("model_params") else ""),
        f"- This run: {len(history)} epochs in {minutes:.1f} min (ended by: {p.get('stop_reason') or info.status}); "
        f"best epoch {p.get('best_epoch')}",
        f"- Classes ({len(classes)}, in output order): {', '.join(classes)}",
    ]
    source_classes = tuple((init or {}).get("classes") or ())
    if init and source_classes and source_classes != tuple(classes):
        lines.append(
            f"- Transfer: started from {init.get('model')} trained on {len(source_classes)} other classes "
            f"({', '.join(source_classes)}; {init.get('path')}): its body kept, a new head for these classes"
            + (
                f", the body frozen for the first {c['freeze_epochs']} epochs, then every layer at a tenth of the rate"
                if c.get("freeze_epochs")
                else ""
            )
        )
        init = None  # said: not a warm start of the same model
    if init:
        lines.append(
            f"- Warm start from {init.get('path')} (reported {init.get('reported_accuracy')} on {init.get('reported_split')}"
            + (
                "; where its layers were wider than this run's, the channels with the largest BatchNorm "
                "scales were kept"
                if (init.get("model_params") or {}) != (c.get("model_params") or {})
                else ""
            )
            + "), "
            f"which had {init.get('epochs')} epochs / {init.get('minutes')} min behind it (on the machines its card "
            "named): "
            f"**{len(history) + int(init.get('epochs') or 0)} epochs, {minutes + float(init.get('minutes') or 0):.1f} min in all**"
        )
    distill = c.get("distill_from") or {}
    if distill:
        teachers = ", ".join(
            f"{t.get('model') or Path(t['path']).parent.name} ({_accuracy(t.get('reported_accuracy'))} on "
            f"{t.get('reported_split')}, sha256 {str(t.get('sha256'))[:12]})"
            for t in distill.get("teachers", [])
        )
        lines.append(
            f"- Distilled: each training image's target is {1 - distill['weight']:g} its one-hot label + "
            f"{distill['weight']:g} the mean {distill.get('tta', 'flip')}-TTA probabilities of {teachers}"
        )
    lines += [
        f"- Backend: {p.get('backend', '?')}; machine: {_describe(p.get('environment'), p.get('host'))}",
        *([f"- Devices: {_devices(c['layout'], c.get('batch_size'))}"] if c.get("layout") else []),
        reported_line(metrics),
    ]
    if metrics.get("reported_on_selection_split"):
        lines.append(
            "- **Warning:** the data had no split besides Training, so the accuracy above is on the "
            "slice that selected the best epoch and is optimistic"
        )
    if weakest:
        lines.append("- Weakest classes (F1): " + ", ".join(f"{k} {v.get('f1', 0):.2f}" for k, v in weakest))
    lines += [
        "",
        f"Reproduce the reported numbers: `fer-core evaluate --model {name or info.model} --data {data or c.get('data')} "
        f"--split {metrics.get('split', 'PublicTest')} [--tta flip or --tta flip+zoom]`",
    ]
    return "\n".join(lines) + "\n"


def _accuracy(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "?"


def _devices(layout: dict, batch_size) -> str:
    """Where the run trained, from config.json's `layout` (fer_core.training.devices)."""
    kind = layout.get("device_kind", "?")
    if int(layout.get("devices", 1)) <= 1:
        return f"one ({kind})"
    processes = int(layout.get("processes", 1))
    return (
        f"{layout['devices']} {kind} devices{f' on {processes} hosts' if processes > 1 else ''}, data-parallel "
        f"(Keras {layout.get('strategy', 'DataParallel')}, mesh {layout.get('mesh_shape')} on axis "
        f"{'/'.join(layout.get('mesh_axes', []))}): {layout.get('per_device_batch')} images a device of each "
        f"batch of {batch_size}"
    )


def _describe(environment: dict | None, host: str | None = None) -> str:
    if not environment:
        return "not recorded"
    versions = ", ".join(f"{k} {environment[k]}" for k in ("keras", "tensorflow", "jax") if k in environment)
    from fer_core.backend import SPEED_FLAGS, cpu_flags

    flags = environment.get("cpu_flags")
    if flags is None and host == socket.gethostname():  # recorded before flags were; same machine
        flags = sorted(set(SPEED_FLAGS) & cpu_flags())
    flag_text = f", CPU flags {' '.join(flags) or 'none of ' + '/'.join(SPEED_FLAGS)}" if flags is not None else ""
    gpus = environment.get("gpus")
    gpu_text = f"GPU {', '.join(gpus)} with " if gpus else ""
    return f"{gpu_text}{environment.get('cpu', '?')} ({environment.get('cores', '?')} cores{flag_text}), {versions}"
