"""The papers' result tables as data: papers.yaml (papers, tables, protocols) and one CSV of
cells per paper. The one source of every published number: suites name cells with a selector
(`ref: paper/table/row`), the report shows the tables and puts reproduced values beside them.

    from onestep.benchmarks.paper_tables import load, select
    tables = load()
    [cell] = select("gdd/3a/GDD", metric="isc")        # Cell(value=10.11, ...)

Plain data and the standard library + PyYAML only: the report reads it without torch.
"""
from __future__ import annotations

import csv
import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

DATA_DIR = Path(__file__).parent
CELL_COLUMNS = ["table", "row", "printed", "method", "nfe", "metric", "value", "pm", "qual", "training_images",
                "dataset", "resolution", "conditional", "note"]


class PaperTableError(ValueError):
    """A selector names no cell (or several), or the data files are inconsistent."""


@dataclass(frozen=True)
class Paper:
    key: str  # gdd, d2o, sida, dmd, sfd: the first part of a selector
    number: str  # the file prefix in ../shared/papers/
    title: str
    short: str
    venue: str
    arxiv: str
    note: str = ""

    @property
    def citation(self) -> str:
        return f"{self.title} ({self.venue}, arXiv:{self.arxiv})"


@dataclass(frozen=True)
class Table:
    paper: str
    table: str
    kind: str  # comparison | ablation | clip_fid | efficiency | training_log | text
    caption: str
    dataset: str | None = None
    resolution: int | None = None
    conditional: bool | None = None
    n: int | None = None
    best_of: str | None = None
    mean_of: int | None = None
    source: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def ref(self) -> str:
        return f"{self.paper}/{self.table}"

    @property
    def label(self) -> str:
        return self.table if self.table.startswith("text") else f"Table {self.table}"


@dataclass(frozen=True)
class Cell:
    paper: str
    table: str
    row: str
    printed: str
    method: str
    nfe: int | None
    metric: str
    value: float
    value_text: str  # as printed: "1.110", "16.30"
    pm: float | None
    qual: str  # "~", "<", ">" printed before the value, else ""
    training_images: str
    dataset: str | None
    resolution: int | None
    conditional: bool | None
    n: int | None
    best_of: str | None
    mean_of: int | None
    note: str
    index: int  # position in its CSV (printed order)

    @property
    def ref(self) -> str:
        return f"{self.paper}/{self.table}/{self.row}"

    @property
    def key(self) -> str:
        """Unique id of the cell: ref + what tells cells of one row apart."""
        parts = [self.ref, self.metric]
        if self.nfe is not None:
            parts.append(f"nfe={self.nfe}")
        parts.append(f"{self.dataset}-{self.resolution}-{'cond' if self.conditional else 'uncond' if self.conditional is False else '?'}")
        return "|".join(parts)

    @property
    def display(self) -> str:
        text = f"{self.qual}{self.value_text}"
        return text + (f" ± {self.pm:g}" if self.pm is not None else "")


@dataclass
class PaperTables:
    papers: dict[str, Paper]
    tables: dict[str, Table]  # by "paper/table"
    cells: list[Cell]
    same_algorithm: list[dict]

    def cells_of(self, table_ref: str) -> list[Cell]:
        return [c for c in self.cells if f"{c.paper}/{c.table}" == table_ref]

    def paper_of(self, cell_or_table: Cell | Table) -> Paper:
        return self.papers[cell_or_table.paper]


def _opt_int(text: str, where: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise PaperTableError(f"{where}: '{text}' is not an integer") from None


def _opt_bool(text: Any, where: str) -> bool | None:
    if isinstance(text, bool) or text is None:
        return text
    text = str(text).strip().lower()
    if not text:
        return None
    if text in ("true", "false"):
        return text == "true"
    raise PaperTableError(f"{where}: conditional must be true, false or blank, got '{text}'")


def _read_cells(paper: str, tables: dict[str, Table]) -> list[Cell]:
    path = DATA_DIR / f"{paper}.csv"
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != CELL_COLUMNS:
            raise PaperTableError(f"{path}: columns must be {','.join(CELL_COLUMNS)}")
        cells = []
        for i, rec in enumerate(reader):
            where = f"{path.name} line {i + 2}"
            tref = f"{paper}/{rec['table']}"
            if tref not in tables:
                raise PaperTableError(f"{where}: table '{rec['table']}' is not listed for {paper} in papers.yaml")
            t = tables[tref]
            try:
                value = float(rec["value"])
                pm = float(rec["pm"]) if rec["pm"].strip() else None
            except ValueError:
                raise PaperTableError(f"{where}: value '{rec['value']}' / pm '{rec['pm']}' is not a number") from None
            cells.append(Cell(
                paper=paper, table=rec["table"], row=rec["row"], printed=rec["printed"], method=rec["method"],
                nfe=_opt_int(rec["nfe"], where), metric=rec["metric"], value=value, value_text=rec["value"], pm=pm,
                qual=rec["qual"].strip(), training_images=rec["training_images"].strip(),
                dataset=rec["dataset"].strip() or t.dataset,
                resolution=_opt_int(rec["resolution"], where) if rec["resolution"].strip() else t.resolution,
                conditional=_opt_bool(rec["conditional"], where) if rec["conditional"].strip() else t.conditional,
                # A table's best-of / mean-of protocol is its authors' own rows' (those with a +-);
                # the baselines it copies from other papers keep theirs unstated.
                n=t.n, best_of=t.best_of if pm is not None or t.mean_of is None else None,
                mean_of=t.mean_of if pm is not None else None,
                note=rec["note"].strip(), index=i,
            ))
    return cells


@functools.lru_cache(maxsize=1)
def load() -> PaperTables:
    meta = yaml.safe_load((DATA_DIR / "papers.yaml").read_text(encoding="utf-8"))
    papers = {k: Paper(key=k, **v) for k, v in meta["papers"].items()}
    tables: dict[str, Table] = {}
    for t in meta["tables"]:
        t = dict(t)
        if t["paper"] not in papers:
            raise PaperTableError(f"papers.yaml: table {t.get('table')} names unknown paper '{t['paper']}'")
        t["table"] = str(t["table"])
        t["conditional"] = _opt_bool(t.get("conditional"), f"papers.yaml {t['paper']}/{t['table']}")
        table = Table(**t)
        tables[table.ref] = table
    cells = [c for p in papers for c in _read_cells(p, tables)]
    keys: dict[str, Cell] = {}
    for c in cells:
        if c.key in keys:
            raise PaperTableError(f"{c.paper}.csv: two cells share the key {c.key}; give their rows distinct ids")
        keys[c.key] = c
    return PaperTables(papers, tables, cells, list(meta.get("same_algorithm") or []))


def _suggest(word: str, options: Iterable[str]) -> str:
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def split_ref(ref: str) -> tuple[str, str, str | None]:
    parts = str(ref).split("/", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise PaperTableError(f"selector '{ref}' must be 'paper/table/row' (e.g. gdd/3a/GDD) or 'paper/table'")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def select(ref: str, metric: str | Iterable[str] | None = None, nfe: int | None = None,
           dataset: str | None = None, resolution: int | None = None, conditional: bool | None = None,
           data: PaperTables | None = None) -> list[Cell]:
    """The cells a selector names. `ref`: 'paper/table/row' (row ids may contain '/'); the
    filters keep cells whose field equals the given value (a cell that leaves the field blank,
    e.g. a dataset the paper does not state, is kept). Raises PaperTableError with the closest
    valid names when the reference matches nothing."""
    data = data or load()
    paper, table, row = split_ref(ref)
    if paper not in data.papers:
        raise PaperTableError(f"selector '{ref}': unknown paper '{paper}'{_suggest(paper, data.papers)}; papers: {', '.join(data.papers)}")
    tref = f"{paper}/{table}"
    if tref not in data.tables:
        names = [t.table for t in data.tables.values() if t.paper == paper]
        raise PaperTableError(f"selector '{ref}': {paper} has no table '{table}'{_suggest(table, names)}; tables: {', '.join(names)}")
    cells = data.cells_of(tref)
    if row is not None:
        row = row.replace("alpha", "α")  # 'SiD (alpha=1.2)' is easier to type than 'SiD (α=1.2)'
        rows = [c.row for c in cells]
        cells = [c for c in cells if c.row == row]
        if not cells:
            raise PaperTableError(f"selector '{ref}': table {tref} has no row '{row}'{_suggest(row, rows)}; rows: "
                                  + ", ".join(dict.fromkeys(rows)))
    before = cells
    metrics = None if metric is None else ({metric} if isinstance(metric, str) else set(metric))
    if metrics is not None:
        cells = [c for c in cells if c.metric in metrics]
    if nfe is not None:
        cells = [c for c in cells if c.nfe == nfe]
    for name, want in (("dataset", dataset), ("resolution", resolution), ("conditional", conditional)):
        if want is not None:
            cells = [c for c in cells if getattr(c, name) in (None, want)]
    if not cells:
        have = sorted({f"{c.metric} (nfe={c.nfe}, {c.dataset} {c.resolution}, conditional={c.conditional})" for c in before})
        raise PaperTableError(
            f"selector '{ref}' with metric={sorted(metrics) if metrics else 'any'}, nfe={nfe}, dataset={dataset}, "
            f"resolution={resolution}, conditional={conditional} matches no cell; the row has: {'; '.join(have)}")
    return cells


def find_by_value(value: float, metric: str | None = None, data: PaperTables | None = None) -> list[Cell]:
    """Cells printing this value (to point an old inline `published:` entry at its cell)."""
    data = data or load()
    return [c for c in data.cells if abs(c.value - float(value)) < 1e-9 and (metric is None or c.metric == metric)]
