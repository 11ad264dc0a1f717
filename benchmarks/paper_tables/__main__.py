"""List the selectors of the paper tables, to write a suite's `published:` entries.

    python -m onestep.benchmarks.paper_tables            # every table: ref, caption
    python -m onestep.benchmarks.paper_tables sida/1     # its rows: ref, nfe, metric=value, dataset
"""
from __future__ import annotations

import sys

from . import PaperTableError, load, split_ref


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    data = load()
    if not args:
        for t in data.tables.values():
            print(f"{t.ref:<18} {data.papers[t.paper].title[:48]:<49} {t.label}: {t.caption[:70]}")
        return 0
    for arg in args:
        try:
            paper, table, _ = split_ref(arg)
        except PaperTableError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        tref = f"{paper}/{table}"
        if tref not in data.tables:
            print(f"error: no table {tref}; run without arguments for the list", file=sys.stderr)
            return 2
        for c in data.cells_of(tref):
            cond = "" if c.conditional is None else (" cond" if c.conditional else " uncond")
            print(f"ref: {c.ref:<44} nfe={c.nfe!s:<5} {c.metric}={c.display:<16} {c.dataset} {c.resolution or ''}{cond}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
