"""Regular expressions to byte DFAs.

Patterns use Python ``re`` syntax and are matched in full (as ``re.fullmatch``). Character classes
``\\d``, ``\\w``, ``\\s`` are ASCII (as with ``re.ASCII``); ``.`` matches any character but newline.
Constructs with no exact finite-automaton meaning (backreferences, lookbehind, possessive and atomic
groups, word boundaries, anchors other than a leading ``^`` and trailing ``$``) raise
:class:`~structgen.errors.RegexError` naming the construct. Lookaheads are supported.
"""

from __future__ import annotations

import functools
import re
import sys

import interegular
from interegular.fsm import FSM

from structgen.automata.byte_dfa import ByteDFA, byte_dfa_from_fsm, literal_set_dfa
from structgen.errors import EmptyLanguageError, RegexError

if sys.version_info >= (3, 11):
    from re import _constants as sre_constants
    from re import _parser as sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_constants
    import sre_parse

_UNSUPPORTED_OPS = {
    "GROUPREF": "backreference",
    "GROUPREF_EXISTS": "conditional backreference (?(id)...)",
    "POSSESSIVE_REPEAT": "possessive quantifier",
    "ATOMIC_GROUP": "atomic group (?>...)",
}
_ANCHORS = {
    "AT_BEGINNING": "'^' anchor",
    "AT_BEGINNING_STRING": "'\\A' anchor",
    "AT_END": "'$' anchor",
    "AT_END_STRING": "'\\Z' anchor",
    "AT_BOUNDARY": "'\\b' word boundary",
    "AT_NON_BOUNDARY": "'\\B' word boundary",
}
_SUPPORTED_FLAGS = re.IGNORECASE | re.UNICODE


def _check_tree(pattern: str, tree, top_level: bool) -> None:
    items = list(tree)
    for position, (op, arg) in enumerate(items):
        name = str(op)
        if name in _UNSUPPORTED_OPS:
            raise RegexError(f"unsupported regex construct in {pattern!r}: {_UNSUPPORTED_OPS[name]}")
        if name == "AT":
            edge = (str(arg) == "AT_BEGINNING" and position == 0) or (
                str(arg) == "AT_END" and position == len(items) - 1
            )
            if not (top_level and edge):
                construct = _ANCHORS.get(str(arg), str(arg))
                raise RegexError(
                    f"unsupported regex construct in {pattern!r}: {construct} "
                    "(only a leading '^' and a trailing '$' are allowed; patterns match in full)"
                )
        elif name == "ASSERT_NOT" or name == "ASSERT":
            direction, sub = arg
            if direction < 0:
                raise RegexError(f"unsupported regex construct in {pattern!r}: lookbehind")
            _check_tree(pattern, sub, False)
        elif name == "SUBPATTERN":
            _, add_flags, del_flags, sub = arg
            if add_flags & ~_SUPPORTED_FLAGS or del_flags:
                raise RegexError(f"unsupported inline flag in {pattern!r}: only (?i) is supported")
            _check_tree(pattern, sub, top_level and len(items) == 1)
        elif name == "BRANCH":
            for sub in arg[1]:
                _check_tree(pattern, sub, top_level and len(items) == 1)
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            _check_tree(pattern, arg[2], False)


def _strip_edge_anchors(pattern: str) -> str:
    if pattern.startswith("^"):
        pattern = pattern[1:]
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1]
    return pattern


_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|x([0-9a-fA-F]{2})|x\{([0-9a-fA-F]+)\}|\\)")


def _literal_escapes(pattern: str) -> str:
    """Replace ``\\uXXXX``-style escapes by the characters themselves (interegular lacks them)."""

    def replace(match: re.Match[str]) -> str:
        digits = next((g for g in match.groups() if g), None)
        if digits is None:
            return match.group(0)
        ch = chr(int(digits, 16))
        if ch.isalnum() or ord(ch) > 0x7F:
            return ch
        if ch in "\n\t\r\f\v":
            return {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f", "\v": "\\v"}[ch]
        return "\\" + ch if ch.isprintable() else ch

    return _ESCAPE.sub(replace, pattern)


def _parse(pattern: str):
    if not isinstance(pattern, str):
        raise RegexError(f"a regex must be a str, got {type(pattern).__name__}")
    try:
        return sre_parse.parse(pattern)
    except (re.error, sre_constants.error, OverflowError, RecursionError) as exc:
        raise RegexError(f"invalid regex {pattern!r}: {exc}") from None


def literal_alternatives(pattern: str) -> list[bytes] | None:
    """The alternatives of a pattern that is only an alternation of plain literals, else None.

    Enumerations (``(red|green|blue)``, hundreds of names) are the most common large regexes in
    structured generation; they are built directly as a byte trie instead of through interegular,
    whose union construction grows with the product of branches and states.
    """
    tree = list(_parse(pattern))
    if tree and str(tree[0][0]) == "AT" and str(tree[0][1]) == "AT_BEGINNING":
        tree = tree[1:]
    if tree and str(tree[-1][0]) == "AT" and str(tree[-1][1]) == "AT_END":
        tree = tree[:-1]
    while len(tree) == 1 and str(tree[0][0]) == "SUBPATTERN" and not tree[0][1][1] and not tree[0][1][2]:
        tree = list(tree[0][1][3])
    if len(tree) == 1 and str(tree[0][0]) == "BRANCH":
        branches = [list(branch) for branch in tree[0][1][1]]
    else:
        branches = [tree]
    literals = []
    for branch in branches:
        if not all(str(op) == "LITERAL" for op, _ in branch):
            return None
        literals.append("".join(chr(code) for _, code in branch).encode("utf-8", "surrogatepass"))
    return literals


def validate_regex(pattern: str) -> str:
    """Check ``pattern`` and return the form handed to interegular; raises :class:`RegexError`."""
    parsed = _parse(pattern)
    if parsed.state.flags & ~(_SUPPORTED_FLAGS | re.UNICODE):
        raise RegexError(f"unsupported inline flag in {pattern!r}: only (?i) is supported")
    _check_tree(pattern, parsed, True)
    return _literal_escapes(_strip_edge_anchors(pattern))


@functools.lru_cache(maxsize=512)
def regex_to_fsm(pattern: str) -> FSM:
    """The character-level interegular FSM of ``pattern`` (validated first)."""
    prepared = validate_regex(pattern)
    try:
        return interegular.parse_pattern(prepared).to_fsm()
    except (interegular.patterns.Unsupported, interegular.patterns.InvalidSyntax) as exc:
        raise RegexError(f"unsupported regex {pattern!r}: {exc}") from None
    except RecursionError:
        raise RegexError(f"regex {pattern!r} is nested too deeply") from None


@functools.lru_cache(maxsize=512)
def regex_to_byte_dfa(pattern: str) -> ByteDFA:
    """The trimmed, minimized byte DFA that accepts the UTF-8 encodings of ``pattern``'s matches."""
    validate_regex(pattern)
    literals = literal_alternatives(pattern)
    try:
        if literals is not None and _parse(pattern).state.flags & re.IGNORECASE == 0:
            return literal_set_dfa(literals)
        return byte_dfa_from_fsm(regex_to_fsm(pattern))
    except EmptyLanguageError:
        raise EmptyLanguageError(f"regex {pattern!r} matches no string") from None
