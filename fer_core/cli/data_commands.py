"""`fer-core stats`: what is in a dataset."""

from __future__ import annotations


from fer_core import CLASS_NAMES
from fer_core.cli.common import print_json, warn_report


def add_parsers(sub) -> None:
    p = sub.add_parser("stats", help="describe a dataset: counts per split and class, pixels, odd images")
    p.add_argument("--data", required=True, help="FER2013 folder or CSV")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-cache", action="store_true", help="decode again instead of reading the cache")
    p.set_defaults(handler=cmd_stats)


def cmd_stats(args) -> int:
    from fer_core.data import load_dataset
    from fer_core.data.stats import compute_statistics

    dataset = load_dataset(args.data, use_cache=not args.no_cache)
    warn_report(dataset)
    stats = compute_statistics(dataset)
    if args.json:
        print_json(stats)
        return 0
    print(f"{dataset.root}: {stats['n']} images")
    header = f"{'class':<10}" + "".join(f"{s:>13}" for s in stats["splits"])
    print(header)
    for name in CLASS_NAMES:
        print(f"{name:<10}" + "".join(f"{stats['splits'][s][name]:>13}" for s in stats["splits"]))
    print(f"{'total':<10}" + "".join(f"{stats['totals'][s]:>13}" for s in stats["splits"]))
    imbalance = stats["imbalance"]
    print(
        f"imbalance ({imbalance['basis']}): {imbalance['ratio']:.1f}x ({imbalance['largest']} vs {imbalance['smallest']})"
    )
    pixels = stats["pixels"]
    print(f"pixels: mean {pixels['mean']:.1f}, std {pixels['std']:.1f}, range {pixels['min']}..{pixels['max']}")
    print(f"blank images: {stats['blank']['count']}; near-constant: {stats['near_constant']['count']}")
    return 0
