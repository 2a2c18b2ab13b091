"""Regex compiler: a pattern becomes a token-level DFA constraint over a vocabulary."""

from __future__ import annotations

from structgen.automata.regex import regex_to_byte_dfa
from structgen.automata.token_index import DFAAutomaton
from structgen.matcher import Constraint
from structgen.vocabulary import Vocabulary


class RegexCompiler:
    """Compiles regular expressions for one vocabulary, caching constraints by pattern."""

    def __init__(self, vocab: Vocabulary, *, cache_size: int = 256) -> None:
        self.vocab = vocab
        self.cache_size = cache_size
        self._cache: dict[str, Constraint] = {}

    def compile(self, pattern: str) -> Constraint:
        """The constraint that the whole output fully matches ``pattern`` (``re.fullmatch``)."""
        constraint = self._cache.get(pattern)
        if constraint is None:
            constraint = Constraint(DFAAutomaton(regex_to_byte_dfa(pattern), self.vocab), source=pattern)
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[pattern] = constraint
        return constraint


def compile_regex(pattern: str, vocab: Vocabulary) -> Constraint:
    """Compile ``pattern`` (Python ``re`` syntax, matched in full) into a constraint over ``vocab``.

    Raises :class:`~structgen.errors.RegexError` for invalid or unsupported syntax and
    :class:`~structgen.errors.EmptyLanguageError` when nothing can match.
    """
    return Constraint(DFAAutomaton(regex_to_byte_dfa(pattern), vocab), source=pattern)
