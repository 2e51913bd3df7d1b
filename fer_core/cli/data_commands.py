"""`fer-core stats`: what is in a dataset."""

from __future__ import annotations

from fer_core.cli.common import print_json, warn_report


def add_parsers(sub) -> None:
    p = sub.add_parser("stats", help="describe a dataset: counts per split and class, pixels, odd images")
    p.add_argument(
        "--data", required=True, help="a dataset: FER2013's folder or CSV, any folder of class folders, a labelled CSV"
    )
    p.add_argument("--detect-faces", action="store_true", help="photos, not face crops: find each one's face first")
    p.add_argument("--group-by", metavar="REGEX", help="count images per group: the regex's first group on file names")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-cache", action="store_true", help="decode again instead of reading the cache")
    p.set_defaults(handler=cmd_stats)


def cmd_stats(args) -> int:
    from fer_core.data import load_dataset
    from fer_core.data.stats import compute_statistics

    find_face = None
    if args.detect_faces:
        from fer_core.inference.faces import dataset_face_finder

        find_face = dataset_face_finder()
    dataset = load_dataset(args.data, use_cache=not args.no_cache, find_face=find_face)
    stats = compute_statistics(dataset, group_by=args.group_by)  # a bad --group-by refuses before any warning
    warn_report(dataset)
    if args.json:
        print_json(stats)
        return 0
    print(f"{dataset.root}: {stats['n']} images, {len(dataset.classes)} classes ({', '.join(dataset.classes)})")
    width = max(10, *(len(c) + 1 for c in dataset.classes))
    header = f"{'class':<{width}}" + "".join(f"{s:>13}" for s in stats["splits"])
    print(header)
    for name in dataset.classes:
        print(f"{name:<{width}}" + "".join(f"{stats['splits'][s][name]:>13}" for s in stats["splits"]))
    print(f"{'total':<{width}}" + "".join(f"{stats['totals'][s]:>13}" for s in stats["splits"]))
    imbalance = stats["imbalance"]
    print(
        f"imbalance ({imbalance['basis']}): {imbalance['ratio']:.1f}x ({imbalance['largest']} vs {imbalance['smallest']})"
    )
    pixels = stats["pixels"]
    print(f"pixels: mean {pixels['mean']:.1f}, std {pixels['std']:.1f}, range {pixels['min']}..{pixels['max']}")
    print(f"blank images: {stats['blank']['count']}; near-constant: {stats['near_constant']['count']}")
    for key, what in (
        ("identical_across_splits", "identical images in two splits"),
        ("identical_across_classes", "identical images under two classes"),
        ("near_identical_across_splits", "near-identical images in two splits"),
    ):
        found = stats["leakage"][key]
        named = "; ".join(" = ".join(files) for files in found["examples"][:3])
        print(f"{what}: {found['count']}" + (f" (e.g. {named})" if found["count"] else ""))
    if stats["groups"]:
        per = stats["groups"]["images_per_group"]
        print(f"groups: {stats['groups']['count']} ({per['min']}-{per['max']} images each, median {per['median']:g})")
    return 0
