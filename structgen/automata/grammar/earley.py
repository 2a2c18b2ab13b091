"""Incremental Earley recognition over terminals, with hash-consed (shared, immutable) Earley sets.

An Earley set is closed (predict and complete done) once, when it is built, and never changes. Its
items are ``(item, origin)`` where ``origin`` is the set the item started in (possibly the set
itself, for predicted items). Two scans that produce the same kernel -- the items advanced over the
scanned terminals, with the same origin sets -- produce the same set: sets are interned by kernel,
so a parser state is one integer, transitions are memoized per set, and left-recursive lists
(``a: a "," b | b``, what Lark makes of ``b ("," b)*``) come back to the same set at every
repetition. Rolling back is free: an older state is just an older set id.

Nullable nonterminals use the Aycock-Horspool rule: predicting a nullable ``B`` also advances the
dot over it, so completions with an empty span never need to look at the set being built.

Speed: the sets live in integer arrays and the scan, complete and predict steps are numba kernels
(:func:`~structgen.automata.grammar.kernels.earley_scan`), which the mask walk calls directly when
a token needs a transition not built yet. Predicted items (origin: the set itself) do not depend on
the set, so they live in shared prediction groups; a set stores only its explicit items, sorted by
the symbol after the dot so that scanning and completing are binary searches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from structgen.automata.cfg import ContextFreeGrammar
from structgen.automata.grammar.kernels import (
    ACC_STRIDE,
    C_EPOOL,
    C_GITEMS,
    C_GKEY,
    C_GROUPS,
    C_GTERMS,
    C_KPOOL,
    C_MARK,
    C_NEED,
    C_SETS,
    C_TSETS,
    C_TSPOOL,
    GROUP_K0,
    GROUP_K1,
    GROW,
    NEED_SPEC_TRANS,
    NEED_TRANS,
    NUM_COUNTS,
    SET_ACCEPTING,
    SET_K0,
    SET_K1,
    SET_TSET,
    ST_BUF,
    ST_COUNTS,
    ST_E_ITEM,
    ST_E_NEXT,
    ST_E_ORIGIN,
    ST_EX_ITEM,
    ST_EX_NEXT,
    ST_EX_ORIGIN,
    ST_GI_ITEM,
    ST_GI_NEXT,
    ST_GKEY,
    ST_GROUP_SLOTS,
    ST_GROUPS,
    ST_GTERMS,
    ST_HS_GEN,
    ST_HS_KEYS,
    ST_KPOOL,
    ST_SET_SLOTS,
    ST_SETS,
    ST_TSET_SLOTS,
    ST_TSETS,
    ST_TSPOOL,
    ST_WORK,
    TSET_LEX0,
    TSET_T0,
    TSET_T1,
    IntHashMap,
    earley_close,
    earley_scan,
    intern_rehash,
    parser_transition,
)
from structgen.errors import EmptyLanguageError, GrammarError

AUGMENTED_START = "$start"


class EmptyGrammarError(GrammarError, EmptyLanguageError):
    """The grammar derives no sentence (its start symbol is unproductive)."""


@dataclass(frozen=True)
class GrammarTables:
    """A validated grammar, numbered for the parser.

    Terminals are ``0 .. T-1`` (in ``terminal_names`` order) and nonterminals ``0 .. N-1``; in a
    production's right-hand side a nonterminal ``n`` is written ``T + n``. Items are numbered so
    that advancing the dot is ``item + 1``: item ``i`` is production ``item_prod[i]`` with the dot
    before symbol ``item_next[i]`` (``-1`` once complete). Nonterminal 0 is the augmented start.
    """

    terminal_names: tuple[str, ...]
    nonterminal_names: tuple[str, ...]
    productions: tuple[tuple[int, tuple[int, ...]], ...]
    item_next: tuple[int, ...]
    item_lhs: tuple[int, ...]
    first_item: tuple[int, ...]
    nullable: tuple[bool, ...]
    predictions: tuple[tuple[int, ...], ...]
    predicted_nonterminals: tuple[frozenset[int], ...]

    @property
    def num_terminals(self) -> int:
        """Number of terminals the parser knows (``T``)."""
        return len(self.terminal_names)


def analyze_grammar(grammar: ContextFreeGrammar) -> GrammarTables:
    """Validate ``grammar`` and number it for :class:`EarleyParser`.

    The terminals kept are those used by a production reachable from the start, and the ignored
    ones, in the order of ``grammar.terminals``.

    Raises :class:`GrammarError` naming an undefined symbol or a missing start rule, and
    :class:`EmptyGrammarError` when the start symbol derives no sentence. Productions that use an
    unproductive nonterminal are dropped (they cannot take part in any sentence, so the language is
    unchanged), as are nonterminals unreachable from the start.
    """
    terminals = grammar.terminals
    rules: dict[str, list[tuple[str, ...]]] = {}
    for prod in grammar.productions:
        if prod.lhs in terminals:
            raise GrammarError(f"{prod.lhs!r} is both a terminal and the left-hand side of a rule")
        rules.setdefault(prod.lhs, []).append(tuple(prod.rhs))
    for lhs, alternatives in rules.items():
        for rhs in alternatives:
            for sym in rhs:
                if sym not in terminals and sym not in rules:
                    raise GrammarError(f"rule {lhs!r} uses undefined symbol {sym!r}")
    if grammar.start not in rules:
        raise GrammarError(f"start symbol {grammar.start!r} has no rule")

    # Productive nonterminals: least fixpoint.
    productive: set[str] = set()
    changed = True
    while changed:
        changed = False
        for lhs, alternatives in rules.items():
            if lhs in productive:
                continue
            if any(all(s in terminals or s in productive for s in rhs) for rhs in alternatives):
                productive.add(lhs)
                changed = True
    if grammar.start not in productive:
        raise EmptyGrammarError(f"start symbol {grammar.start!r} derives no sentence (empty language)")
    kept = {
        lhs: [rhs for rhs in alts if all(s in terminals or s in productive for s in rhs)]
        for lhs, alts in rules.items()
        if lhs in productive
    }
    # Reachable from the start, in discovery order (deterministic numbering).
    order = [grammar.start]
    seen = {grammar.start}
    k = 0
    while k < len(order):
        for rhs in kept[order[k]]:
            for sym in rhs:
                if sym in kept and sym not in seen:
                    seen.add(sym)
                    order.append(sym)
        k += 1

    for name in grammar.ignore:
        if name not in terminals:
            raise GrammarError(f"ignored terminal {name!r} is not defined")
    used = {s for name in order for rhs in kept[name] for s in rhs if s in terminals}
    terminal_order = [name for name in terminals if name in used or name in grammar.ignore]
    term_index = {name: i for i, name in enumerate(terminal_order)}
    num_t = len(terminal_order)
    nt_names = (AUGMENTED_START, *order)
    nt_index = {name: i for i, name in enumerate(nt_names)}

    def code(sym: str) -> int:
        if sym in terminals:
            return term_index[sym]
        return num_t + nt_index[sym]

    productions: list[tuple[int, tuple[int, ...]]] = [(0, (code(grammar.start),))]
    for name in order:
        for rhs in kept[name]:
            productions.append((nt_index[name], tuple(code(s) for s in rhs)))

    item_next: list[int] = []
    item_lhs: list[int] = []
    prod_first: list[int] = []
    for lhs, rhs in productions:
        prod_first.append(len(item_next))
        for sym in rhs:
            item_next.append(sym)
            item_lhs.append(lhs)
        item_next.append(-1)
        item_lhs.append(lhs)
    first_item_by_nt: list[list[int]] = [[] for _ in nt_names]
    for p, (lhs, _) in enumerate(productions):
        first_item_by_nt[lhs].append(prod_first[p])

    nullable = [False] * len(nt_names)
    changed = True
    while changed:
        changed = False
        for lhs, rhs in productions:
            if not nullable[lhs] and all(s >= num_t and nullable[s - num_t] for s in rhs):
                nullable[lhs] = True
                changed = True

    # Prediction closure of each nonterminal: every item X -> . gamma (and, over nullable
    # symbols, X -> alpha . gamma) that predicting it adds, all with origin "this set".
    predictions: list[tuple[int, ...]] = []
    predicted_nts: list[frozenset[int]] = []
    for n in range(len(nt_names)):
        items: list[int] = []
        done_nt = {n}
        stack = [n]
        item_seen: set[int] = set()
        while stack:
            m = stack.pop()
            for it in first_item_by_nt[m]:
                i = it
                while i not in item_seen:
                    item_seen.add(i)
                    items.append(i)
                    nx = item_next[i]
                    if nx < num_t:
                        break
                    nt = nx - num_t
                    if nt not in done_nt:
                        done_nt.add(nt)
                        stack.append(nt)
                    if not nullable[nt]:
                        break
                    i += 1
        predictions.append(tuple(items))
        predicted_nts.append(frozenset(done_nt))

    return GrammarTables(
        terminal_names=tuple(terminal_order),
        nonterminal_names=nt_names,
        productions=tuple(productions),
        item_next=tuple(item_next),
        item_lhs=tuple(item_lhs),
        first_item=tuple(prod_first),
        nullable=tuple(nullable),
        predictions=tuple(predictions),
        predicted_nonterminals=tuple(predicted_nts),
    )


class EarleyParser:
    """Earley sets of one grammar, built and interned on integer arrays by numba kernels.

    A set is an integer id; set ``0`` is the set before any input. A set holds its *explicit* items,
    ``(item, origin set)`` with an older origin, sorted by the symbol after the dot, and a shared
    *prediction group* (the items predicted from the nonterminals after its dots, all of origin the
    set itself, interned by those nonterminals). Two scans producing the same kernel (the scanned
    items with their origins) produce the same set. Origins move down right recursions whose
    completion is deterministic (Leo), and a closure with the same items as the set its first kernel
    item comes from is that set: a run of unary operators stays in one set. Each set also names its
    *terminal set* (the terminals it expects, interned), which carries the lexeme start state the
    engine computes for it. The arrays are grown by :meth:`grow` when a kernel asks (``GROW``).

    Transitions are memoized per ``(set, accepted terminal set)`` in two
    :class:`~structgen.automata.grammar.kernels.IntHashMap` tables: ``transitions``
    between lasting sets and ``spec_transitions`` touching a speculative one (see
    :meth:`begin_speculation`).
    """

    def __init__(self, tables: GrammarTables) -> None:
        self.tables = tables
        num_t = tables.num_terminals
        n_items = len(tables.item_next)
        pred_start = np.zeros(len(tables.predictions) + 1, dtype=np.int64)
        pred_start[1:] = np.cumsum([len(p) for p in tables.predictions])
        pred_items = np.array([i for p in tables.predictions for i in p], dtype=np.int32)
        self.grammar_arrays = (
            np.array(tables.item_next, dtype=np.int32),
            np.array(tables.item_lhs, dtype=np.int32),
            np.array(tables.nullable, dtype=np.bool_),
            pred_start,
            pred_items,
            np.int64(num_t),
        )
        n_sym = num_t + len(tables.nonterminal_names)
        scratch = 1024  # work arrays of one closure (a power of two), grown on demand
        self._store: list[np.ndarray] = [
            np.zeros(NUM_COUNTS, dtype=np.int64),  # ST_COUNTS
            np.zeros((256, 7), dtype=np.int64),  # ST_SETS
            np.zeros(1024, dtype=np.int64),  # ST_KPOOL
            np.zeros(4096, dtype=np.int32),  # ST_E_NEXT
            np.zeros(4096, dtype=np.int32),  # ST_E_ITEM
            np.zeros(4096, dtype=np.int32),  # ST_E_ORIGIN
            np.zeros((64, 7), dtype=np.int64),  # ST_GROUPS
            np.zeros(256, dtype=np.int64),  # ST_GKEY (int64 like every interned pool: one rehash kernel)
            np.zeros(4096, dtype=np.int32),  # ST_GI_NEXT
            np.zeros(4096, dtype=np.int32),  # ST_GI_ITEM
            np.zeros(1024, dtype=np.int32),  # ST_GTERMS
            np.zeros((64, 3), dtype=np.int64),  # ST_TSETS
            np.zeros(1024, dtype=np.int64),  # ST_TSPOOL
            np.full(512, -1, dtype=np.int32),  # ST_SET_SLOTS
            np.full(128, -1, dtype=np.int32),  # ST_GROUP_SLOTS
            np.full(128, -1, dtype=np.int32),  # ST_TSET_SLOTS
            np.zeros(scratch, dtype=np.int64),  # ST_WORK
            np.zeros(scratch, dtype=np.int32),  # ST_EX_NEXT
            np.zeros(scratch, dtype=np.int32),  # ST_EX_ITEM
            np.zeros(scratch, dtype=np.int32),  # ST_EX_ORIGIN
            np.zeros(scratch, dtype=np.int64),  # ST_BUF
            np.zeros(2 * scratch, dtype=np.int64),  # ST_HS_KEYS
            np.zeros(2 * scratch, dtype=np.int64),  # ST_HS_GEN
            np.zeros(n_items, dtype=np.int64),  # ST_ITEM_STAMP
            np.zeros(n_sym, dtype=np.int64),  # ST_SYM_STAMP
            np.zeros(n_sym, dtype=np.int64),  # ST_SYM_BUF
        ]
        counts = self._store[ST_COUNTS]
        counts[C_MARK] = _NOT_SPECULATING
        counts[C_NEED] = -1
        self.transitions = IntHashMap()
        self.spec_transitions = IntHashMap()
        self._spec_counts: np.ndarray | None = None
        self.initial = 0
        while earley_close(self.grammar_arrays, self.arrays(), 0, True, -1) == GROW:
            self.grow()
        # The closure never completes with an empty span (Aycock-Horspool): say it here.
        self._store[ST_SETS][self.initial, SET_ACCEPTING] = tables.nullable[0]

    # --- storage --------------------------------------------------------------------------------

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The parser store, as the kernels take it (valid until the next :meth:`grow`)."""
        return tuple(self._store)

    def transition_arrays(self) -> tuple[np.ndarray, ...]:
        """The two transition tables, as :func:`parser_transition` takes them."""
        lasting, spec = self.transitions, self.spec_transitions
        return (lasting.keys, lasting.vals, lasting.count, spec.keys, spec.vals, spec.count)

    def grow(self) -> None:
        """Grow the array a kernel asked for (``counts[C_NEED]``), doubling it.

        Every other pool and table more than half full is doubled too: a kernel that stops for
        room costs its caller another walk pass, and the pools fill together.
        """
        counts = self._store[ST_COUNTS]
        what = int(counts[C_NEED])
        counts[C_NEED] = -1
        self._double(what)
        self._double_half_full()

    def _double_half_full(self) -> None:
        counts = self._store[ST_COUNTS]
        for count, arrays in _POOLS:
            if 2 * counts[count] > self._store[arrays[0]].shape[0]:
                self._double(arrays[0])
        for slots, (_, _, _, _, count, _) in _SLOTS.items():
            if 4 * (counts[count] + 1) > self._store[slots].shape[0]:
                self._double(slots)
        self.transitions.reserve(self.transitions.size)
        self.spec_transitions.reserve(self.spec_transitions.size)

    def make_room(self) -> None:
        """Grow before a mask what its walk would likely fill: a kernel that stops for room costs
        a walk pass over every node still to go. Checks the fastest-filling pools only; a grow
        doubles every array more than half full."""
        store, counts = self._store, self._store[ST_COUNTS]
        lasting, spec = self.transitions, self.spec_transitions
        if (
            2 * counts[C_SETS] > store[ST_SETS].shape[0]
            or 2 * counts[C_EPOOL] > store[ST_E_NEXT].shape[0]
            or 2 * counts[C_GKEY] > store[ST_GKEY].shape[0]
            or 2 * counts[C_GITEMS] > store[ST_GI_NEXT].shape[0]
            or 4 * (lasting.count[0] + 1) > lasting.keys.shape[0]
            or 4 * (spec.count[0] + 1) > spec.keys.shape[0]
        ):
            self._double_half_full()

    def _double(self, what: int) -> None:
        """Double store array ``what`` (with the arrays parallel to it), or a transition table."""
        counts = self._store[ST_COUNTS]
        if what == NEED_TRANS:
            self.transitions.reserve(self.transitions.size + 1)
        elif what == NEED_SPEC_TRANS:
            self.spec_transitions.reserve(self.spec_transitions.size + 1)
        elif what in _SCRATCH:
            for k in _SCRATCH:
                old = self._store[k]
                self._store[k] = np.zeros(2 * old.shape[0], dtype=old.dtype)
        elif what in _PARALLEL:
            for k in _PARALLEL[what]:
                old = self._store[k]
                grown = np.zeros(2 * old.shape[0], dtype=old.dtype)
                grown[: old.shape[0]] = old
                self._store[k] = grown
        elif what in _SLOTS:
            table, c0, c1, pool, count, first = _SLOTS[what]
            slots = np.full(2 * self._store[what].shape[0], -1, dtype=np.int32)
            store = self._store
            intern_rehash(slots, store[table], c0, c1, store[pool], first, int(counts[count]))
            store[what] = slots
        else:
            old = self._store[what]
            grown = np.zeros((2 * old.shape[0], *old.shape[1:]), dtype=old.dtype)
            grown[: old.shape[0]] = old
            self._store[what] = grown

    @property
    def needs_growth(self) -> bool:
        """Whether a kernel returned ``GROW`` since the last :meth:`grow`."""
        return bool(self._store[ST_COUNTS][C_NEED] >= 0)

    @property
    def num_sets(self) -> int:
        """Number of sets built so far (speculative ones included)."""
        return int(self._store[ST_COUNTS][C_SETS])

    @property
    def sets(self) -> range:
        """The ids of the sets built so far."""
        return range(self.num_sets)

    # --- sets -----------------------------------------------------------------------------------

    def accepting(self, set_id: int) -> bool:
        """Whether the input that led to ``set_id`` is a sentence."""
        return bool(self._store[ST_SETS][set_id, SET_ACCEPTING])

    def terminal_set(self, set_id: int) -> int:
        """The id of the terminal set that ``set_id`` expects next."""
        return int(self._store[ST_SETS][set_id, SET_TSET])

    def terminal_set_members(self, tset: int) -> tuple[int, ...]:
        """The terminals of terminal set ``tset``, sorted."""
        row = self._store[ST_TSETS][tset]
        return tuple(self._store[ST_TSPOOL][row[TSET_T0] : row[TSET_T1]].tolist())

    def terminals(self, set_id: int) -> tuple[int, ...]:
        """The terminals that ``set_id`` expects next, sorted."""
        return self.terminal_set_members(self.terminal_set(set_id))

    def lexeme_start(self, tset: int) -> int:
        """The lexeme start state recorded for terminal set ``tset`` (``UNKNOWN_START``: none yet)."""
        return int(self._store[ST_TSETS][tset, TSET_LEX0])

    def set_lexeme_start(self, tset: int, state: int) -> None:
        """Record the lexeme start state of terminal set ``tset`` (the walk kernels read it)."""
        self._store[ST_TSETS][tset, TSET_LEX0] = state

    def transition(
        self, set_id: int, acc: int, acc_t0: np.ndarray, acc_terms: np.ndarray, *, lasting: bool = True
    ) -> int:
        """The set after a lexeme of accepted terminal set ``acc`` (``-1``: refused), memoized.

        ``acc_terms[acc_t0[acc] : acc_t0[acc + 1]]`` are the terminals of ``acc``. A lasting set
        (one a parser state may keep) ends the speculation first, unless it exists; with
        ``lasting=False`` (a question about the set, e.g. whether it accepts) a speculative set
        serves too.
        """
        # A memoized transition is a hash lookup: cheaper than calling the kernel with the store.
        key = set_id * ACC_STRIDE + acc
        known = self.transitions.get(key)
        if known == -2 and self.spec_transitions.size and not lasting:
            known = self.spec_transitions.get(key)
        if known != -2:
            return known
        if lasting and self.speculating:
            self.end_speculation()
        while True:
            nxt = parser_transition(
                self.grammar_arrays, self.arrays(), self.transition_arrays(), acc_t0, acc_terms, set_id, acc
            )
            if nxt != GROW:
                return int(nxt)
            self.grow()

    def scan(self, set_id: int, terminals: Sequence[int]) -> int:
        """The set after one lexeme that is any of ``terminals`` (not memoized; ``-1``: refused)."""
        terms = np.array(sorted(terminals), dtype=np.int32)
        while True:
            nxt = earley_scan(self.grammar_arrays, self.arrays(), set_id, terms, 0, terms.shape[0])
            if nxt != GROW:
                return int(nxt)
            self.grow()

    # --- speculation ----------------------------------------------------------------------------

    def begin_speculation(self) -> None:
        """Start building sets that :meth:`end_speculation` will forget.

        A token mask explores every lexeme sequence the vocabulary's tokens can form, building
        many sets only one of which (at most) the output will take; forgetting them keeps memory
        proportional to the output, not to the masks computed. They are forgotten when a lasting
        set is built (:meth:`transition`): until the output finishes a lexeme, the next masks
        explore from the same sets and find them built. Transitions between sets that existed
        before are kept; prediction groups and terminal sets (bounded by the grammar) are kept too.
        """
        counts = self._store[ST_COUNTS]
        self._spec_counts = counts.copy()
        counts[C_MARK] = counts[C_SETS]

    def end_speculation(self) -> int:
        """Forget the sets built since :meth:`begin_speculation`; returns the first forgotten id."""
        saved = self._spec_counts
        if saved is None:
            raise RuntimeError("end_speculation without begin_speculation")
        counts = self._store[ST_COUNTS]
        mark = int(saved[C_SETS])
        if counts[C_SETS] > mark:
            # Slots of later ids never lie on the probe path of an earlier id (linear probing,
            # inserted in id order): emptying them leaves the earlier ones findable.
            slots = self._store[ST_SET_SLOTS]
            slots[slots >= mark] = -1
        counts[C_SETS] = mark
        counts[C_KPOOL] = saved[C_KPOOL]
        counts[C_EPOOL] = saved[C_EPOOL]
        counts[C_MARK] = _NOT_SPECULATING
        self.spec_transitions.clear()
        self._spec_counts = None
        return mark

    @property
    def speculating(self) -> bool:
        """Whether sets built now are speculative (:meth:`begin_speculation`)."""
        return self._spec_counts is not None

    @property
    def speculation_mark(self) -> int | None:
        """Ids from this one on are speculative (``None``: not speculating)."""
        return None if self._spec_counts is None else int(self._spec_counts[C_SETS])

    def parse_terminals(self, lexemes: Sequence[Sequence[int]]) -> int:
        """The set after a sequence of lexemes (each a set of candidate terminals), ``-1`` if refused."""
        state = self.initial
        for terminals in lexemes:
            if state < 0:
                return -1
            state = self.scan(state, terminals)
        return state


_NOT_SPECULATING = 1 << 62
# Pools of parallel arrays, grown together.
_PARALLEL = {ST_E_NEXT: (ST_E_NEXT, ST_E_ITEM, ST_E_ORIGIN), ST_GI_NEXT: (ST_GI_NEXT, ST_GI_ITEM)}
# Pools by the count of their used entries (the first array of each stands for its parallel ones).
_POOLS = (
    (C_SETS, (ST_SETS,)),
    (C_KPOOL, (ST_KPOOL,)),
    (C_EPOOL, (ST_E_NEXT,)),
    (C_GROUPS, (ST_GROUPS,)),
    (C_GKEY, (ST_GKEY,)),
    (C_GITEMS, (ST_GI_NEXT,)),
    (C_GTERMS, (ST_GTERMS,)),
    (C_TSETS, (ST_TSETS,)),
    (C_TSPOOL, (ST_TSPOOL,)),
)
_SCRATCH = (ST_WORK, ST_EX_NEXT, ST_EX_ITEM, ST_EX_ORIGIN, ST_BUF, ST_HS_KEYS, ST_HS_GEN)
# Intern slot tables: (table, first column, last column, pool, count, first interned id).
_SLOTS = {
    ST_SET_SLOTS: (ST_SETS, SET_K0, SET_K1, ST_KPOOL, C_SETS, 1),
    ST_GROUP_SLOTS: (ST_GROUPS, GROUP_K0, GROUP_K1, ST_GKEY, C_GROUPS, 0),
    ST_TSET_SLOTS: (ST_TSETS, TSET_T0, TSET_T1, ST_TSPOOL, C_TSETS, 0),
}
