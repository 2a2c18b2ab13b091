"""Lark grammar text to :class:`~structgen.automata.cfg.ContextFreeGrammar`.

Lark's own grammar loader does the heavy lifting -- EBNF expansion (``?``, ``*``, ``+``, ``[]``,
``~``), templates, ``%import`` (``common``, ``unicode``, relative files), ``%ignore``, ``%override``,
inlined and aliased rules, terminal priorities -- and this module converts its result to BNF
productions and terminal regexes. What it does with Lark's lexing conventions:

* String literals beat regexps that match the same text at equal priority (Lark's "unless" rule:
  ``"if"`` is a keyword, not a ``NAME``). The engine scans the highest-priority terminals accepting
  a lexeme, so a Lark priority ``p`` becomes ``2 * p + 1`` for string literals (``"if"``,
  ``"select"i``) and ``2 * p`` for regexps.
* Such a regexp and the keywords it matches *guard* each other (see
  :mod:`structgen.automata.grammar.lexer`): wherever a keyword may be read the regexp is read too,
  so ``ANDyear`` is one ``NAME`` (refused where no name may follow) rather than ``AND`` glued to
  ``year``; and wherever the regexp may be read the keywords are read too, so keywords are
  reserved (``SELECT FROM FROM t`` is refused). Keywords and the identifier regexp are thus lexed
  as by Lark's ``basic`` lexer, not its contextual one (which splits ``ANDyear`` or accepts a
  keyword as a name wherever LALR state merging happens to hide the other terminal).
* Regexps go through :func:`structgen.automata.regex.validate_regex`: ``\\d``/``\\w``/``\\s`` are
  ASCII; lookbehind, backreferences and anchors are refused. Only the ``i`` flag is supported.
* Lark matches a terminal with ``re.match``, so a lazy quantifier (``*?``) ends the lexeme at the
  *shortest* match, while the structgen lexer takes the longest one. Lazy quantifiers are refused
  (naming the terminal), except in Lark's own ``common.lark`` terminals ``ESCAPED_STRING`` and
  ``C_COMMENT``, whose regexps are replaced by exact longest-match equivalents.
* ``%declare``-d terminals have no pattern (Lark fills them in with a postlexer, e.g. Python's
  ``_INDENT``/``_DEDENT``) and are refused.
* Rule priorities and aliases only choose between parse trees in Lark; they do not change the
  language and are not used.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from lark.exceptions import LarkError
from lark.lexer import PatternStr, TerminalDef
from lark.load_grammar import load_grammar

from structgen.automata.cfg import ContextFreeGrammar, Production, Terminal
from structgen.automata.grammar.engine import terminal_byte_dfa
from structgen.automata.regex import validate_regex
from structgen.errors import GrammarError, RegexError

if sys.version_info >= (3, 11):
    from re import _parser as sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_parse

# Lazy regexps of lark/grammars/common.lark and their longest-match equivalents: the language of
# lexemes Lark's re.match produces for them.
_LAZY_REWRITES = {
    # ESCAPED_STRING: '"', then characters (no newline) up to the first '"' preceded by an even
    # number of backslashes.
    r'".*?(?<!\\)(\\\\)*?"': r'"(?:[^"\\\n]|\\[^\n])*"',
    # C_COMMENT: '/*' up to the first '*/'.
    "/\\*(.|\n)*?\\*/": r"/\*(?:[^*]|\*+[^*/])*\*+/",
}

_SUPPORTED_FLAGS = frozenset("i")


def _has_lazy_quantifier(tree) -> bool:
    for op, arg in tree:
        name = str(op)
        if name == "MIN_REPEAT":
            return True
        if name in ("MAX_REPEAT", "POSSESSIVE_REPEAT") and _has_lazy_quantifier(arg[2]):
            return True
        if name == "SUBPATTERN" and _has_lazy_quantifier(arg[3]):
            return True
        if name == "BRANCH" and any(_has_lazy_quantifier(sub) for sub in arg[1]):
            return True
        if name in ("ASSERT", "ASSERT_NOT") and _has_lazy_quantifier(arg[1]):
            return True
    return False


def convert_terminal(tdef: TerminalDef) -> Terminal:
    """One Lark terminal definition as an engine terminal (see the module docstring)."""
    pattern = tdef.pattern
    name = tdef.name
    unsupported = set(pattern.flags) - _SUPPORTED_FLAGS
    if unsupported:
        raise GrammarError(
            f"terminal {name!r}: regex flag(s) {''.join(sorted(unsupported))!r} not supported "
            "(only 'i'; for 's' write [\\s\\S] instead of '.')"
        )
    is_string = isinstance(pattern, PatternStr)
    priority = 2 * tdef.priority + (1 if is_string else 0)
    if is_string and not pattern.flags:
        if not pattern.value:
            raise GrammarError(f"terminal {name!r} is the empty string")
        return Terminal(name, pattern.value, is_literal=True, priority=priority)
    body = re.escape(pattern.value) if is_string else pattern.value
    for lazy, exact in _LAZY_REWRITES.items():
        body = body.replace(lazy, exact)
    regex = f"(?i:{body})" if "i" in pattern.flags else body
    try:
        if _has_lazy_quantifier(sre_parse.parse(regex)):
            raise GrammarError(
                f"terminal {name!r}: lazy quantifier in /{pattern.value}/ -- Lark ends such a lexeme at "
                "the shortest match, the structgen lexer at the longest; rewrite it without '*?'/'+?'/'??'"
            )
        validate_regex(regex)
    except GrammarError:
        raise
    except RegexError as exc:
        raise GrammarError(f"terminal {name!r}: {exc}") from None
    except Exception as exc:  # sre_parse errors
        raise GrammarError(f"terminal {name!r}: invalid regex /{pattern.value}/: {exc}") from None
    return Terminal(name, regex, is_literal=False, priority=priority)


@dataclass(frozen=True)
class LarkGrammar:
    """A converted Lark grammar: the context-free grammar and the keyword guards of its lexer.

    For every regexp terminal ``r`` that matches string-literal terminals (keywords) ``k1, k2...``
    in full at equal Lark priority, ``guards[r]`` holds the ``ki`` and each ``guards[ki]`` holds
    ``r`` (see the module docstring).
    """

    cfg: ContextFreeGrammar
    guards: dict[str, frozenset[str]]


def lark_to_cfg(
    text: str, start: str = "start", name: str = "grammar", import_paths: Sequence[str] = ()
) -> ContextFreeGrammar:
    """Parse Lark grammar ``text`` into a :class:`ContextFreeGrammar` (see :func:`load_lark`)."""
    return load_lark(text, start, name, tuple(import_paths)).cfg


@functools.lru_cache(maxsize=64)
def load_lark(
    text: str, start: str = "start", name: str = "grammar", import_paths: tuple[str, ...] = ()
) -> LarkGrammar:
    """Parse Lark grammar ``text`` rooted at rule ``start``.

    Raises :class:`GrammarError` naming the rule or terminal at fault (Lark's own grammar errors
    are re-raised as :class:`GrammarError`). The result is cached per arguments; treat it as
    read-only.
    """
    if not isinstance(text, str):
        raise GrammarError(f"a Lark grammar must be a str, got {type(text).__name__}")
    try:
        grammar, _ = load_grammar(text, f"<{name}>", list(import_paths), False)
        defined = {n for n, *_ in grammar.rule_defs}
        if start not in defined:
            raise GrammarError(f"start rule {start!r} is not defined in grammar {name!r}")
        term_defs, rules, ignore = grammar.compile([start], ())
    except GrammarError:
        raise
    except LarkError as exc:
        raise GrammarError(f"invalid Lark grammar {name!r}: {exc}") from None
    except RecursionError:
        raise GrammarError(f"Lark grammar {name!r} is nested too deeply") from None

    terminals: dict[str, Terminal] = {}
    for tdef in term_defs:
        terminals[tdef.name] = convert_terminal(tdef)
    guards = _keyword_guards(term_defs, terminals)
    productions = []
    for rule in rules:
        rhs = []
        for sym in rule.expansion:
            if sym.is_term and sym.name not in terminals:
                raise GrammarError(
                    f"terminal {sym.name!r} (used in rule {rule.origin.name!r}) has no pattern: "
                    "%declare-d terminals need a Lark postlexer, which token-level constraints do not support"
                )
            rhs.append(sym.name)
        productions.append(Production(rule.origin.name, tuple(rhs)))
    for ignored in ignore:
        if ignored not in terminals:
            raise GrammarError(f"%ignore names {ignored!r}, which is not a terminal with a pattern")
    cfg = ContextFreeGrammar(
        start=start, productions=productions, terminals=terminals, ignore=tuple(ignore), name=name
    )
    return LarkGrammar(cfg, guards)


def _keyword_guards(
    term_defs: Sequence[TerminalDef], terminals: dict[str, Terminal]
) -> dict[str, frozenset[str]]:
    """Lark's "unless" pairs (regexp terminal, string terminal it matches), as mutual guards."""
    strings = [t for t in term_defs if isinstance(t.pattern, PatternStr)]
    guards: dict[str, set[str]] = {}
    for tdef in term_defs:
        if isinstance(tdef.pattern, PatternStr):
            continue
        candidates = [s for s in strings if s.priority == tdef.priority]
        if not candidates:
            continue
        dfa = terminal_byte_dfa(terminals[tdef.name])
        for s in candidates:
            if dfa.matches(s.pattern.value.encode("utf-8")):
                guards.setdefault(tdef.name, set()).add(s.name)
                guards.setdefault(s.name, set()).add(tdef.name)
    return {name: frozenset(guarded) for name, guarded in guards.items()}
