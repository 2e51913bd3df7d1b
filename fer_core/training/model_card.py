"""A promoted model's MODEL_CARD.md, written from the run's own records: data and splits, recipe,
time and hardware (cumulative over warm starts), the reported numbers and the weakest classes."""

from __future__ import annotations

import socket
from pathlib import Path

from fer_core.fileio import read_json
from fer_core.rundir import minutes_trained, read_history
from fer_core.training.runs import RunInfo


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
            f"{t.get('model') or Path(t['path']).parent.name} ({accuracy_text(t.get('reported_accuracy'))} on "
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


def accuracy_text(value) -> str:
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
