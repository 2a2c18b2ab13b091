"""The context-free grammar engine: lazy contextual lexer, incremental Earley parser, numba masks."""

from structgen.automata.grammar.engine import GrammarAutomaton, GrammarState

__all__ = ["GrammarAutomaton", "GrammarState"]
