"""The contextual, lazily built lexer DFA of the grammar engine.

Each terminal is a :class:`~structgen.automata.byte_dfa.ByteDFA`. A lexer state is the set of
terminals still alive in the current lexeme, each with its DFA state and whether it is only alive
as a guard (below): a tuple of ``(terminal, dfa_state, guard_only)`` triples, interned to an
integer. A lexeme starts in the *start state* of the terminals the parser allows next (plus the
ignored ones) -- the lexer is contextual -- and each byte keeps the terminals whose DFA can read it.
Rows of the transition table ``trans[state, byte]`` are computed on demand: ``UNKNOWN`` (-2) means
"not computed yet", ``DEAD`` (-1) "no alive terminal can read this byte" (the lexeme may end before
it) and ``BLOCKED`` (-3) "only guard terminals can read it" (the output is refused).

Longest match in a prefix setting: a lexeme ends exactly when the next byte cannot extend any alive
terminal (``trans[state, byte] == -1``); it is then the terminals accepting in the state. Among
those, only the highest priority ones count, and among those the non-ignored ones win over ignored
ones (which are dropped from the parser's input). Every non-ignored winner is handed to the parser
at once, so equal-priority terminals matching the same lexeme stay ambiguous.

Guards: a terminal ``g`` with ``guards[g] = K`` is alive in every lexeme where some terminal of
``K`` is allowed, even when the parser does not allow ``g`` itself (so the identifier regexp keeps
reading after a keyword: ``ANDyear`` is one lexeme). A guard-only terminal counts for longest match
and for choosing the lexeme's terminal, but never makes a prefix valid: a byte that only guard-only
terminals can read is refused (``BLOCKED``), and a lexeme that ends as a terminal the parser does
not allow is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from structgen.automata.byte_dfa import ByteDFA
from structgen.errors import ResourceLimitError

UNKNOWN = -2
DEAD = -1
BLOCKED = -3

Triple = tuple[int, int, bool]


class LazyLexer:
    """Interned lexer states over ``dfas`` and their lazily computed transition rows."""

    def __init__(
        self,
        dfas: Sequence[ByteDFA],
        priorities: Sequence[int],
        ignored: Iterable[int],
        *,
        guards: Mapping[int, Iterable[int]] | None = None,
        max_states: int = 65_536,
    ) -> None:
        self.dfas = list(dfas)
        self.priorities = list(priorities)
        self.ignored = frozenset(ignored)
        self.guards = {g: frozenset(ks) for g, ks in (guards or {}).items()}
        self.max_states = max_states
        self._states: list[tuple[Triple, ...]] = []
        self._is_start: list[bool] = []
        self._index: dict[tuple[bool, tuple[Triple, ...]], int] = {}
        self._start_by_terminals: dict[tuple[int, ...], int] = {}
        self.trans = np.full((64, 256), UNKNOWN, dtype=np.int32)
        self.acc = np.full(64, DEAD, dtype=np.int32)
        self.has_exit = np.zeros(64, dtype=np.bool_)
        self.acc_sets: list[tuple[int, ...]] = []
        self._acc_index: dict[tuple[tuple[int, ...], bool], int] = {}
        self.acc_ignore = np.zeros(16, dtype=np.bool_)

    @property
    def num_states(self) -> int:
        """Number of lexer states interned so far."""
        return len(self._states)

    def state_terminals(self, state: int) -> tuple[Triple, ...]:
        """The ``(terminal, dfa_state, guard_only)`` triples of ``state``."""
        return self._states[state]

    def is_start(self, state: int) -> bool:
        """Whether ``state`` is the start of a lexeme (nothing read yet)."""
        return self._is_start[state]

    def start_state(self, terminals: Sequence[int]) -> int:
        """The lexeme start state for parser-allowed ``terminals``.

        Ignored terminals are added, and so is every terminal that guards one of ``terminals``
        (as guard-only when the parser does not allow it).
        """
        key = tuple(terminals)
        cached = self._start_by_terminals.get(key)
        if cached is not None:
            return cached
        real = set(key) | self.ignored
        guard_only = {g for g, guarded in self.guards.items() if guarded & set(key)} - real
        triples = [(t, self.dfas[t].initial, False) for t in real]
        triples += [(g, self.dfas[g].initial, True) for g in guard_only]
        state = self._intern(True, tuple(sorted(triples)))
        self._start_by_terminals[key] = state
        return state

    def _intern(self, start: bool, triples: tuple[Triple, ...]) -> int:
        ident = (start, triples)
        found = self._index.get(ident)
        if found is not None:
            return found
        sid = len(self._states)
        if sid >= self.max_states:
            raise ResourceLimitError(f"the grammar's lexer needs more than {self.max_states} states")
        if sid >= self.trans.shape[0]:
            self._grow(2 * self.trans.shape[0])
        self._states.append(triples)
        self._is_start.append(start)
        self._index[ident] = sid
        self.acc[sid] = self._resolve_accepting(triples)
        return sid

    def _grow(self, capacity: int) -> None:
        trans = np.full((capacity, 256), UNKNOWN, dtype=np.int32)
        trans[: self.trans.shape[0]] = self.trans
        acc = np.full(capacity, DEAD, dtype=np.int32)
        acc[: self.acc.shape[0]] = self.acc
        has_exit = np.zeros(capacity, dtype=np.bool_)
        has_exit[: self.has_exit.shape[0]] = self.has_exit
        self.trans, self.acc, self.has_exit = trans, acc, has_exit

    def _resolve_accepting(self, triples: tuple[Triple, ...]) -> int:
        """Id of the terminal set a lexeme ending in this state is (``-1``: not a lexeme)."""
        accepting = [t for t, s, _ in triples if self.dfas[t].accepting[s]]
        if not accepting:
            return DEAD
        best = max(self.priorities[t] for t in accepting)
        top = [t for t in accepting if self.priorities[t] == best]
        kept = [t for t in top if t not in self.ignored]
        ignore_only = not kept
        key = (tuple(top if ignore_only else kept), ignore_only)
        found = self._acc_index.get(key)
        if found is not None:
            return found
        aid = len(self.acc_sets)
        self.acc_sets.append(key[0])
        self._acc_index[key] = aid
        if aid >= self.acc_ignore.shape[0]:
            grown = np.zeros(2 * self.acc_ignore.shape[0], dtype=np.bool_)
            grown[: self.acc_ignore.shape[0]] = self.acc_ignore
            self.acc_ignore = grown
        self.acc_ignore[aid] = ignore_only
        return aid

    def _successor(self, triples: tuple[Triple, ...], column: np.ndarray) -> int:
        """Row entry for the DFA states ``column`` (one per triple) reached by one byte."""
        succ = tuple((t, int(s2), g) for (t, _, g), s2 in zip(triples, column, strict=True) if s2 >= 0)
        if not succ:
            return DEAD
        if all(g for _, _, g in succ):
            return BLOCKED
        return self._intern(False, succ)

    def ensure_row(self, state: int) -> np.ndarray:
        """The transition row of ``state``, computing it (and interning successors) if needed."""
        row = self.trans[state]
        if row[0] != UNKNOWN:
            return row
        triples = self._states[state]
        if triples:
            matrix = np.stack([self.dfas[t].transitions[s] for t, s, _ in triples], axis=1)  # [256, k]
            columns = np.ascontiguousarray(matrix).view(np.dtype((np.void, matrix.shape[1] * 4))).ravel()
            _, first, inverse = np.unique(columns, return_index=True, return_inverse=True)
            ids = np.array([self._successor(triples, matrix[b]) for b in first], dtype=np.int32)
            new_row = ids[inverse.reshape(-1)]
        else:  # nothing may follow: the parser is done and nothing is ignored
            new_row = np.full(256, DEAD, dtype=np.int32)
        # The table may have been reallocated by _intern: write into the current one.
        self.trans[state] = new_row
        # BLOCKED bytes count as exits: they extend the lexeme (and refuse the output), so the
        # lexeme must not be ended early in front of them.
        self.has_exit[state] = bool((new_row != DEAD).any())
        return self.trans[state]

    def step(self, state: int, byte: int) -> int:
        """The state after ``byte`` inside the current lexeme, or ``DEAD`` / ``BLOCKED``."""
        value = int(self.trans[state, byte])
        if value == UNKNOWN:
            value = int(self.ensure_row(state)[byte])
        return value
