"""`onestep zoo`: the network presets with parameter counts and parameter-role shares."""
from __future__ import annotations

import json
import sys

NAME = "zoo"
HELP = "list network presets with parameter counts and parameter-role shares"
DESCRIPTION = """List the model-zoo presets (EDM's published checkpoints and the digits networks).

Counts are computed by building each network on PyTorch's 'meta' device (no memory, no
weights), so even the 296M-parameter ImageNet ADM is listed in about a second.

  onestep zoo                      # table
  onestep zoo --format json        # [{"name", "params", "shares", ...}, ...]
  onestep zoo edm-cifar10-32x32-uncond-vp --roles   # per-role table of one preset
"""


def add_arguments(parser) -> None:
    parser.add_argument("names", nargs="*", help="presets to show (default: all)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    parser.add_argument("--roles", action="store_true", help="also print the per-role parameter table of each preset")


def build_meta(name: str):
    """The preset's network on the meta device: shapes only, no memory, no initialisation cost."""
    import torch

    from onestep.methods.zoo import build_network

    with torch.device("meta"):
        return build_network(name)


def describe(name: str, net=None) -> dict:
    """Preset info plus parameter count and role shares (of `net`, else a meta-device build)."""
    from onestep.methods.zoo import preset_info, role_counts

    net = build_meta(name) if net is None else net
    counts = role_counts(net)
    total = sum(counts.values())
    info = preset_info(name)
    info.update(params=total, role_params=counts, shares={r: c / total for r, c in counts.items()})
    return info


def run(args) -> int:
    from onestep.methods.zoo import PRESETS, format_share_table, get_preset

    names = args.names or list(PRESETS)
    for n in names:
        get_preset(n)  # unknown names fail before any work, with a suggestion
    rows, role_tables = [], {}
    for i, n in enumerate(names):
        if args.format == "table" and sys.stderr.isatty():
            print(f"\r[{i + 1}/{len(names)}] {n}", end="", file=sys.stderr, flush=True)
        net = build_meta(n)
        rows.append(describe(n, net))
        if args.roles:
            role_tables[n] = format_share_table(net)
    if args.format == "table" and sys.stderr.isatty():
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)

    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(format_table(rows))
    for n, table in role_tables.items():
        print(f"\n{n}\n{table}")
    return 0


def format_table(rows: list[dict]) -> str:
    roles = ("norm", "conv", "qkv", "skip", "embedding", "io")
    head = f"{'preset':<34} {'network':<26} {'params':>13}  " + " ".join(f"{r:>9}" for r in roles) + "  checkpoint"
    lines = [head, "-" * len(head)]
    for row in rows:
        net = f"{row['precond']}({row['model_type']})"
        shares = " ".join(f"{100 * row['shares'][r]:>8.2f}%" for r in roles)
        lines.append(f"{row['name']:<34} {net:<26} {row['params']:>13,}  {shares}  {row['checkpoint'] or '-'}")
    return "\n".join(lines)
