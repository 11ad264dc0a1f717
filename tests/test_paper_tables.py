"""benchmarks/paper_tables/ against the papers' extracted text in ../shared/papers/.

Each cell's number is read back out of the paper text (located by the table's `source` in
papers.yaml and the row's printed label) and compared with the data; nothing is retyped here.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from onestep.benchmarks.paper_tables import PaperTableError, load, select

ROOT = Path(__file__).resolve().parents[1]
# CI: a copy of shared/ beside the clone; engineers' worktrees sit one level deeper.
CANDIDATES = [ROOT.parent / "shared" / "papers", ROOT.parent.parent / "shared" / "papers"]
PAPERS_DIR = next((p for p in CANDIDATES if p.is_dir()), None)
needs_papers = pytest.mark.skipif(
    PAPERS_DIR is None, reason=f"the papers' text is not here (looked in {', '.join(map(str, CANDIDATES))})")


def _norm(token: str) -> str:
    t = token.replace("$", "").replace("\\sim", "").replace("~", "").replace("<", "").replace(">", "")
    return t.strip().strip("().,;:").strip()


def _tokens(cells: list[str]) -> list[str]:
    return [n for c in cells for n in (_norm(t) for t in c.split()) if n]


def _paper_lines(number: str) -> list[str]:
    [path] = PAPERS_DIR.glob(f"{number}_*.txt")
    return path.read_text(encoding="utf-8").splitlines()


def _region(lines: list[str], source: dict) -> list[str]:
    hits = [i for i, ln in enumerate(lines) if source["start"] in ln]
    k = int(source.get("occurrence", 1))
    assert len(hits) >= k, f"table start {source['start']!r} (occurrence {k}) is not in the text"
    start = hits[k - 1]
    return lines[start:start + int(source["lines"])]


def _split(line: str) -> list[str] | None:
    if "\t" in line:
        return [c.strip() for c in line.split("\t")]
    if "|" in line:
        return [c.strip() for c in line.strip().strip("|").split("|")]
    return None  # a flattened table or running text


def _segments(region: list[str], printed: str, continuation: bool) -> list[list[str]]:
    """Token lists that may hold the cell: what follows the printed label on its line (tab or
    pipe tables: the rest of the line; flattened text: up to the next word), or for a row
    printed without a label (continuation of the label above), the label's following lines."""
    parts = [p.strip() for p in printed.split(" | ")]
    out = []
    for i, line in enumerate(region):
        cells = _split(line)
        if cells is None:
            start = 0
            while (j := line.find(printed, start)) >= 0:
                seg = []
                for tok in line[j + len(printed):].split():
                    if re.search(r"[A-Za-z]{2,}", tok):
                        break
                    if _norm(tok):
                        seg.append(_norm(tok))
                out.append(seg)
                start = j + 1
            continue
        for k in range(len(cells) - len(parts) + 1):
            if cells[k:k + len(parts)] != parts:
                continue
            if not continuation:
                out.append(_tokens(cells[k + len(parts):]))
                continue
            for nxt in region[i + 1:]:
                c2 = _split(nxt)
                if not c2 or c2[0]:
                    break
                out.append(_tokens(c2))
    return out


def _check(cell, region: list[str], label: str) -> str | None:
    segs = _segments(region, label, continuation=not cell.printed)
    if not segs:
        return f"{cell.key}: label {label!r} not found in the table's text"
    want = _norm(cell.value_text)
    for seg in segs:
        for i, tok in enumerate(seg):
            if tok != want:
                continue
            if cell.pm is None:
                return None
            if i + 1 < len(seg) and re.fullmatch(r"[0-9.]+", seg[i + 1]) and float(seg[i + 1]) == cell.pm:
                return None
    return f"{cell.key}: {cell.display} not in the text after {label!r} (segments: {segs[:3]})"


@needs_papers
def test_every_cell_reads_back_from_the_paper_text():
    data = load()
    checked, problems = Counter(), []
    for tref, table in data.tables.items():
        region = _region(_paper_lines(data.papers[table.paper].number), table.source)
        label = ""
        for cell in data.cells_of(tref):
            label = cell.printed or label  # a blank label continues the row above
            problem = _check(cell, region, label)
            if problem:
                problems.append(problem)
            else:
                checked[table.paper] += 1
    assert not problems, f"{len(problems)} cell(s) disagree with the papers:\n" + "\n".join(problems[:20])
    assert sum(checked.values()) >= 40 and set(checked) == set(data.papers), checked


@needs_papers
def test_the_check_catches_a_wrong_value():
    """The reader must be able to fail: a cell with a changed value is not found in the text."""
    import dataclasses

    data = load()
    cell = select("gdd/3a/GDD", metric="fid", conditional=False)[0]
    table = data.tables["gdd/3a"]
    region = _region(_paper_lines("000"), table.source)
    assert _check(cell, region, cell.printed) is None
    wrong = dataclasses.replace(cell, value=1.67, value_text="1.67")
    assert _check(wrong, region, cell.printed) is not None
    cell2 = select("sida/1/SiD2A (alpha=1.0)", metric="fid")[0]  # ASCII spelling of the row id
    region2 = _region(_paper_lines("002"), data.tables["sida/1"].source)
    assert _check(cell2, region2, cell2.printed) is None
    assert _check(dataclasses.replace(cell2, pm=0.013), region2, cell2.printed) is not None


def test_every_table_has_cells_and_papers_are_named_by_title():
    data = load()
    assert len(data.papers) == 5
    for tref in data.tables:
        assert data.cells_of(tref), f"{tref} has no cells"
    for p in data.papers.values():
        assert p.title and p.arxiv and p.venue
    # The tables the issue names: paper 001's CLIP-FID and training-efficiency tables.
    assert {c.metric for c in data.cells_of("d2o/11")} == {"clip_fid", "fid"}
    assert select("d2o/12/D2O-F (EDM)", metric="fid")[0].training_images == "5M"


def test_odd_entries_carry_a_note():
    gdd = select("gdd/4/CTM", metric="precision", nfe=1)[0]
    d2o = select("d2o/6/CTM", metric="precision", nfe=1)[0]
    assert (gdd.value, d2o.value) == (70.38, 0.70)
    assert "0.70" in gdd.note and "70.38" in d2o.note


def test_selector_errors_name_the_fix():
    with pytest.raises(PaperTableError, match="did you mean 'GDD'"):
        select("gdd/3a/GDDD")
    with pytest.raises(PaperTableError, match="no table '3'"):
        select("gdd/3/GDD")
    with pytest.raises(PaperTableError, match="unknown paper 'gd'"):
        select("gd/3a/GDD")
    with pytest.raises(PaperTableError, match="matches no cell"):
        select("gdd/3a/GDD", metric="recall")


# --- suites name cells by selector ---------------------------------------------------------
def _suite(published, **dataset):
    from onestep.benchmarks.suites import load_suite

    return load_suite({"name": "t", "dataset": {"name": "cifar10", "resolution": 32, "channels": 3, "conditional": False, **dataset},
                       "evaluation": {"metrics": ["fid", "isc"]}, "published": published})


def test_a_suite_selector_resolves_to_the_cells_of_its_dataset():
    from onestep.benchmarks.suites import published_entries

    uncond = published_entries(_suite([{"label": "GDD", "ref": "gdd/3a/GDD"}]))
    assert {(e["metric"], e["value"]) for e in uncond} == {("fid", 1.66), ("isc", 10.11)}
    assert uncond[0]["paper"] == "Diffusion Models Are Innate One-Step Generators" and uncond[0]["table"] == "Table 3a"
    cond = published_entries(_suite([{"label": "GDD", "ref": "gdd/3a/GDD"}], conditional=True))
    assert [(e["metric"], e["value"]) for e in cond] == [("fid", 1.58)]
    two = _suite([{"label": "CD", "ref": "gdd/3a/CD"}])
    with pytest.raises(Exception, match="add nfe"):
        published_entries(two)
    assert [e["value"] for e in published_entries(_suite([{"label": "CD", "ref": "gdd/3a/CD", "nfe": 2}]))] == [2.93]


def test_a_typo_in_a_suite_selector_is_one_clear_error():
    from onestep.benchmarks.suites import published_entries, validate_suite
    from onestep.methods.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"published\[0\].*no row 'GDD-1'.*did you mean 'GDD-I'"):
        published_entries(_suite([{"label": "GDD", "ref": "gdd/3a/GDD-1"}]))
    _, errors, _ = validate_suite(_suite([{"label": "GDD", "ref": "gdd/3x/GDD"}]), check_files=False)
    assert any("no table '3x'" in e for e in errors), errors
    # The retired inline form names the cells that print its value.
    with pytest.raises(ConfigError, match=r"no longer written inline.*ref: gdd/3a/GDD "):
        published_entries(_suite([{"paper": "000 GDD", "table": "Table 3a", "row": "GDD", "label": "GDD", "metric": "isc", "value": 10.11}]))


def test_the_selector_listing_names_the_refs_to_write(capsys):
    from onestep.benchmarks.paper_tables.__main__ import main

    assert main(["sida/1"]) == 0
    out = capsys.readouterr().out
    assert "ref: sida/1/SiDA (α=1.0)" in out and "fid=1.516 ± 0.01" in out
    assert main(["sida/9"]) == 2
