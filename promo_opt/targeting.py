"""Targeting rules: a segment of users written as a small boolean expression over feature columns.

A rule is what a planner would otherwise hand to a campaign tool, e.g. ``homeowner == 1`` or
``loyalty == 'gold' and (bookings_12m >= 3 or age < 30)``. The grammar is deliberately small and is
parsed here, never evaluated as Python::

    rule       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" or_expr ")" | column op literal
    column     := a name (letters, digits, _ and ., not starting with a digit) | `any name in backticks`
    op         := == | != | < | <= | > | >=
    literal    := a number | 'text' | "text" | True | False

A number or True/False compares with a numeric (or 0/1, or true/false) column; quoted text with a
text column, by == and != only. A missing value matches no condition (``x != 1`` is false where
``x`` is missing). Errors say where the rule breaks (1-based character position) and what was expected.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

OPS = ("==", "!=", "<=", ">=", "<", ">")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<lparen>\() | (?P<rparen>\))
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<assign>=)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<text>'[^']*'|"[^"]*")
  | (?P<backtick>`[^`]+`)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
""", re.VERBOSE)
_KEYWORDS = {"and", "or"}
_BOOLS = {"True": True, "False": False, "true": True, "false": False}


class RuleSyntaxError(ValueError):
    """The rule does not follow the grammar of the module doc."""


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: float | bool | str

    def text(self) -> str:
        col = self.column if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", self.column) else f"`{self.column}`"
        return f"{col} {self.op} {format_literal(self.value)}"


@dataclass(frozen=True)
class Junction:
    op: str  # "and" | "or"
    parts: tuple


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int  # 1-based character position

    def describe(self) -> str:
        return "the end of the rule" if self.kind == "end" else f"'{self.text}'"


def format_literal(value) -> str:
    """A literal as the grammar writes it: 1, 2.5, True, 'gold' (double quotes if the text holds a ')."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return f'"{value}"' if "'" in value else f"'{value}'"
    return f"{value:.10g}"


def _tokens(rule: str) -> list[Token]:
    out, i = [], 0
    while i < len(rule):
        m = _TOKEN.match(rule, i)
        if m is None:
            c = rule[i]
            if c in "'\"":
                raise RuleSyntaxError(f"text opened with {c} at position {i + 1} is never closed; expected a closing {c}")
            hint = {"&": "; write 'and'", "|": "; write 'or'", "~": "; write the opposite comparison",
                    "!": "; write the opposite comparison"}.get(c, "")
            raise RuleSyntaxError(f"unexpected character {c!r} at position {i + 1}{hint}; expected "
                                  "column op value, joined by 'and'/'or'")
        kind = m.lastgroup
        if kind == "assign":
            raise RuleSyntaxError(f"single '=' at position {i + 1}; compare with '=='")
        if kind != "space":
            kind = "keyword" if kind == "name" and m.group() in _KEYWORDS else kind
            out.append(Token(kind, m.group(), i + 1))
        i = m.end()
    out.append(Token("end", "", len(rule) + 1))
    return out


class _Parser:
    def __init__(self, rule: str):
        self.toks = _tokens(rule)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self):
        if self.tok.kind == "end":
            raise RuleSyntaxError("the rule is empty; expected e.g. \"homeowner == 1\"")
        node = self.or_expr()
        if self.tok.kind != "end":
            t = self.tok
            what = "')' without its '('" if t.kind == "rparen" else t.describe()
            raise RuleSyntaxError(f"unexpected {what} at position {t.pos} after a complete condition; "
                                  "join conditions with 'and' or 'or'")
        return node

    def or_expr(self):
        return self._junction("or", self.and_expr)

    def and_expr(self):
        return self._junction("and", self.atom)

    def _junction(self, op: str, part):
        """``part ("op" part)*``: the part itself, or their Junction."""
        parts = [part()]
        while self.tok.kind == "keyword" and self.tok.text == op:
            self.take()
            parts.append(part())
        return parts[0] if len(parts) == 1 else Junction(op, tuple(parts))

    def atom(self):
        t = self.take()
        if t.kind == "lparen":
            node = self.or_expr()
            if self.tok.kind != "rparen":
                raise RuleSyntaxError(f"missing ')' for the '(' at position {t.pos}; got {self.tok.describe()} "
                                      f"at position {self.tok.pos}")
            self.take()
            return node
        if t.kind == "backtick":
            column = t.text[1:-1]
        elif t.kind == "name" and t.text not in _BOOLS:
            column = t.text
        else:
            raise RuleSyntaxError(f"expected a column name at position {t.pos}, got {t.describe()}")
        op = self.take()
        if op.kind != "op":
            raise RuleSyntaxError(f"expected a comparison ({', '.join(OPS)}) after column '{column}' at position "
                                  f"{op.pos}, got {op.describe()}")
        v = self.take()
        if v.kind == "number":
            value = float(v.text)
        elif v.kind == "text":
            value = v.text[1:-1]
        elif v.kind == "name" and v.text in _BOOLS:
            value = _BOOLS[v.text]
        else:
            hint = " (text goes in quotes)" if v.kind == "name" else ""
            raise RuleSyntaxError(f"expected a value (a number, 'text', True or False) after '{op.text}' at position "
                                  f"{v.pos}, got {v.describe()}{hint}")
        if isinstance(value, str) and op.text not in ("==", "!="):
            raise RuleSyntaxError(f"'{op.text}' at position {op.pos} compares text; text compares with == or != only")
        return Condition(column, op.text, value)


@dataclass(frozen=True)
class Rule:
    """A parsed rule: ``mask(frame)`` -> (n,) bool; ``problems(frame)`` what keeps it from reading a frame."""

    source: str
    tree: object

    @property
    def conditions(self) -> list[Condition]:
        out, stack = [], [self.tree]
        while stack:
            node = stack.pop()
            if isinstance(node, Condition):
                out.append(node)
            else:
                stack.extend(reversed(node.parts))
        return out

    def problems(self, frame: pd.DataFrame, values: bool = True, levels: int = 20) -> list[str]:
        """What keeps the rule from reading ``frame``: an unknown column, a literal of the wrong type for its
        column, and (``values``) a text value the column never holds (a typo would silently select nobody).
        Empty when fine; ``levels``: how many column names or values a message lists."""
        out = []
        for c in self.conditions:
            if c.column not in frame.columns:
                out.append(f"unknown column '{c.column}'; expected one of the feature columns "
                           f"{list(frame.columns)[:levels]}")
                continue
            kind = _column_kind(frame[c.column])
            if kind == "numeric" and isinstance(c.value, str):
                out.append(f"column '{c.column}' holds numbers, got the text {format_literal(c.value)}; "
                           f"expected a number, e.g. {c.column} {c.op} 1")
            elif kind == "text" and not isinstance(c.value, str):
                out.append(f"column '{c.column}' holds text, got {format_literal(c.value)}; expected quoted text, "
                           f"e.g. {c.column} {c.op} '{format_literal(c.value)}'")
            elif kind == "text" and values:
                seen = frame[c.column].dropna().astype(str).unique()
                if c.value not in set(seen):
                    out.append(f"column '{c.column}' never holds {format_literal(c.value)}; its values: "
                               f"{sorted(seen)[:levels]}")
        return out

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """(n,) bool: the rows of ``frame`` the rule selects. Assumes :meth:`problems` is empty."""
        return _evaluate(self.tree, frame)


def _column_kind(s: pd.Series) -> str:
    return "numeric" if s.dtype == bool or pd.api.types.is_numeric_dtype(s) else "text"


_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


def _evaluate(node, frame: pd.DataFrame) -> np.ndarray:
    if isinstance(node, Junction):
        parts = [_evaluate(p, frame) for p in node.parts]
        return np.logical_and.reduce(parts) if node.op == "and" else np.logical_or.reduce(parts)
    s = frame[node.column]
    if _column_kind(s) == "numeric":
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
        return np.isfinite(x) & _COMPARE[node.op](x, float(node.value))
    present = s.notna().to_numpy()
    return present & _COMPARE[node.op](s.astype(str).to_numpy(), node.value)


def parse_rule(rule: str) -> Rule:
    """The rule parsed by the grammar of the module doc, or a :class:`RuleSyntaxError` saying where it breaks."""
    if not isinstance(rule, str):
        raise RuleSyntaxError(f"a rule is text, got {type(rule).__name__}")
    return Rule(rule, _Parser(rule).parse())


def check_rules(rules, frame: pd.DataFrame, what: str = "train", values: bool = True) -> None:
    """Every rule of ``targeting_rules`` (config entries with ``name``, ``rule``, ``parsed``) can read the feature
    columns ``frame``; else one :class:`ConfigError` naming the rule, the column or value, and what was expected.
    ``values``: also refuse a text value the column never holds (for the training rows, where a typo shows)."""
    from promo_opt.errors import ConfigError

    for i, r in enumerate(rules):
        problems = r.parsed.problems(frame, values=values)
        if problems:
            raise ConfigError(f"targeting_rules.{i} '{r.name}' ({r.rule}): {problems[0]} (checked against {what})")
