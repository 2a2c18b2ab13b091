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

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from structgen.automata.byte_dfa import ByteDFA
from structgen.automata.grammar.kernels import (
    GROW,
    L_ACC_POOL,
    L_ACCS,
    L_NEED,
    L_POOL,
    L_STATES,
    LX_ACC,
    LX_ACC_IGNORE,
    LX_ACC_POOL,
    LX_ACC_SLOTS,
    LX_ACC_TABLE,
    LX_BUF,
    LX_COUNTS,
    LX_HAS_EXIT,
    LX_LOOPS,
    LX_POOL,
    LX_PROJ,
    LX_SLOTS,
    LX_TABLE,
    LX_TRANS,
    NO_PROJECTION,
    TOO_MANY_STATES,
    UNKNOWN_PROJECTION,
    intern_rehash,
    lexeme_start_state,
    lexer_intern,
    lexer_projection,
    lexer_row,
)
from structgen.errors import ResourceLimitError

UNKNOWN = -2
DEAD = -1
BLOCKED = -3

Triple = tuple[int, int, bool]


# Well-formed multi-byte UTF-8 characters by lead bytes: (leads, second bytes, bytes after those).
_UTF8_FORMS = (
    (range(0xC2, 0xE0), range(0x80, 0xC0), 0),
    (range(0xE0, 0xE1), range(0xA0, 0xC0), 1),
    (range(0xE1, 0xED), range(0x80, 0xC0), 1),
    (range(0xED, 0xEE), range(0x80, 0xA0), 1),
    (range(0xEE, 0xF0), range(0x80, 0xC0), 1),
    (range(0xF0, 0xF1), range(0x90, 0xC0), 2),
    (range(0xF1, 0xF4), range(0x80, 0xC0), 2),
    (range(0xF4, 0xF5), range(0x80, 0x90), 2),
)


def utf8_loops(transitions: np.ndarray) -> np.ndarray:
    """``out[s]``: every well-formed multi-byte UTF-8 character leads state ``s`` back to ``s``.

    (Through live states: a token that ends inside a character is inside the lexeme.) Only states
    that loop on ``a`` are examined: the others do not read text freely anyway.
    """
    out = np.zeros(transitions.shape[0], dtype=np.bool_)
    for s in np.flatnonzero(transitions[:, ord("a")] == np.arange(transitions.shape[0])).tolist():
        out[s] = all(_form_loops(transitions, s, *form) for form in _UTF8_FORMS)
    return out


def _form_loops(transitions: np.ndarray, s: int, leads: range, seconds: range, more: int) -> bool:
    states = np.unique(transitions[s, leads])
    if (states < 0).any():
        return False
    states = np.unique(transitions[states][:, seconds])
    for _ in range(more):
        if (states < 0).any():
            return False
        states = np.unique(transitions[states][:, 0x80:0xC0])
    return bool((states == s).all())


class LazyLexer:
    """Interned lexer states over ``dfas`` and their lazily computed transition rows.

    The terminals' DFA states are numbered globally (terminal ``t``'s state ``s`` is
    ``offset[t] + s``, so global states are ordered by terminal); a lexer state is the sorted
    codes ``global_state << 1 | guard_only`` of its alive terminals. States, rows and accepted
    terminal sets live in arrays that the numba kernels
    :func:`~structgen.automata.grammar.kernels.lexer_row` and
    :func:`~structgen.automata.grammar.kernels.lexer_intern` fill; ``trans``, ``acc``,
    ``has_exit`` and ``acc_ignore`` are views the mask kernels read (valid until a row is computed).
    """

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
        num_t = len(self.dfas)
        sizes = [dfa.transitions.shape[0] for dfa in self.dfas]
        self._offset = np.zeros(num_t + 1, dtype=np.int64)
        self._offset[1:] = np.cumsum(sizes)
        initial = self._offset[:-1] + np.array([dfa.initial for dfa in self.dfas], dtype=np.int64)
        moved = [
            np.where(dfa.transitions >= 0, dfa.transitions + self._offset[t], DEAD)
            for t, dfa in enumerate(self.dfas)
        ]
        gtrans = np.concatenate(moved).astype(np.int32) if moved else np.zeros((0, 256), dtype=np.int32)
        # Each global state's live bytes and their next states, in byte order (keyword DFAs read
        # one byte per state: a lexer row visits these, not 256 bytes per alive terminal).
        live_state, live_byte = np.nonzero(gtrans >= 0)
        live_start = np.zeros(gtrans.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(live_state, minlength=gtrans.shape[0]), out=live_start[1:])
        self._static = (
            gtrans,
            np.concatenate([dfa.accepting for dfa in self.dfas]) if moved else np.zeros(0, dtype=np.bool_),
            np.repeat(np.arange(num_t, dtype=np.int32), sizes),
            np.array(self.priorities, dtype=np.int64),
            np.array([t in self.ignored for t in range(num_t)], dtype=np.bool_),
            np.int64(max_states),
            utf8_loops(gtrans),
            live_start,
            live_byte.astype(np.int32),
            gtrans[live_state, live_byte].astype(np.int32),
            initial,
            *self._guards_by_terminal(num_t),
        )
        self._store: list[np.ndarray] = [
            np.zeros(5, dtype=np.int64),  # LX_COUNTS
            np.zeros((64, 2), dtype=np.int64),  # LX_TABLE
            np.zeros(1024, dtype=np.int64),  # LX_POOL
            np.full(128, -1, dtype=np.int32),  # LX_SLOTS
            np.full((64, 256), UNKNOWN, dtype=np.int32),  # LX_TRANS
            np.full(64, DEAD, dtype=np.int32),  # LX_ACC
            np.zeros(64, dtype=np.bool_),  # LX_HAS_EXIT
            np.zeros((16, 2), dtype=np.int64),  # LX_ACC_TABLE
            np.zeros(256, dtype=np.int64),  # LX_ACC_POOL
            np.full(32, -1, dtype=np.int32),  # LX_ACC_SLOTS
            np.zeros(16, dtype=np.bool_),  # LX_ACC_IGNORE
            np.zeros(2 * num_t + 4, dtype=np.int64),  # LX_BUF: a key and the last one
            np.zeros(256, dtype=np.int32),  # LX_ROW
            np.zeros(64, dtype=np.uint64),  # LX_LOOPS
            np.full(64, UNKNOWN_PROJECTION, dtype=np.int32),  # LX_PROJ
        ]
        self._start_by_terminals: dict[tuple[int, ...], int] = {}
        self._acc_sets: list[tuple[int, ...]] = []

    def _guards_by_terminal(self, num_t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(start, guard)``: the guards of terminal ``t`` are ``guard[start[t] : start[t + 1]]``."""
        by_terminal: list[list[int]] = [[] for _ in range(num_t)]
        for g, guarded in sorted(self.guards.items()):
            for t in guarded:
                by_terminal[t].append(g)
        start = np.zeros(num_t + 1, dtype=np.int64)
        np.cumsum([len(guards) for guards in by_terminal], out=start[1:])
        return start, np.array([g for guards in by_terminal for g in guards], dtype=np.int32)

    # --- arrays the kernels read ----------------------------------------------------------------

    @property
    def trans(self) -> np.ndarray:
        """``[state, byte]``: next state, ``DEAD``, ``BLOCKED`` or ``UNKNOWN`` (row not computed)."""
        return self._store[LX_TRANS]

    @property
    def acc(self) -> np.ndarray:
        """``[state]``: the accepted terminal set of a lexeme ending there (``DEAD``: none)."""
        return self._store[LX_ACC]

    @property
    def has_exit(self) -> np.ndarray:
        """``[state]``: whether some byte extends the lexeme (valid once the row is computed)."""
        return self._store[LX_HAS_EXIT]

    @property
    def acc_ignore(self) -> np.ndarray:
        """``[acc]``: whether the accepted terminal set is made of ignored terminals only."""
        return self._store[LX_ACC_IGNORE]

    @property
    def acc_sets(self) -> list[tuple[int, ...]]:
        """The terminals of each accepted terminal set, by id."""
        store = self._store
        for a in range(len(self._acc_sets), int(store[LX_COUNTS][L_ACCS])):
            lo, hi = store[LX_ACC_TABLE][a]
            self._acc_sets.append(tuple(store[LX_ACC_POOL][lo + 1 : hi].tolist()))
        return self._acc_sets

    def kernel_arrays(self) -> tuple[tuple, tuple]:
        """``(lxs, lxd)``: the static tables and the store, as :func:`lexer_row` takes them.

        The store is valid until the arrays grow (a kernel returned ``GROW``).
        """
        return self._static, tuple(self._store)

    @property
    def num_states(self) -> int:
        """Number of lexer states interned so far."""
        return int(self._store[LX_COUNTS][L_STATES])

    def state_terminals(self, state: int) -> tuple[Triple, ...]:
        """The ``(terminal, dfa_state, guard_only)`` triples of ``state``."""
        lo, hi = self._store[LX_TABLE][state]
        out = []
        for code in self._store[LX_POOL][lo + 1 : hi].tolist():
            glob = code >> 1
            t = int(self._static[2][glob])
            out.append((t, glob - int(self._offset[t]), bool(code & 1)))
        return tuple(out)

    def is_start(self, state: int) -> bool:
        """Whether ``state`` is the start of a lexeme (nothing read yet)."""
        return bool(self._store[LX_POOL][self._store[LX_TABLE][state, 0]] == 1)

    def start_state(self, terminals: Sequence[int]) -> int:
        """The lexeme start state for parser-allowed ``terminals``.

        Ignored terminals are added, and so is every terminal that guards one of ``terminals``
        (as guard-only when the parser does not allow it); see :func:`lexeme_start_state`.
        """
        key = tuple(terminals)
        cached = self._start_by_terminals.get(key)
        if cached is not None:
            return cached
        terms = np.array(key, dtype=np.int64)
        state = self.run(lambda lxs, lxd: lexeme_start_state(lxs, lxd, terms, 0, terms.shape[0]))
        self._start_by_terminals[key] = state
        return state

    def singleton_state(self, terminal: int, dfa_state: int) -> int:
        """The lexer state where only ``terminal`` is alive, in its DFA state ``dfa_state``."""
        code = (int(self._offset[terminal]) + dfa_state) << 1

        def intern(lxs: tuple, lxd: tuple) -> int:
            lxd[LX_BUF][:2] = (0, code)
            return lexer_intern(lxs, lxd, 2)

        return self.run(intern)

    def single_members(self, states: np.ndarray) -> np.ndarray:
        """For each state: its global DFA state when one terminal alone is alive in it (not as a
        guard), else -1."""
        table, pool = self._store[LX_TABLE], self._store[LX_POOL]
        lo, hi = table[states, 0], table[states, 1]
        member = pool[lo + 1]
        return np.where((hi - lo == 2) & (member & 1 == 0), member >> 1, -1)

    def terminal_of(self, global_states: np.ndarray) -> np.ndarray:
        """The terminal of each global DFA state."""
        return self._static[2][global_states]

    @property
    def global_offsets(self) -> np.ndarray:
        """``offset[t]``: the global number of terminal ``t``'s DFA state 0 (``offset[-1]``: all states)."""
        return self._offset

    def run(self, call: Callable[[tuple, tuple], int]) -> int:
        """``call(static, store)``, a kernel on the lexer's arrays, again after growing them as
        long as it returns ``GROW``; raises :class:`ResourceLimitError` for ``TOO_MANY_STATES``."""
        while True:
            status = call(self._static, tuple(self._store))
            if status == TOO_MANY_STATES:
                raise ResourceLimitError(f"the grammar's lexer needs more than {self.max_states} states")
            if status != GROW:
                return status
            self.grow()

    def grow(self) -> None:
        """Grow what a kernel asked for (``counts[L_NEED]``), doubling it, and every array more
        than half full: the arrays fill together, and each stop for room costs a walk pass."""
        self._double(int(self._store[LX_COUNTS][L_NEED]))
        self._double_half_full()

    def make_room(self) -> None:
        """Grow the arrays before a walk when the states fill more than half of them (a walk
        kernel that runs out of room stops computing rows: its nodes are walked again)."""
        if 2 * self._store[LX_COUNTS][L_STATES] > self._store[LX_TABLE].shape[0]:
            self._double_half_full()

    def _double_half_full(self) -> None:
        store = self._store
        states, pool, accs, acc_pool = store[LX_COUNTS][[L_STATES, L_POOL, L_ACCS, L_ACC_POOL]].tolist()
        for what, used in (
            (LX_TABLE, 2 * states),
            (LX_SLOTS, 4 * (states + 1)),
            (LX_POOL, 2 * pool),
            (LX_ACC_TABLE, 2 * accs),
            (LX_ACC_SLOTS, 4 * (accs + 1)),
            (LX_ACC_POOL, 2 * acc_pool),
        ):
            if used > store[what].shape[0]:
                self._double(what)

    def _double(self, what: int) -> None:
        """Double store array ``what``, with the arrays parallel to it (slot tables are rehashed)."""
        store = self._store
        counts = store[LX_COUNTS]
        if what == LX_TABLE:
            fills = {
                LX_TABLE: 0,
                LX_TRANS: UNKNOWN,
                LX_ACC: DEAD,
                LX_HAS_EXIT: False,
                LX_LOOPS: 0,
                LX_PROJ: UNKNOWN_PROJECTION,
            }
        elif what == LX_ACC_TABLE:
            fills = {LX_ACC_TABLE: 0, LX_ACC_IGNORE: False}
        elif what in (LX_SLOTS, LX_ACC_SLOTS):
            table, pool, count = (
                (LX_TABLE, LX_POOL, L_STATES) if what == LX_SLOTS else (LX_ACC_TABLE, LX_ACC_POOL, L_ACCS)
            )
            slots = np.full(2 * store[what].shape[0], -1, dtype=np.int32)
            intern_rehash(slots, store[table], 0, 1, store[pool], 0, int(counts[count]))
            store[what] = slots
            return
        else:
            fills = {what: 0}
        for k, fill in fills.items():
            old = store[k]
            grown = np.full((2 * old.shape[0], *old.shape[1:]), fill, dtype=old.dtype)
            grown[: old.shape[0]] = old
            store[k] = grown

    def ensure_row(self, state: int) -> np.ndarray:
        """The transition row of ``state``, computing it (and interning successors) if needed."""
        row = self.trans[state]
        if row[0] != UNKNOWN:
            return row
        self.run(lambda lxs, lxd: lexer_row(lxs, lxd, state))
        return self.trans[state]

    def projection(self, state: int) -> int:
        """The state that walks the token trie like ``state`` except along its keywords (``-1``:
        none); see :func:`~structgen.automata.grammar.kernels.lexer_projection`."""
        return self.run(lambda lxs, lxd: lexer_projection(lxs, lxd, state))

    @property
    def projections(self) -> np.ndarray:
        """Each state's projection as the walks found it (:meth:`projection`); ``-1``: none,
        ``-2``: not asked yet (a view, valid until the arrays grow)."""
        return self._store[LX_PROJ]

    def forget_projection(self, state: int) -> None:
        """``state`` does not walk like its projection after all: it keeps its own walks."""
        self._store[LX_PROJ][state] = NO_PROJECTION

    def step(self, state: int, byte: int) -> int:
        """The state after ``byte`` inside the current lexeme, or ``DEAD`` / ``BLOCKED``."""
        value = int(self.trans[state, byte])
        if value == UNKNOWN:
            value = int(self.ensure_row(state)[byte])
        return value
