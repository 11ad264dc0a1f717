"""Verdicts: does a reproduced value match its published number? One rule per metric: the
direction that is better and a tolerance max(abs, rel * |published|).

    rule = parse_rule("fid=5%,0.1")      # ('fid', Rule('lower', rel=0.05, abs=0.1))
    verdict(1.70, 1.66, RULES["fid"])    # 'reproduced'

A verdict is only a reading of the numbers: the report prints the protocol difference beside it
(n, best-of, extractor), and a value from untrained feature weights gets no verdict at all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Rule:
    better: str  # "lower" | "higher"
    rel: float = 0.0  # fraction of the published value
    abs: float = 0.0

    def tolerance(self, published: float) -> float:
        return max(self.abs, self.rel * abs(published))

    def describe(self) -> str:
        parts = [f"{100 * self.rel:g}%" if self.rel else "", f"{self.abs:g}" if self.abs else ""]
        return f"{self.better} is better; within {' or '.join(p for p in parts if p) or '0'}"


# FID-like distances: within 5% or 0.1 (the example); scores on [0, 1]: 0.02 absolute.
RULES: dict[str, Rule] = {
    "fid": Rule("lower", rel=0.05, abs=0.1),
    "clip_fid": Rule("lower", rel=0.05, abs=0.05),
    "fd_dinov2": Rule("lower", rel=0.05, abs=1.0),
    "fd_digits": Rule("lower", rel=0.05, abs=0.1),
    "kid": Rule("lower", rel=0.1, abs=0.001),
    "isc": Rule("higher", rel=0.02, abs=0.1),
    "precision": Rule("higher", abs=0.02),
    "recall": Rule("higher", abs=0.02),
    "clip_score": Rule("higher", abs=0.005),
}
REPRODUCED, BETTER, WORSE, NONE = "reproduced", "better than published", "worse than published", "no verdict"


class RuleError(ValueError):
    pass


def parse_rule(text: str) -> tuple[str, Rule]:
    """'METRIC=REL%,ABS' or 'METRIC=ABS' (direction from the built-in rule, or ':lower' /
    ':higher' appended: 'kid=10%,0.001:lower')."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*=\s*([^:]+?)\s*(?::\s*(lower|higher))?\s*", text or "")
    if not m:
        raise RuleError(f"verdict rule '{text}' must look like fid=5%,0.1 (METRIC=REL%,ABS[:lower|higher])")
    metric, spec, better = m.group(1), m.group(2), m.group(3)
    rel = ab = 0.0
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        try:
            if part.endswith("%"):
                rel = float(part[:-1]) / 100
            else:
                ab = float(part)
        except ValueError:
            raise RuleError(f"verdict rule '{text}': '{part}' is not a number or a percentage") from None
    if better is None:
        if metric not in RULES:
            raise RuleError(f"verdict rule '{text}': no built-in direction for '{metric}'; append :lower or :higher")
        better = RULES[metric].better
    return metric, Rule(better, rel=rel, abs=ab)


def rules_with(overrides: Mapping[str, Rule] | None) -> dict[str, Rule]:
    return {**RULES, **dict(overrides or {})}


def verdict(ours: float | None, published: float, rule: Rule | None, comparable: bool = True) -> str:
    if ours is None or rule is None or not comparable:
        return NONE
    diff = ours - published
    if abs(diff) <= rule.tolerance(published) + 1e-12:
        return REPRODUCED
    better = diff < 0 if rule.better == "lower" else diff > 0
    return BETTER if better else WORSE
