"""ECMA-262 regular expressions (JSON Schema ``pattern``) → exact regexes over JSON string text.

JSON Schema patterns are ECMA-262 regexes over the *decoded* string and are unanchored: ``"a"`` matches
any string containing an ``a``. The grammar, however, constrains the *serialized* string, so this module
parses a pattern into a small AST of code-point sets and rewrites every character class into the ways
a JSON string may spell its members (raw, a short escape, ``\\u00XX`` for control characters).

Two emitters are provided: :func:`to_interegular` (the terminal syntax of the grammar IR: interegular
regexes, literal non-ASCII characters, ``\\xHH`` for ASCII controls) and :func:`to_python` (Python
``re`` syntax with ECMA meaning, used by the runtime validator: ``$`` is end of input, ``\\d`` is ASCII).
Constructs with no regular equivalent (backreferences, lookaround, word boundaries) raise
:class:`UnsupportedPattern`; callers fall back to a runtime check.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass

MAX_CODE_POINT = 0x10FFFF
# Surrogates cannot appear in UTF-8 text, so every set excludes them.
_UNIVERSE: tuple[tuple[int, int], ...] = ((0, 0xD7FF), (0xE000, MAX_CODE_POINT))
# Repetition bounds above this are not expanded into automata (they blow up state counts).
MAX_REPEAT = 1000


class UnsupportedPattern(Exception):
    """The pattern uses a construct with no exact regular-language equivalent here."""


class PatternSyntaxError(Exception):
    """The pattern is not a valid ECMA-262 regular expression."""


Ranges = tuple[tuple[int, int], ...]


def normalize(ranges: list[tuple[int, int]] | Ranges) -> Ranges:
    """Sort and merge ranges, clipped to the universe (surrogates removed)."""
    items = sorted(r for r in ranges if r[0] <= r[1])
    merged: list[tuple[int, int]] = []
    for lo, hi in items:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return intersect(tuple(merged), _UNIVERSE) if merged else ()


def intersect(a: Ranges, b: Ranges) -> Ranges:
    """Intersection of two normalized range sets."""
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def complement(a: Ranges) -> Ranges:
    """All code points (surrogates excluded) not in ``a``."""
    out: list[tuple[int, int]] = []
    prev = 0
    for lo, hi in a:
        if lo > prev:
            out.append((prev, lo - 1))
        prev = hi + 1
    if prev <= MAX_CODE_POINT:
        out.append((prev, MAX_CODE_POINT))
    return intersect(tuple(out), _UNIVERSE)


def subtract(a: Ranges, b: Ranges) -> Ranges:
    """``a`` minus ``b``."""
    return intersect(a, complement(b))


def contains(a: Ranges, cp: int) -> bool:
    """Whether code point ``cp`` is in ``a``."""
    return any(lo <= cp <= hi for lo, hi in a)


# --- AST -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chars:
    """One character from a set of code points."""

    ranges: Ranges


@dataclass(frozen=True)
class Seq:
    """Concatenation."""

    items: tuple


@dataclass(frozen=True)
class Alt:
    """Alternation."""

    options: tuple


@dataclass(frozen=True)
class Repeat:
    """``item{lo,hi}``; ``hi`` None is unbounded."""

    item: object
    lo: int
    hi: int | None


@dataclass(frozen=True)
class Anchor:
    """``^`` (``start=True``) or ``$``."""

    start: bool


Node = Chars | Seq | Alt | Repeat | Anchor

ANY: Ranges = _UNIVERSE
DIGIT: Ranges = ((0x30, 0x39),)
WORD: Ranges = normalize([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
SPACE: Ranges = normalize(
    [
        (9, 13),
        (0x20, 0x20),
        (0xA0, 0xA0),
        (0x1680, 0x1680),
        (0x2000, 0x200A),
        (0x2028, 0x2029),
        (0x202F, 0x202F),
        (0x205F, 0x205F),
        (0x3000, 0x3000),
        (0xFEFF, 0xFEFF),
    ]
)
LINE_TERMINATORS: Ranges = normalize([(10, 10), (13, 13), (0x2028, 0x2029)])
DOT: Ranges = complement(LINE_TERMINATORS)


@functools.lru_cache(maxsize=64)
def unicode_property(name: str) -> Ranges:
    """Code points of a Unicode general category (``L``, ``Lu``, ``Letter``, ``Nd``, ...)."""
    aliases = {
        "Letter": "L",
        "Uppercase_Letter": "Lu",
        "Lowercase_Letter": "Ll",
        "Number": "N",
        "Decimal_Number": "Nd",
        "digit": "Nd",
        "Punctuation": "P",
        "Symbol": "S",
        "Mark": "M",
        "Separator": "Z",
        "Other": "C",
    }
    if name.startswith("General_Category=") or name.startswith("gc="):
        name = name.split("=", 1)[1]
    cat = aliases.get(name, name)
    if not (1 <= len(cat) <= 2 and cat[0] in "LMNPSZC"):
        raise UnsupportedPattern(f"Unicode property \\p{{{name}}} is not supported")
    out: list[tuple[int, int]] = []
    start = None
    for cp in range(MAX_CODE_POINT + 1):
        hit = (
            unicodedata.category(chr(cp)).startswith(cat)
            if len(cat) == 1
            else (unicodedata.category(chr(cp)) == cat)
        )
        if hit and start is None:
            start = cp
        elif not hit and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, MAX_CODE_POINT))
    return normalize(out)


# --- parser ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.i = 0

    def error(self, msg: str) -> PatternSyntaxError:
        return PatternSyntaxError(f"{msg} at position {self.i} in pattern {self.s!r}")

    def peek(self) -> str | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def parse(self) -> Node:
        node = self.alternation()
        if self.i != len(self.s):
            raise self.error("unbalanced ')'")
        return node

    def alternation(self) -> Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def sequence(self) -> Node:
        items: list[Node] = []
        while self.peek() is not None and self.peek() not in "|)":
            atom = self.atom()
            items.append(self.quantified(atom))
        return items[0] if len(items) == 1 else Seq(tuple(items))

    def quantified(self, atom: Node) -> Node:
        c = self.peek()
        lo: int
        hi: int | None
        if c == "*":
            lo, hi = 0, None
        elif c == "+":
            lo, hi = 1, None
        elif c == "?":
            lo, hi = 0, 1
        elif c == "{":
            m = re.match(r"\{(\d+)(?:(,)(\d*))?\}", self.s[self.i :])
            if not m:
                return atom  # Annex B: a '{' that is not a quantifier is a literal (handled by atom)
            lo = int(m.group(1))
            hi = lo if not m.group(2) else (int(m.group(3)) if m.group(3) else None)
            if hi is not None and hi < lo:
                raise self.error("quantifier range out of order")
            self.i += len(m.group(0)) - 1
        else:
            return atom
        self.i += 1
        if self.peek() == "?":
            self.i += 1  # lazy quantifiers match the same language
        if isinstance(atom, Anchor):
            raise UnsupportedPattern("quantified anchor")
        if (hi is not None and hi > MAX_REPEAT) or lo > MAX_REPEAT:
            raise UnsupportedPattern(f"repetition bound above {MAX_REPEAT}")
        return Repeat(atom, lo, hi)

    def atom(self) -> Node:
        c = self.s[self.i]
        if c == "(":
            self.i += 1
            if self.s.startswith("?:", self.i):
                self.i += 2
            elif self.s.startswith("?<", self.i) and not self.s.startswith(("?<=", "?<!"), self.i):
                end = self.s.find(">", self.i)
                if end < 0:
                    raise self.error("unterminated group name")
                self.i = end + 1
            elif self.peek() == "?":
                raise UnsupportedPattern("lookaround assertions")
            node = self.alternation()
            if self.peek() != ")":
                raise self.error("missing ')'")
            self.i += 1
            return node
        if c == "[":
            return Chars(self.char_class())
        if c == ".":
            self.i += 1
            return Chars(DOT)
        if c == "^":
            self.i += 1
            return Anchor(True)
        if c == "$":
            self.i += 1
            return Anchor(False)
        if c == "\\":
            return self.escape(in_class=False)
        if c in "*+?":
            raise self.error("nothing to repeat")
        if c == "{" and re.match(r"\{\d+(,\d*)?\}", self.s[self.i :]):
            raise self.error("nothing to repeat")
        cp = ord(c)
        if (
            0xD800 <= cp <= 0xDBFF
            and self.i + 1 < len(self.s)
            and 0xDC00 <= ord(self.s[self.i + 1]) <= 0xDFFF
        ):
            cp = 0x10000 + ((cp - 0xD800) << 10) + (ord(self.s[self.i + 1]) - 0xDC00)
            self.i += 1
        self.i += 1
        return Chars(normalize([(cp, cp)]))

    def escape(self, *, in_class: bool) -> Node:
        self.i += 1
        if self.i >= len(self.s):
            raise self.error("trailing backslash")
        c = self.s[self.i]
        self.i += 1
        classes = {"d": DIGIT, "w": WORD, "s": SPACE}
        if c in classes:
            return Chars(classes[c])
        if c.lower() in classes:
            return Chars(complement(classes[c.lower()]))
        if c in "pP":
            m = re.match(r"\{([A-Za-z_=]+)\}", self.s[self.i :])
            if not m:
                raise self.error("malformed \\p escape")
            self.i += len(m.group(0))
            ranges = unicode_property(m.group(1))
            return Chars(ranges if c == "p" else complement(ranges))
        if c in "bB":
            if in_class and c == "b":
                return Chars(((8, 8),))
            raise UnsupportedPattern("word-boundary assertions (\\b, \\B)")
        if c.isdigit() and c != "0":
            raise UnsupportedPattern("backreferences")
        if c == "k" and self.peek() == "<":
            raise UnsupportedPattern("named backreferences")
        simple = {"n": 10, "r": 13, "t": 9, "v": 11, "f": 12, "0": 0}
        if c in simple:
            return Chars(((simple[c], simple[c]),))
        if c == "c" and self.peek() is not None and self.peek().isalpha():
            cp = ord(self.s[self.i]) % 32
            self.i += 1
            return Chars(((cp, cp),))
        if c == "x":
            m = re.match(r"[0-9A-Fa-f]{2}", self.s[self.i :])
            if m:
                self.i += 2
                cp = int(m.group(0), 16)
                return Chars(((cp, cp),))
            return Chars(((ord("x"), ord("x")),))
        if c == "u":
            m = re.match(r"\{([0-9A-Fa-f]{1,6})\}|([0-9A-Fa-f]{4})", self.s[self.i :])
            if m:
                self.i += len(m.group(0))
                cp = int(m.group(1) or m.group(2), 16)
                if 0xD800 <= cp <= 0xDBFF and re.match(r"\\u[dD][c-fC-F][0-9A-Fa-f]{2}", self.s[self.i :]):
                    low = int(self.s[self.i + 2 : self.i + 6], 16)
                    self.i += 6
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                if cp > MAX_CODE_POINT:
                    raise self.error("code point out of range")
                return Chars(normalize([(cp, cp)]))
            return Chars(((ord("u"), ord("u")),))
        cp = ord(c)
        return Chars(normalize([(cp, cp)]))

    def char_class(self) -> Ranges:
        self.i += 1
        negate = False
        if self.peek() == "^":
            negate = True
            self.i += 1
        parts: list[tuple[int, int]] = []
        while True:
            c = self.peek()
            if c is None:
                raise self.error("unterminated character class")
            if c == "]":  # "[]" is the empty class and "[^]" any character, as in ECMA-262
                self.i += 1
                break
            lo_set = self.class_atom()
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                self.i += 1
                hi_set = self.class_atom()
                if (
                    len(lo_set) == 1
                    and len(hi_set) == 1
                    and lo_set[0][0] == lo_set[0][1]
                    and (hi_set[0][0] == hi_set[0][1])
                ):
                    lo, hi = lo_set[0][0], hi_set[0][0]
                    if lo > hi:
                        raise self.error("character class range out of order")
                    parts.append((lo, hi))
                else:
                    # Annex B: a range with a class escape endpoint is the union plus '-'.
                    parts.extend(lo_set)
                    parts.extend(hi_set)
                    parts.append((ord("-"), ord("-")))
            else:
                parts.extend(lo_set)
        ranges = normalize(parts)
        return complement(ranges) if negate else ranges

    def class_atom(self) -> Ranges:
        c = self.s[self.i]
        if c == "\\":
            if self.s.startswith("\\-", self.i):
                self.i += 2
                return ((ord("-"), ord("-")),)
            node = self.escape(in_class=True)
            assert isinstance(node, Chars)
            return node.ranges
        cp = ord(c)
        if (
            0xD800 <= cp <= 0xDBFF
            and self.i + 1 < len(self.s)
            and 0xDC00 <= ord(self.s[self.i + 1]) <= 0xDFFF
        ):
            cp = 0x10000 + ((cp - 0xD800) << 10) + (ord(self.s[self.i + 1]) - 0xDC00)
            self.i += 1
        self.i += 1
        return ((cp, cp),)


@functools.lru_cache(maxsize=4096)
def parse(pattern: str) -> Node:
    """Parse an ECMA-262 pattern (``u`` mode conventions; Annex B literal braces)."""
    return _Parser(pattern).parse()


def _split_anchors(node: Node) -> list[tuple[bool, Node, bool]]:
    """Top-level alternatives as ``(anchored_start, body, anchored_end)``; other anchors are unsupported."""
    if isinstance(node, Alt):
        out: list[tuple[bool, Node, bool]] = []
        for option in node.options:
            out.extend(_split_anchors(option))
        return out
    items = list(node.items) if isinstance(node, Seq) else [node]
    if len(items) == 1 and isinstance(items[0], (Alt, Seq)) and items[0] is not node:
        return _split_anchors(items[0])
    start = end = False
    while items and isinstance(items[0], Anchor) and items[0].start:
        start = True
        items.pop(0)
    while items and isinstance(items[-1], Anchor) and not items[-1].start:
        end = True
        items.pop()
    # "^(a|b)$"-style patterns: the anchors wrap a group which itself has no anchors.
    body: Node = Seq(tuple(items))
    if _has_anchor(body):
        if len(items) == 1 and not start and not end:
            return _split_anchors(items[0])
        raise UnsupportedPattern("anchors inside the pattern")
    return [(start, body, end)]


def _has_anchor(node: Node) -> bool:
    if isinstance(node, Anchor):
        return True
    if isinstance(node, Seq):
        return any(_has_anchor(n) for n in node.items)
    if isinstance(node, Alt):
        return any(_has_anchor(n) for n in node.options)
    if isinstance(node, Repeat):
        return _has_anchor(node.item)
    return False


def search_language(pattern: str) -> Node:
    """AST of the set of strings the unanchored pattern matches somewhere (ECMA ``search``)."""
    tree = parse(pattern)
    options = []
    for start, body, end in _split_anchors(tree):
        items: list[Node] = []
        if not start:
            items.append(Repeat(Chars(ANY), 0, None))
        items.append(body)
        if not end:
            items.append(Repeat(Chars(ANY), 0, None))
        options.append(Seq(tuple(items)))
    return options[0] if len(options) == 1 else Alt(tuple(options))


# --- emitters ---------------------------------------------------------------------------------------

_SHORT_ESCAPES = {
    0x22: '\\\\"',
    0x5C: "\\\\\\\\",
    8: "\\\\b",
    12: "\\\\f",
    10: "\\\\n",
    13: "\\\\r",
    9: "\\\\t",
}
_RAW_FORBIDDEN: Ranges = normalize([(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C)])
_IRE_META = set('\\.^$*+?{}[]()|/-"')


def _ire_char(cp: int, in_class: bool) -> str:
    ch = chr(cp)
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    if ch in _IRE_META or ch in "#& ~":
        return "\\" + ch
    return ch


def _class_size(ranges: Ranges) -> int:
    return sum(hi - lo + 1 for lo, hi in ranges)


def _ire_class(ranges: Ranges) -> str:
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _ire_char(ranges[0][0], False)
    negated = ""
    # interegular materializes class members as sets of characters, so a large class is written
    # as the negation of its (small) complement; surrogates never occur in UTF-8 text either way.
    if _class_size(ranges) > 0x8000:
        negated, ranges = "^", complement(ranges)
        if not ranges:
            return "(?:[\\x00-\\x7f]|[^\\x00-\\x7f])"
    body = []
    for lo, hi in ranges:
        if lo == hi:
            body.append(_ire_char(lo, True))
        elif hi == lo + 1:
            body.append(_ire_char(lo, True) + _ire_char(hi, True))
        else:
            body.append(f"{_ire_char(lo, True)}-{_ire_char(hi, True)}")
    return "[" + negated + "".join(body) + "]"


@functools.lru_cache(maxsize=8192)
def json_char_regex(ranges: Ranges) -> str:
    """Interegular regex for one character of ``ranges`` written inside a JSON string (canonical forms).

    Members that may appear raw are written raw; ``"``, ``\\`` and control characters use the short
    escapes json.dumps emits (``\\n``...) and ``\\u00XX`` (either hex case) for the other controls.
    """
    raw = subtract(ranges, _RAW_FORBIDDEN)
    options = []
    if raw:
        options.append(_ire_class(raw))
    short = [cp for cp in sorted(_SHORT_ESCAPES) if contains(ranges, cp)]
    options.extend(_SHORT_ESCAPES[cp] for cp in short)
    controls = [cp for cp in range(0x20) if cp not in _SHORT_ESCAPES and contains(ranges, cp)]
    if len(controls) == 32 - 5:
        options.append("\\\\u00(?:0[0-7bBeEfF]|1[0-9a-fA-F])")
    else:
        for cp in controls:
            hi, lo = divmod(cp, 16)
            digit = f"{lo:x}"
            digit_re = f"[{digit}{digit.upper()}]" if digit.isalpha() else digit
            options.append(f"\\\\u00{hi}{digit_re}")
    if not options:
        raise UnsupportedPattern("empty character set")
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def to_interegular(node: Node, *, json_encode: bool = True) -> str:
    """Interegular regex for ``node``; with ``json_encode`` each character is written as JSON string text."""
    if isinstance(node, Chars):
        if not node.ranges:
            raise UnsupportedPattern("empty character set")
        return json_char_regex(node.ranges) if json_encode else _ire_class(node.ranges)
    if isinstance(node, Seq):
        parts = []
        for item in node.items:
            text = to_interegular(item, json_encode=json_encode)
            parts.append(f"(?:{text})" if isinstance(item, Alt) else text)
        return "".join(parts)
    if isinstance(node, Alt):
        return "(?:" + "|".join(to_interegular(o, json_encode=json_encode) for o in node.options) + ")"
    if isinstance(node, Repeat):
        inner = to_interegular(node.item, json_encode=json_encode)
        if not inner:
            return ""
        inner = f"(?:{inner})"
        if (node.lo, node.hi) == (0, None):
            return inner + "*"
        if (node.lo, node.hi) == (1, None):
            return inner + "+"
        if (node.lo, node.hi) == (0, 1):
            return inner + "?"
        if node.hi is None:
            return f"{inner}{{{node.lo},}}"
        if node.lo == node.hi:
            return f"{inner}{{{node.lo}}}"
        return f"{inner}{{{node.lo},{node.hi}}}"
    raise UnsupportedPattern("anchors inside the pattern")


def pattern_to_json_regex(pattern: str) -> str:
    """Interegular regex for the JSON string *contents* (no quotes) of strings the pattern matches."""
    return to_interegular(search_language(pattern), json_encode=True)


def _py_char(cp: int) -> str:
    return re.escape(chr(cp)) if cp >= 0x20 else f"\\x{cp:02x}"


def to_python(node: Node) -> str:
    """Python ``re`` pattern with the ECMA meaning of ``node`` (anchors as ``\\A``/``\\Z``)."""
    if isinstance(node, Chars):
        if not node.ranges:
            return "(?!)"
        return (
            "["
            + "".join(
                _py_char(lo) if lo == hi else f"{_py_char(lo)}-{_py_char(hi)}" for lo, hi in node.ranges
            )
            + "]"
        )
    if isinstance(node, Seq):
        return "".join(f"(?:{to_python(i)})" if isinstance(i, Alt) else to_python(i) for i in node.items)
    if isinstance(node, Alt):
        return "(?:" + "|".join(to_python(o) for o in node.options) + ")"
    if isinstance(node, Repeat):
        hi = "" if node.hi is None else str(node.hi)
        return f"(?:{to_python(node.item)}){{{node.lo},{hi}}}"
    return "\\A" if node.start else "\\Z"


@functools.lru_cache(maxsize=4096)
def compile_python(pattern: str) -> re.Pattern[str]:
    """A compiled Python regex whose ``search`` has the ECMA semantics of ``pattern``.

    Raises :class:`PatternSyntaxError` for invalid patterns. For constructs this parser does not model
    (lookaround, backreferences, ``\\b``) Python's own engine is used on the original text, whose
    semantics agree for those constructs.
    """
    try:
        return re.compile(to_python(parse(pattern)), re.DOTALL)
    except UnsupportedPattern:
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise PatternSyntaxError(f"pattern {pattern!r}: {exc}") from exc
    except RecursionError as exc:  # pragma: no cover - absurdly nested input
        raise PatternSyntaxError(f"pattern {pattern!r} is nested too deeply") from exc


def ecma_search(pattern: str, text: str) -> bool:
    """``pattern`` (ECMA-262) matches somewhere in ``text``."""
    return compile_python(pattern).search(text) is not None


sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
