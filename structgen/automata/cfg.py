"""Context-free grammar over terminals: the input every grammar-based compiler produces.

The Lark front end and the JSON Schema compiler both build a :class:`ContextFreeGrammar`; the grammar
engine compiles it to a token-level automaton. Productions are plain BNF (EBNF is expanded by the
front ends). A symbol name is a terminal when it is a key of ``terminals``, else a nonterminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Terminal:
    """A lexeme class: a regex over characters (interegular syntax) or a literal string."""

    name: str
    pattern: str
    is_literal: bool = False
    priority: int = 0


@dataclass(frozen=True)
class Production:
    """``lhs -> rhs[0] rhs[1] ...``; an empty ``rhs`` derives the empty string."""

    lhs: str
    rhs: tuple[str, ...]


@dataclass
class ContextFreeGrammar:
    """Productions, terminals, the start symbol and the terminals skipped between lexemes."""

    start: str
    productions: list[Production]
    terminals: dict[str, Terminal]
    ignore: tuple[str, ...] = ()
    name: str = "grammar"
    nonterminals: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.nonterminals = frozenset(p.lhs for p in self.productions)
