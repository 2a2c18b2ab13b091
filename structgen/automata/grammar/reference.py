"""A plain-Python reference recognizer for the grammar engine's semantics (for tests).

It shares nothing with the engine but the terminal byte DFAs: the lexer is a tuple of alive
terminals stepped byte by byte, and the parser is a textbook Earley recognizer (sets of
``(production, dot, origin)`` items closed by a predict/complete worklist; an empty-span
completion is remembered so that later predictions of the same nonterminal advance over it). It
implements the rules documented in :mod:`structgen.automata.grammar.engine`: greedy lexing (a
lexeme ends only when the next byte cannot extend any alive terminal), contextual terminals (those
the parser expects plus the ignored ones), highest priority wins and non-ignored beats ignored
among the accepting terminals, all remaining candidates scanned at once; a guard terminal is alive
wherever a terminal it guards is expected, a byte only guard-only terminals can read is refused,
and a lexeme won only by unexpected terminals is refused.

It is slow and meant for tests: :meth:`ReferenceRecognizer.allowed_tokens` feeds every token of a
vocabulary after a prefix (sharing the work of common token prefixes, so it is a walk over the
sorted tokens, but every state is computed by the reference rules from the state before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from structgen.automata.byte_dfa import ByteDFA
from structgen.automata.cfg import ContextFreeGrammar
from structgen.automata.grammar.earley import analyze_grammar
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
    DONE,
    EMPTY_KEY,
    GROUP_I0,
    GROUP_I1,
    GROUP_K0,
    GROUP_K1,
    GROUP_T0,
    GROUP_T1,
    GROUP_TSET,
    GROW,
    L_ACC_POOL,
    L_ACCS,
    L_NEED,
    L_POOL,
    L_STATES,
    LEX_STRIDE,
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
    NEED_ROW,
    NEED_SPEC_TRANS,
    NEED_TRANS,
    NO_ENTRY,
    NO_PROJECTION,
    NOT_PROJECTED,
    ORIGIN_BITS,
    ORIGIN_MASK,
    SEEN,
    SET_ACCEPTING,
    SET_E0,
    SET_E1,
    SET_GROUP,
    SET_K0,
    SET_K1,
    SET_TSET,
    ST_BUF,
    ST_COUNTS,
    ST_E_ITEM,
    ST_E_NEXT,
    ST_E_ORIGIN,
    ST_GI_ITEM,
    ST_GI_NEXT,
    ST_GKEY,
    ST_GROUP_SLOTS,
    ST_GROUPS,
    ST_GTERMS,
    ST_KPOOL,
    ST_SET_SLOTS,
    ST_SETS,
    ST_TSET_SLOTS,
    ST_TSETS,
    ST_TSPOOL,
    ST_WORK,
    TOO_MANY_STATES,
    TSET_LEX0,
    TSET_T0,
    TSET_T1,
    UNKNOWN_PROJECTION,
    UNKNOWN_START,
)
from structgen.automata.token_trie import BYTE_CLASS, CHARS_CLASS
from structgen.vocabulary import Vocabulary

Item = tuple[int, int, int]  # (production, dot, origin set index)


@dataclass(frozen=True)
class RefState:
    """Earley sets so far, and the alive terminals of the unfinished lexeme (``None``: none)."""

    sets: tuple[frozenset[Item], ...]
    alive: tuple[tuple[int, int, bool], ...] | None


class ReferenceRecognizer:
    """Byte-level recognizer of ``grammar`` with the engine's lexing rules (see module doc)."""

    def __init__(
        self,
        grammar: ContextFreeGrammar,
        dfas: dict[str, ByteDFA],
        guards: dict[str, frozenset[str]] | None = None,
    ) -> None:
        tables = analyze_grammar(grammar)
        self.num_t = tables.num_terminals
        self.productions = tables.productions
        self.names = tables.terminal_names
        self.dfas = [dfas[name] for name in self.names]
        self.priority = [grammar.terminals[name].priority for name in self.names]
        self.ignored = frozenset(i for i, name in enumerate(self.names) if name in grammar.ignore)
        index = {name: i for i, name in enumerate(self.names)}
        self.guards = {
            index[g]: {index[k] for k in ks if k in index} for g, ks in (guards or {}).items() if g in index
        }
        self.by_lhs: dict[int, list[int]] = {}
        for p, (lhs, _) in enumerate(self.productions):
            self.by_lhs.setdefault(lhs, []).append(p)
        start_set = self._closure({(p, 0, 0) for p in self.by_lhs[0]}, 0, ())
        self.initial = RefState((start_set,), None)

    # --- Earley ----------------------------------------------------------------------------------

    def _closure(self, items: set[Item], index: int, sets: tuple[frozenset[Item], ...]) -> frozenset[Item]:
        """Predict and complete ``items`` as Earley set number ``index`` (a worklist).

        Nullable rules: a nonterminal completed with an empty span in this set is remembered, so
        an item predicting it later is advanced over it as well.
        """
        current: set[Item] = set()
        empty_done: set[int] = set()
        work = list(items)
        while work:
            item = work.pop()
            if item in current:
                continue
            current.add(item)
            p, dot, origin = item
            rhs = self.productions[p][1]
            if dot < len(rhs):
                sym = rhs[dot]
                if sym >= self.num_t:
                    nt = sym - self.num_t
                    work.extend((q, 0, index) for q in self.by_lhs.get(nt, ()))
                    if nt in empty_done:
                        work.append((p, dot + 1, origin))
                continue
            lhs = self.productions[p][0]
            if origin == index:
                empty_done.add(lhs)
                waiting_in = list(current)
            else:
                waiting_in = sets[origin]
            for q, qdot, qorigin in waiting_in:
                qrhs = self.productions[q][1]
                if qdot < len(qrhs) and qrhs[qdot] == self.num_t + lhs:
                    work.append((q, qdot + 1, qorigin))
        return frozenset(current)

    def _expected(self, items: frozenset[Item]) -> set[int]:
        out = set()
        for p, dot, _ in items:
            rhs = self.productions[p][1]
            if dot < len(rhs) and rhs[dot] < self.num_t:
                out.add(rhs[dot])
        return out

    def _scan(
        self, sets: tuple[frozenset[Item], ...], terminals: set[int]
    ) -> tuple[frozenset[Item], ...] | None:
        kernel = set()
        for p, dot, origin in sets[-1]:
            rhs = self.productions[p][1]
            if dot < len(rhs) and rhs[dot] in terminals:
                kernel.add((p, dot + 1, origin))
        if not kernel:
            return None
        return (*sets, self._closure(kernel, len(sets), sets))

    def _sentence_done(self, items: frozenset[Item]) -> bool:
        return any(p == 0 and dot == 1 and origin == 0 for p, dot, origin in items)

    # --- lexing -----------------------------------------------------------------------------------

    def _start_lexeme(self, sets: tuple[frozenset[Item], ...]) -> tuple[tuple[int, int, bool], ...]:
        """Alive terminals at a lexeme start: ``(terminal, dfa state, only alive as a guard)``."""
        real = self._expected(sets[-1]) | self.ignored
        guards = {g for g, ks in self.guards.items() if ks & real} - real
        return tuple((t, self.dfas[t].initial, t in guards) for t in sorted(real | guards))

    def _step_alive(
        self, alive: tuple[tuple[int, int, bool], ...], byte: int
    ) -> tuple[tuple[int, int, bool], ...]:
        return tuple(
            (t, int(self.dfas[t].transitions[s, byte]), g)
            for t, s, g in alive
            if self.dfas[t].transitions[s, byte] >= 0
        )

    def _finish_lexeme(self, state: RefState) -> tuple[frozenset[Item], ...] | None:
        """The Earley sets after ending the unfinished lexeme, or ``None`` if it is no lexeme."""
        if state.alive is None:
            return state.sets
        accepting = [t for t, s, _ in state.alive if self.dfas[t].accepting[s]]
        if not accepting:
            return None
        best = max(self.priority[t] for t in accepting)
        top = {t for t in accepting if self.priority[t] == best}
        kept = top - self.ignored
        if not kept:
            return state.sets
        return self._scan(state.sets, kept)

    def feed(self, state: RefState, byte: int) -> RefState | None:
        """The state after one more byte, or ``None`` if the output is no longer valid."""
        alive = state.alive if state.alive is not None else self._start_lexeme(state.sets)
        stepped = self._step_alive(alive, byte)
        if stepped:
            # Longest match: the lexeme goes on. If only guards go on, it can only end refused.
            return RefState(state.sets, stepped) if not all(g for _, _, g in stepped) else None
        if state.alive is None:
            return None
        sets = self._finish_lexeme(state)
        if sets is None:
            return None
        restart = self._step_alive(self._start_lexeme(sets), byte)
        if not restart or all(g for _, _, g in restart):
            return None
        return RefState(sets, restart)

    def feed_bytes(self, state: RefState | None, data: bytes) -> RefState | None:
        """:meth:`feed` over several bytes."""
        for byte in data:
            if state is None:
                return None
            state = self.feed(state, byte)
        return state

    def is_accepting(self, state: RefState) -> bool:
        """Whether the output is a complete sentence."""
        sets = self._finish_lexeme(state)
        return sets is not None and self._sentence_done(sets[-1])

    def accepts(self, data: bytes) -> bool:
        """Whether ``data`` is a complete sentence."""
        state = self.feed_bytes(self.initial, data)
        return state is not None and self.is_accepting(state)

    def allowed_tokens(self, state: RefState, vocab: Vocabulary) -> set[int]:
        """Ids of the text tokens ``t`` such that the output after ``t`` is still valid."""
        tokens = sorted((data, i) for i, data in enumerate(vocab.token_bytes) if data)
        allowed: set[int] = set()
        # Stack of (bytes prefix, state after it); tokens are sorted so prefixes come first.
        stack: list[tuple[bytes, RefState | None]] = [(b"", state)]
        for data, token_id in tokens:
            while not data.startswith(stack[-1][0]):
                stack.pop()
            base, cur = stack[-1]
            for k in range(len(base), len(data)):
                cur = self.feed(cur, data[k]) if cur is not None else None
                stack.append((data[: k + 1], cur))
            if cur is not None:
                allowed.add(token_id)
        return allowed


# --- plain-Python twins of the numba kernels (structgen.automata.grammar.kernels) ----------------
#
# Each ``<kernel>_reference`` takes the same arguments as its kernel and leaves the same results in
# the same arrays (scratch arrays aside), written the obvious way: Python sets, lists and sorts
# instead of stamps, stacks and binary searches. tests/test_grammar_kernels.py compares them.

_MASK64 = (1 << 64) - 1
_FIBONACCI = 0x9E3779B97F4A7C15


def _int64(value: int) -> int:
    """``value`` wrapped to a signed 64-bit integer, as numba's int64 arithmetic does."""
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def _slot(key: int, mask: int) -> int:
    """The home slot of ``key`` in a table of ``mask + 1`` slots (bits 29.. of the product)."""
    return (((key * _FIBONACCI) & _MASK64) >> 29) & mask


def _seq_hash(seq: Sequence[int]) -> int:
    """The hash the intern tables use for an integer sequence."""
    h = len(seq)
    for value in seq:
        h = _int64((h ^ int(value)) * _FIBONACCI)
        h ^= h >> 32
    return h


def _ask(counts: np.ndarray, need: int, what: int) -> int:
    """Record which array to grow (``counts[need]``) and return ``GROW``."""
    counts[need] = what
    return GROW


def _set_bit(out: np.ndarray, t: int) -> None:
    out[t >> 5] |= np.uint32(1 << (t & 31))


def hash_get_reference(keys: np.ndarray, vals: np.ndarray, key: int) -> int:
    """Plain-Python :func:`~.kernels.hash_get`."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while int(keys[i]) != EMPTY_KEY:
        if int(keys[i]) == key:
            return int(vals[i])
        i = (i + 1) & mask
    return -2


def hash_put_reference(keys: np.ndarray, vals: np.ndarray, key: int, value: int) -> None:
    """Plain-Python :func:`~.kernels.hash_put`."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while int(keys[i]) not in (key, EMPTY_KEY):
        i = (i + 1) & mask
    keys[i], vals[i] = key, value


def hash_get_many_reference(keys: np.ndarray, vals: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Plain-Python :func:`~.kernels.hash_get_many`."""
    return np.array([hash_get_reference(keys, vals, key) for key in query.tolist()], dtype=np.int64)


def subtree_keys_reference(
    nodes: np.ndarray, lexers: np.ndarray, proj: np.ndarray, index_keys: np.ndarray, index_vals: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python :func:`~.kernels.subtree_keys`."""
    keys = sorted({int(node) * LEX_STRIDE + int(lexer) for node, lexer in zip(nodes, lexers, strict=True)})
    projected = {
        key // LEX_STRIDE * LEX_STRIDE + int(proj[key % LEX_STRIDE])
        for key in keys
        if proj[key % LEX_STRIDE] >= 0
    }
    missing = sorted(key for key in projected if hash_get_reference(index_keys, index_vals, key) < 0)
    return np.array(keys, dtype=np.int64), np.array(missing, dtype=np.int64)


def hash_put_many_reference(
    keys: np.ndarray, vals: np.ndarray, new_keys: np.ndarray, new_vals: np.ndarray
) -> int:
    """Plain-Python :func:`~.kernels.hash_put_many`."""
    added = 0
    for key, value in zip(new_keys.tolist(), new_vals.tolist(), strict=True):
        added += hash_get_reference(keys, vals, key) == -2
        hash_put_reference(keys, vals, key, value)
    return added


def hash_put_absent_reference(keys: np.ndarray, vals: np.ndarray, new_keys: np.ndarray, value: int) -> int:
    """Plain-Python :func:`~.kernels.hash_put_absent`."""
    added = 0
    for key in new_keys.tolist():
        if hash_get_reference(keys, vals, key) == -2:
            hash_put_reference(keys, vals, key, value)
            added += 1
    return added


def _intern_find(
    slots: np.ndarray, table: np.ndarray, c0: int, c1: int, pool: np.ndarray, seq: Sequence[int]
) -> int:
    """The id whose pool range ``table[id, c0]:table[id, c1]`` is ``seq``, else ``-1 - free slot``."""
    mask = slots.shape[0] - 1
    i = _slot(_seq_hash(seq), mask)
    while slots[i] >= 0:
        ident = int(slots[i])
        if pool[table[ident, c0] : table[ident, c1]].tolist() == list(seq):
            return ident
        i = (i + 1) & mask
    return -1 - i


def intern_rehash_reference(
    slots: np.ndarray, table: np.ndarray, c0: int, c1: int, pool: np.ndarray, first: int, n: int
) -> None:
    """Plain-Python :func:`~.kernels.intern_rehash`."""
    for ident in range(first, n):
        free = _intern_find(slots, table, c0, c1, pool, pool[table[ident, c0] : table[ident, c1]].tolist())
        slots[-1 - free] = ident


# --- the Earley parser's store (see EarleyParser) -------------------------------------------------


def _explicit_items(st: tuple, s: int) -> list[tuple[int, int, int]]:
    """``(next symbol, item, origin)`` of the explicit items of set ``s``, in stored order."""
    lo, hi = st[ST_SETS][s, SET_E0], st[ST_SETS][s, SET_E1]
    return list(
        zip(
            st[ST_E_NEXT][lo:hi].tolist(),
            st[ST_E_ITEM][lo:hi].tolist(),
            st[ST_E_ORIGIN][lo:hi].tolist(),
            strict=True,
        )
    )


def _group_items(st: tuple, g: int) -> list[tuple[int, int]]:
    """``(next symbol, item)`` of prediction group ``g`` (none for ``-1``)."""
    if g < 0:
        return []
    lo, hi = st[ST_GROUPS][g, GROUP_I0], st[ST_GROUPS][g, GROUP_I1]
    return list(zip(st[ST_GI_NEXT][lo:hi].tolist(), st[ST_GI_ITEM][lo:hi].tolist(), strict=True))


def _group_terminals(st: tuple, g: int) -> set[int]:
    if g < 0:
        return set()
    return set(st[ST_GTERMS][st[ST_GROUPS][g, GROUP_T0] : st[ST_GROUPS][g, GROUP_T1]].tolist())


def _pair(item: int, origin: int) -> int:
    return (item << ORIGIN_BITS) | origin


def _group_of_reference(gram: tuple, st: tuple, nonterminals: list[int]) -> int:
    """The prediction group of the sorted ``nonterminals`` (built if new), or ``GROW``."""
    item_next, _, _, pred_start, pred_items, num_t = gram
    counts, groups, gkey = st[ST_COUNTS], st[ST_GROUPS], st[ST_GKEY]
    found = _intern_find(st[ST_GROUP_SLOTS], groups, GROUP_K0, GROUP_K1, gkey, nonterminals)
    if found >= 0:
        return found
    g = int(counts[C_GROUPS])
    if g >= groups.shape[0]:
        return _ask(counts, C_NEED, ST_GROUPS)
    if 2 * (g + 1) > st[ST_GROUP_SLOTS].shape[0]:
        return _ask(counts, C_NEED, ST_GROUP_SLOTS)
    if counts[C_GKEY] + len(nonterminals) > gkey.shape[0]:
        return _ask(counts, C_NEED, ST_GKEY)
    # Completed items (empty spans) are left out: the nullable rule handles them.
    items = sorted(
        {
            (int(item_next[item]), int(item))
            for nt in nonterminals
            for item in pred_items[pred_start[nt] : pred_start[nt + 1]]
            if item_next[item] >= 0
        }
    )
    if len(items) > st[ST_WORK].shape[0]:
        return _ask(counts, C_NEED, ST_WORK)
    if counts[C_GITEMS] + len(items) > st[ST_GI_NEXT].shape[0]:
        return _ask(counts, C_NEED, ST_GI_NEXT)
    if counts[C_GTERMS] + len(items) > st[ST_GTERMS].shape[0]:
        return _ask(counts, C_NEED, ST_GTERMS)
    terminals = sorted({nxt for nxt, _ in items if nxt < num_t})
    k0, i0, t0 = int(counts[C_GKEY]), int(counts[C_GITEMS]), int(counts[C_GTERMS])
    gkey[k0 : k0 + len(nonterminals)] = nonterminals
    st[ST_GI_NEXT][i0 : i0 + len(items)] = [nxt for nxt, _ in items]
    st[ST_GI_ITEM][i0 : i0 + len(items)] = [item for _, item in items]
    st[ST_GTERMS][t0 : t0 + len(terminals)] = terminals
    groups[g] = (k0, k0 + len(nonterminals), i0, i0 + len(items), t0, t0 + len(terminals), -1)
    counts[C_GKEY] += len(nonterminals)
    counts[C_GITEMS] += len(items)
    counts[C_GTERMS] += len(terminals)
    counts[C_GROUPS] = g + 1
    st[ST_GROUP_SLOTS][-1 - found] = g
    return g


def _terminal_set_of_reference(st: tuple, terminals: list[int]) -> int:
    """The terminal set of the sorted ``terminals`` (interned if new), or ``GROW``."""
    counts, tsets, tspool = st[ST_COUNTS], st[ST_TSETS], st[ST_TSPOOL]
    found = _intern_find(st[ST_TSET_SLOTS], tsets, TSET_T0, TSET_T1, tspool, terminals)
    if found >= 0:
        return found
    ts = int(counts[C_TSETS])
    if ts >= tsets.shape[0]:
        return _ask(counts, C_NEED, ST_TSETS)
    if 2 * (ts + 1) > st[ST_TSET_SLOTS].shape[0]:
        return _ask(counts, C_NEED, ST_TSET_SLOTS)
    t0 = int(counts[C_TSPOOL])
    if t0 + len(terminals) > tspool.shape[0]:
        return _ask(counts, C_NEED, ST_TSPOOL)
    tspool[t0 : t0 + len(terminals)] = terminals
    tsets[ts] = (t0, t0 + len(terminals), UNKNOWN_START)
    counts[C_TSPOOL] = t0 + len(terminals)
    counts[C_TSETS] = ts + 1
    st[ST_TSET_SLOTS][-1 - found] = ts
    return ts


def earley_close_reference(gram: tuple, st: tuple, n_kernel: int, predict_start: bool, slot: int) -> int:
    """Plain-Python :func:`~.kernels.earley_close`: a depth-first complete/advance worklist.

    The worklist is a stack visited in the kernel's order, because the order explicit items are
    found in is the order they keep among items expecting the same symbol.
    """
    item_next, item_lhs, nullable, _, _, num_t = gram
    counts, sets = st[ST_COUNTS], st[ST_SETS]
    s = int(counts[C_SETS])
    if s >= sets.shape[0]:
        return _ask(counts, C_NEED, ST_SETS)
    if 2 * (s + 1) > st[ST_SET_SLOTS].shape[0]:
        return _ask(counts, C_NEED, ST_SET_SLOTS)
    if counts[C_KPOOL] + n_kernel > st[ST_KPOOL].shape[0]:
        return _ask(counts, C_NEED, ST_KPOOL)
    kernel = st[ST_BUF][:n_kernel].tolist()
    seen = set(kernel)
    stack = list(kernel)
    explicit: list[tuple[int, int, int]] = []  # (next symbol, item, origin)
    accepting = False
    while stack:
        code = stack.pop()
        item, origin = code >> ORIGIN_BITS, code & ORIGIN_MASK
        nxt = int(item_next[item])
        if nxt < 0:  # complete: advance the items of the origin set waiting for the lhs
            lhs = int(item_lhs[item])
            accepting = accepting or (lhs == 0 and origin == 0)
            waiting = num_t + lhs
            pairs = [(i + 1, o) for n, i, o in _explicit_items(st, origin) if n == waiting]
            group = _group_items(st, int(sets[origin, SET_GROUP]))
            pairs += [(i + 1, origin) for n, i in group if n == waiting]
            found = [_pair(i, _tail_origin_reference(gram, st, i, o)) for i, o in pairs]
        else:
            explicit.append((nxt, item, origin))
            # Aycock-Horspool: a nullable nonterminal is also skipped.
            found = [_pair(item + 1, origin)] if nxt >= num_t and nullable[nxt - num_t] else []
        for new in found:
            if new not in seen:
                seen.add(new)
                stack.append(new)
    if len(seen) + 1 >= st[ST_WORK].shape[0]:
        return _ask(counts, C_NEED, ST_WORK)
    e0 = int(counts[C_EPOOL])
    if e0 + len(explicit) > st[ST_E_NEXT].shape[0]:
        return _ask(counts, C_NEED, ST_E_NEXT)
    predicted = {nxt - num_t for nxt, _, _ in explicit if nxt >= num_t} | ({0} if predict_start else set())
    g = _group_of_reference(gram, st, sorted(predicted)) if predicted else -1
    if g == GROW:
        return GROW
    if kernel:  # the same items as the first kernel item's origin set: that set again
        c = kernel[0] & ORIGIN_MASK
        same = {_pair(i, o) for _, i, o in _explicit_items(st, c)} == {_pair(i, o) for _, i, o in explicit}
        if same and int(sets[c, SET_GROUP]) == g and bool(sets[c, SET_ACCEPTING]) == accepting:
            return c
    explicit_terminals = {nxt for nxt, _, _ in explicit if nxt < num_t}
    ts = _terminal_set_of_reference(st, sorted(explicit_terminals | _group_terminals(st, g)))
    if ts == GROW:
        return GROW
    if g >= 0 and explicit_terminals <= _group_terminals(st, g):
        st[ST_GROUPS][g, GROUP_TSET] = ts  # sets of this group expecting nothing else share it
    explicit.sort(key=lambda entry: entry[0])  # stable: equal symbols keep the order found
    st[ST_E_NEXT][e0 : e0 + len(explicit)] = [nxt for nxt, _, _ in explicit]
    st[ST_E_ITEM][e0 : e0 + len(explicit)] = [item for _, item, _ in explicit]
    st[ST_E_ORIGIN][e0 : e0 + len(explicit)] = [origin for _, _, origin in explicit]
    k0 = int(counts[C_KPOOL])
    st[ST_KPOOL][k0 : k0 + n_kernel] = kernel
    sets[s] = (k0, k0 + n_kernel, e0, e0 + len(explicit), g, ts, accepting)
    counts[C_KPOOL] = k0 + n_kernel
    counts[C_EPOOL] = e0 + len(explicit)
    counts[C_SETS] = s + 1
    if slot >= 0:
        st[ST_SET_SLOTS][slot] = s
    return s


def _tail_origin_reference(gram: tuple, st: tuple, item: int, origin: int) -> int:
    """Plain-Python ``kernels._tail_origin`` (of the pair ``(item, origin)``): the origin moved down."""
    item_next, item_lhs, num_t = gram[0], gram[1], gram[5]
    sym = num_t + int(item_lhs[item])
    while True:
        expecting = [(i, o) for n, i, o in _explicit_items(st, origin) if n == sym]
        predicted = [i for n, i in _group_items(st, int(st[ST_SETS][origin, SET_GROUP])) if n == sym]
        if len(expecting) != 1 or predicted:
            return origin
        i, below = expecting[0]
        if item_lhs[i] != item_lhs[item] or item_next[i + 1] >= 0:
            return origin
        origin = below


def earley_scan_reference(gram: tuple, st: tuple, s: int, terms: np.ndarray, t0: int, t1: int) -> int:
    """Plain-Python :func:`~.kernels.earley_scan`."""
    counts = st[ST_COUNTS]
    scanned = set(terms[t0:t1].tolist())
    pairs = [(i + 1, o) for n, i, o in _explicit_items(st, s) if n in scanned]
    pairs += [(i + 1, s) for n, i in _group_items(st, int(st[ST_SETS][s, SET_GROUP])) if n in scanned]
    if len(pairs) > st[ST_BUF].shape[0]:
        return _ask(counts, C_NEED, ST_WORK)
    if not pairs:
        return -1
    kernel = sorted({_pair(i, _tail_origin_reference(gram, st, i, o)) for i, o in pairs})
    found = _intern_find(st[ST_SET_SLOTS], st[ST_SETS], SET_K0, SET_K1, st[ST_KPOOL], kernel)
    if found >= 0:
        return found
    st[ST_BUF][: len(kernel)] = kernel
    return earley_close_reference(gram, st, len(kernel), False, -1 - found)


def parser_transition_reference(
    gram: tuple, st: tuple, tr: tuple, acc_t0: np.ndarray, acc_terms: np.ndarray, p: int, acc: int
) -> int:
    """Plain-Python :func:`~.kernels.parser_transition`."""
    lkeys, lvals, lcount, skeys, svals, scount = tr
    counts = st[ST_COUNTS]
    key = p * ACC_STRIDE + acc
    for keys, vals in ((lkeys, lvals), (skeys, svals)):
        known = hash_get_reference(keys, vals, key)
        if known != -2:
            return known
    if counts[C_NEED] >= 0:
        return GROW
    if 2 * (lcount[0] + 1) > lkeys.shape[0]:
        return _ask(counts, C_NEED, NEED_TRANS)
    if 2 * (scount[0] + 1) > skeys.shape[0]:
        return _ask(counts, C_NEED, NEED_SPEC_TRANS)
    nxt = earley_scan_reference(gram, st, p, acc_terms, int(acc_t0[acc]), int(acc_t0[acc + 1]))
    if nxt == GROW:
        return GROW
    lasting = p < counts[C_MARK] and nxt < counts[C_MARK]
    keys, vals, count = (lkeys, lvals, lcount) if lasting else (skeys, svals, scount)
    hash_put_reference(keys, vals, key, nxt)
    count[0] += 1
    return nxt


# --- the lexer's store (see LazyLexer) ------------------------------------------------------------


def _lexer_accepting_reference(lxs: tuple, lxd: tuple, lo: int, hi: int) -> int:
    """The accepted terminal set of the state whose codes are ``pool[lo:hi]``: id, ``-1`` or ``GROW``."""
    g_accepting, g_terminal, priorities, ignored = lxs[1], lxs[2], lxs[3], lxs[4]
    counts, acc_table, acc_pool = lxd[LX_COUNTS], lxd[LX_ACC_TABLE], lxd[LX_ACC_POOL]
    terminals = [
        int(g_terminal[code >> 1]) for code in lxd[LX_POOL][lo:hi].tolist() if g_accepting[code >> 1]
    ]
    if not terminals:
        return -1
    best = max(priorities[t] for t in terminals)
    top = [t for t in terminals if priorities[t] == best]
    kept = [t for t in top if not ignored[t]]
    n_acc, a0 = int(counts[L_ACCS]), int(counts[L_ACC_POOL])
    if n_acc >= acc_table.shape[0] or n_acc >= lxd[LX_ACC_IGNORE].shape[0]:
        return _ask(counts, L_NEED, LX_ACC_TABLE)
    if 2 * (n_acc + 1) > lxd[LX_ACC_SLOTS].shape[0]:
        return _ask(counts, L_NEED, LX_ACC_SLOTS)
    if a0 + 1 + (hi - lo) > acc_pool.shape[0]:
        return _ask(counts, L_NEED, LX_ACC_POOL)
    key = [int(not kept), *(kept or top)]
    found = _intern_find(lxd[LX_ACC_SLOTS], acc_table, 0, 1, acc_pool, key)
    if found >= 0:
        return found
    acc_pool[a0 : a0 + len(key)] = key
    acc_table[n_acc] = (a0, a0 + len(key))
    lxd[LX_ACC_IGNORE][n_acc] = not kept
    lxd[LX_ACC_SLOTS][-1 - found] = n_acc
    counts[L_ACCS] = n_acc + 1
    counts[L_ACC_POOL] = a0 + len(key)
    return n_acc


def lexer_intern_reference(lxs: tuple, lxd: tuple, n: int) -> int:
    """Plain-Python :func:`~.kernels.lexer_intern`."""
    counts, table, pool = lxd[LX_COUNTS], lxd[LX_TABLE], lxd[LX_POOL]
    key = lxd[LX_BUF][:n].tolist()
    found = _intern_find(lxd[LX_SLOTS], table, 0, 1, pool, key)
    if found >= 0:
        return found
    s = int(counts[L_STATES])
    if s >= lxs[5]:
        return TOO_MANY_STATES
    arrays = (table, lxd[LX_TRANS], lxd[LX_ACC], lxd[LX_HAS_EXIT], lxd[LX_PROJ])
    if s >= min(array.shape[0] for array in arrays):
        return _ask(counts, L_NEED, LX_TABLE)
    if 2 * (s + 1) > lxd[LX_SLOTS].shape[0]:
        return _ask(counts, L_NEED, LX_SLOTS)
    p0 = int(counts[L_POOL])
    if p0 + n > pool.shape[0]:
        return _ask(counts, L_NEED, LX_POOL)
    pool[p0 : p0 + n] = key
    accepted = _lexer_accepting_reference(lxs, lxd, p0 + 1, p0 + n)
    if accepted == GROW:
        return GROW
    table[s] = (p0, p0 + n)
    lxd[LX_TRANS][s] = -2
    lxd[LX_ACC][s] = accepted
    lxd[LX_HAS_EXIT][s] = False
    lxd[LX_PROJ][s] = NO_PROJECTION if n == 2 else UNKNOWN_PROJECTION
    lxd[LX_SLOTS][-1 - found] = s
    counts[L_POOL] = p0 + n
    counts[L_STATES] = s + 1
    return s


def lexeme_start_state_reference(lxs: tuple, lxd: tuple, terms: np.ndarray, t0: int, t1: int) -> int:
    """Plain-Python :func:`~.kernels.lexeme_start_state`."""
    ignored, initial, guard_start, guard_of = lxs[4], lxs[10], lxs[11], lxs[12]
    allowed = set(terms[t0:t1].tolist())
    alive = allowed | {t for t in range(initial.shape[0]) if ignored[t]}
    guards = {int(g) for t in allowed for g in guard_of[guard_start[t] : guard_start[t + 1]]} - alive
    codes = [int(initial[t]) << 1 for t in alive] + [(int(initial[g]) << 1) | 1 for g in guards]
    key = [1, *sorted(codes)]
    lxd[LX_BUF][: len(key)] = key
    return lexer_intern_reference(lxs, lxd, len(key))


def lexer_row_reference(lxs: tuple, lxd: tuple, state: int) -> int:
    """Plain-Python :func:`~.kernels.lexer_row`: each byte's successor codes, interned."""
    gtrans = lxs[0]
    codes = lxd[LX_POOL][lxd[LX_TABLE][state, 0] + 1 : lxd[LX_TABLE][state, 1]].tolist()
    row = []
    for byte in range(256):
        stepped = [
            (int(gtrans[code >> 1, byte]) << 1) | (code & 1) for code in codes if gtrans[code >> 1, byte] >= 0
        ]
        if not stepped:
            row.append(-1)  # dead
        elif all(code & 1 for code in stepped):
            row.append(-3)  # blocked: only guard-only terminals read the byte
        else:
            lxd[LX_BUF][: 1 + len(stepped)] = [0, *stepped]
            successor = lexer_intern_reference(lxs, lxd, 1 + len(stepped))
            if successor < 0:
                return successor
            row.append(successor)
    lxd[LX_TRANS][state] = row
    lxd[LX_HAS_EXIT][state] = any(value != -1 for value in row)
    looping = {int(c) for c in BYTE_CLASS} - {int(BYTE_CLASS[b]) for b in range(256) if row[b] != state}
    if all(lxs[6][code >> 1] for code in codes):
        looping.add(CHARS_CLASS)
    lxd[LX_LOOPS][state] = sum(1 << c for c in looping)
    return 0


def _reads_within_reference(lxs: tuple, a: int, b: int) -> bool:
    """Plain-Python :func:`~.kernels.reads_within` (without a limit)."""
    gtrans = lxs[0]
    seen = {(a, b)}
    todo = [(a, b)]
    while todo:
        x, y = todo.pop()
        for byte in np.flatnonzero(gtrans[x] >= 0).tolist():
            if gtrans[y, byte] < 0:
                return False
            pair = (int(gtrans[x, byte]), int(gtrans[y, byte]))
            if pair not in seen:
                seen.add(pair)
                todo.append(pair)
    return True


def lexer_projection_reference(lxs: tuple, lxd: tuple, state: int) -> int:
    """Plain-Python :func:`~.kernels.lexer_projection`."""
    proj = lxd[LX_PROJ]
    if proj[state] != UNKNOWN_PROJECTION:
        return int(proj[state])
    codes = lxd[LX_POOL][lxd[LX_TABLE][state, 0] + 1 : lxd[LX_TABLE][state, 1]].tolist()
    terminal_of, guard_start, guard_of = lxs[2], lxs[11], lxs[12]

    def guards_all(code: int) -> bool:
        g = int(terminal_of[code >> 1])
        return all(
            g in guard_of[guard_start[t] : guard_start[t + 1]].tolist()
            and _reads_within_reference(lxs, other >> 1, code >> 1)
            for other in codes
            if other != code
            for t in [int(terminal_of[other >> 1])]
        )

    found = [code for code in codes if code & 1 == 0 and len(codes) >= 2 and guards_all(code)]
    if not found:
        proj[state] = NO_PROJECTION
        return NO_PROJECTION
    lxd[LX_BUF][:2] = (0, found[0])
    single = lexer_intern_reference(lxs, lxd, 2)
    if single >= 0:
        proj[state] = single
    return single


def lockstep_patches_reference(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    lex_trans: np.ndarray,
    root: int,
    x0: int,
    y0: int,
    lock: tuple,
    lxs: tuple,
    lxd: tuple,
) -> int:
    """Plain-Python :func:`~.kernels.lockstep_patches`."""
    patches: list[tuple[int, int]] = []
    stack = {0: (x0, y0)}
    base = int(node_depth[root])
    i = root + 1
    while i < int(node_skip[root]):
        d = int(node_depth[i]) - base
        x, y = stack[d - 1]
        b = int(node_byte[i])
        for state in (x, y):
            if lex_trans[state, b] == -2:
                status = lexer_row_reference(lxs, lxd, state)
                if status != 0:
                    return status
        nx, ny = int(lex_trans[x, b]), int(lex_trans[y, b])
        if nx != ny and (nx < 0 or ny < 0):
            return NOT_PROJECTED
        if nx == ny:  # the same state below, or the same end
            if nx == -1:
                patches.append((i, x))
            i = int(node_skip[i])
            continue
        stack[d] = (nx, ny)
        i += 1
    for k, (node, lexer) in enumerate(patches):
        lock[2][k], lock[3][k] = node, lexer
    return len(patches)


def _projected_entry(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    lex_trans: np.ndarray,
    sub: tuple,
    node: int,
    lexer: int,
    lock: tuple,
    lxs: tuple,
    lxd: tuple,
) -> tuple[int, list[tuple[int, int]], int]:
    """Plain-Python ``kernels._projected_entry``: ``(entry, boundaries, projection)``, the
    boundaries of the projection's entry with ``lexer``'s states."""
    single = lexer_projection_reference(lxs, lxd, lexer)
    if single < 0:
        return -1, [], -1
    entry = hash_get_reference(sub[0], sub[1], node * LEX_STRIDE + single)
    if entry < 0:
        return NO_ENTRY, [], single
    trie = (node_byte, node_depth, node_skip)
    n = lockstep_patches_reference(*trie, lex_trans, node, lexer, single, lock, lxs, lxd)
    if n < 0:
        if n == NOT_PROJECTED:
            lxd[LX_PROJ][lexer] = NO_PROJECTION
        return -1, [], single
    patches = {int(lock[2][k]): int(lock[3][k]) for k in range(n)}
    table = sub[2]
    bounds = [(int(sub[4][k]), int(sub[5][k])) for k in range(int(table[entry, 2]), int(table[entry, 3]))]
    if not set(patches) <= {b for b, _ in bounds}:
        return -1, [], single
    return entry, [(b, patches.get(b, lx)) for b, lx in bounds], single


# --- the mask walks ------------------------------------------------------------------------------


def subtree_walks_reference(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    token_start: np.ndarray,
    token_ids: np.ndarray,
    node_token: np.ndarray,
    node_classes: np.ndarray,
    lex_trans: np.ndarray,
    roots: np.ndarray,
    lexers: np.ndarray,
    out: np.ndarray,
    tokens: np.ndarray,
    t_end: np.ndarray,
    bnodes: np.ndarray,
    blex: np.ndarray,
    b_end: np.ndarray,
    stack: np.ndarray,
    resume: np.ndarray,
    min_subtree: int,
    sub: tuple,
    def_node: np.ndarray,
    def_lexer: np.ndarray,
    fresh: np.ndarray,
    min_shared: int,
    class_of: np.ndarray,
    shared_final: np.ndarray,
    shared: tuple,
    lock: tuple,
    lxs: tuple,
    lxd: tuple,
) -> tuple[int, int]:
    """Plain-Python :func:`~.kernels.subtree_walks` (same arguments, same results).

    Tokens are read from the ``token_start`` slices, not from their ``node_token`` summary.
    """
    sub_table, sub_tokens = sub[2], sub[3]
    k, i, n_t, n_b, n_def, n_fresh = (int(x) for x in resume)
    while k < roots.shape[0]:
        root = int(roots[k])
        stack[int(node_depth[root])] = lexers[k]
        if not out.shape[0] and i == root + 1:
            trie = (node_byte, node_depth, node_skip)
            entry, bounds, _ = _projected_entry(*trie, lex_trans, sub, root, int(lexers[k]), lock, lxs, lxd)
            if entry >= 0:
                for j in range(int(sub_table[entry, 0]), int(sub_table[entry, 1])):
                    tokens[n_t] = sub_tokens[j]
                    n_t += 1
                for node, lexer in bounds:
                    bnodes[n_b], blex[n_b] = node, lexer
                    n_b += 1
                i = int(node_skip[root])
        while i < int(node_skip[root]):
            d = int(node_depth[i])
            lx = int(stack[d - 1])
            nl = int(lex_trans[lx, node_byte[i]])
            if nl == -2 and lexer_row_reference(lxs, lxd, lx) == 0:
                nl = int(lex_trans[lx, node_byte[i]])
            if nl == -2:
                resume[:] = (k, i, n_t, n_b, n_def, n_fresh)
                return NEED_ROW, lx
            if nl < 0:
                if nl == -1:
                    bnodes[n_b], blex[n_b] = i, lx
                    n_b += 1
                i = int(node_skip[i])
                continue
            stack[d] = nl
            for j in range(int(token_start[i]), int(token_start[i + 1])):
                if out.shape[0]:
                    _set_bit(out, int(token_ids[j]))
                else:
                    tokens[n_t] = token_ids[j]
                    n_t += 1
            if int(node_classes[i]) & ~int(lxd[LX_LOOPS][nl]) == 0:
                for j in range(int(token_start[i + 1]), int(token_start[node_skip[i]])):
                    if out.shape[0]:
                        _set_bit(out, int(token_ids[j]))
                    else:
                        tokens[n_t] = token_ids[j]
                        n_t += 1
                i = int(node_skip[i])
                continue
            if out.shape[0] and int(node_skip[i]) - i > min_shared:
                members = lxd[LX_POOL][lxd[LX_TABLE][nl, 0] + 1 : lxd[LX_TABLE][nl, 1]].tolist()
                if len(members) == 1 and members[0] & 1 == 0 and class_of[members[0] >> 1] >= 0:
                    key = i * LEX_STRIDE + int(class_of[members[0] >> 1])
                    entry = hash_get_reference(shared[0], shared[1], key)
                    if entry >= 0:
                        for j in range(int(shared[2][entry, 0]), int(shared[2][entry, 1])):
                            _set_bit(out, int(shared[3][j]))
                        final = shared_final[lxs[2][members[0] >> 1]]
                        for j in range(int(shared[2][entry, 2]), int(shared[2][entry, 3])):
                            bnodes[n_b], blex[n_b] = shared[4][j], final
                            n_b += 1
                    else:
                        def_node[n_def], def_lexer[n_def] = i, nl
                        n_def += 1
                    i = int(node_skip[i])
                    continue
            if out.shape[0] and int(node_skip[i]) - i > min_subtree:
                key = i * LEX_STRIDE + nl
                entry = hash_get_reference(sub[0], sub[1], key)
                if entry >= 0:
                    for j in range(int(sub_table[entry, 0]), int(sub_table[entry, 1])):
                        _set_bit(out, int(sub_tokens[j]))
                    for j in range(int(sub_table[entry, 2]), int(sub_table[entry, 3])):
                        bnodes[n_b], blex[n_b] = sub[4][j], sub[5][j]
                        n_b += 1
                    i = int(node_skip[i])
                    continue
                seen = entry == SEEN
                entry, bounds, _ = _projected_entry(
                    node_byte, node_depth, node_skip, lex_trans, sub, i, nl, lock, lxs, lxd
                )
                if entry >= 0:
                    for j in range(int(sub_table[entry, 0]), int(sub_table[entry, 1])):
                        _set_bit(out, int(sub_tokens[j]))
                    for node, lexer in bounds:
                        bnodes[n_b], blex[n_b] = node, lexer
                        n_b += 1
                    i = int(node_skip[i])
                    continue
                if seen or entry == NO_ENTRY:
                    def_node[n_def], def_lexer[n_def] = i, nl
                    n_def += 1
                    i = int(node_skip[i])
                    continue
                fresh[n_fresh] = key
                n_fresh += 1
            i += 1
        t_end[k], b_end[k] = n_t, n_b
        k += 1
        if k < roots.shape[0]:
            i = int(roots[k]) + 1
    resume[:] = (k, i, n_t, n_b, n_def, n_fresh)
    return DONE, 0


def walk_entries_reference(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    token_start: np.ndarray,
    token_ids: np.ndarray,
    node_token: np.ndarray,
    node_classes: np.ndarray,
    lex_trans: np.ndarray,
    lex_acc: np.ndarray,
    acc_ignore: np.ndarray,
    gram: tuple,
    st: tuple,
    tr: tuple,
    acc_t0: np.ndarray,
    acc_terms: np.ndarray,
    e_node: np.ndarray,
    e_parser: np.ndarray,
    e_lexer: np.ndarray,
    n_entries: int,
    out: np.ndarray,
    stack_p: np.ndarray,
    stack_l: np.ndarray,
    pend_node: np.ndarray,
    pend_parser: np.ndarray,
    pend_lexer: np.ndarray,
    miss: np.ndarray,
    min_subtree: int,
    sub: tuple,
    def_node: np.ndarray,
    def_lexer: np.ndarray,
    fresh: np.ndarray,
    recent_keys: np.ndarray,
    recent_next: np.ndarray,
    lock: tuple,
    lxs: tuple,
    lxd: tuple,
) -> tuple[int, int, int, int]:
    """Plain-Python :func:`~.kernels.walk_entries` (same arguments, same results).

    Parser steps are :func:`parser_transition_reference`'s; tokens come from the ``token_start`` slices.
    """
    sets, tsets = st[ST_SETS], st[ST_TSETS]
    sub_table, sub_tokens = sub[2], sub[3]
    entries = [(int(e_node[j]), int(e_parser[j]), int(e_lexer[j])) for j in range(n_entries)]
    pending: list[tuple[int, int, int]] = []
    missing: list[int] = []
    deferred: list[tuple[int, int]] = []
    fresh_keys: list[int] = []
    lexer_full = False  # lexer_row_reference asked for bigger arrays: only the caller grows them

    def lexer_step(lx: int, b: int) -> int:
        """``lex_trans[lx, b]``, computing the row if missing and the lexer has room."""
        nonlocal lexer_full
        if lex_trans[lx, b] == -2 and not lexer_full:
            lexer_full = lexer_row_reference(lxs, lxd, lx) != 0
        return int(lex_trans[lx, b])

    def step(p: int, lx: int, b: int) -> tuple[int, int] | int | None:
        """Next ``(parser, lexer)``; ``None`` if refused or pending; an int: the missing entry."""
        nonlocal lexer_full
        nl = lexer_step(lx, b)
        if nl >= 0:
            return p, nl
        if nl == -2:
            return -1 - lx
        if nl == -3 or lex_acc[lx] < 0:
            return None
        acc = int(lex_acc[lx])
        if not acc_ignore[acc]:
            if acc + 1 >= acc_t0.shape[0]:  # accepted set new in this pass: the caller lists it first
                pending.append((i, p, lx))
                return None
            key = p * ACC_STRIDE + acc
            slot = _slot(key, recent_keys.shape[0] - 1)
            if recent_keys[slot] == key:
                nxt = int(recent_next[slot])
            else:
                nxt = int(parser_transition_reference(gram, st, tr, acc_t0, acc_terms, p, acc))
                if nxt != GROW:
                    recent_keys[slot], recent_next[slot] = key, nxt
            if nxt == GROW:
                pending.append((i, p, lx))
                return None
            if nxt < 0:
                return None
            p = nxt
        ts = int(sets[p, SET_TSET])
        l0 = int(tsets[ts, TSET_LEX0])
        if l0 == UNKNOWN_START and not lexer_full:
            t0, t1 = int(tsets[ts, TSET_T0]), int(tsets[ts, TSET_T1])
            l0 = lexeme_start_state_reference(lxs, lxd, st[ST_TSPOOL], t0, t1)
            lexer_full = l0 < 0
            if lexer_full:
                l0 = UNKNOWN_START
            else:
                tsets[ts, TSET_LEX0] = l0
        if l0 == UNKNOWN_START:
            return ts
        nl = lexer_step(l0, b)
        if nl == -2:
            return -1 - l0
        return (p, nl) if nl >= 0 else None

    j = 0
    while j < len(entries):
        i, p0, l0 = entries[j]
        j += 1
        base = int(node_depth[i]) - 1
        stack = {0: (p0, l0)}
        end = int(node_skip[i])
        while i < end:
            d = int(node_depth[i]) - base
            p_parent, lx = stack[d - 1]
            result = step(p_parent, lx, int(node_byte[i]))
            if result is None or isinstance(result, int):
                if isinstance(result, int):
                    missing.append(result)
                    pending.append((i, p_parent, lx))
                i = int(node_skip[i])
                continue
            stack[d] = result
            for k in range(int(token_start[i]), int(token_start[i + 1])):
                _set_bit(out, int(token_ids[k]))
            if int(node_classes[i]) & ~int(lxd[LX_LOOPS][result[1]]) == 0:
                for k in range(int(token_start[i + 1]), int(token_start[node_skip[i]])):
                    _set_bit(out, int(token_ids[k]))
                i = int(node_skip[i])
                continue
            if lex_trans[lx, node_byte[i]] < 0 and int(node_skip[i]) - i > min_subtree:
                p, nl = result
                key = i * LEX_STRIDE + nl
                entry = hash_get_reference(sub[0], sub[1], key)
                if entry >= 0:
                    for k in range(int(sub_table[entry, 0]), int(sub_table[entry, 1])):
                        _set_bit(out, int(sub_tokens[k]))
                    for k in range(int(sub_table[entry, 2]), int(sub_table[entry, 3])):
                        entries.append((int(sub[4][k]), p, int(sub[5][k])))
                    i = int(node_skip[i])
                    continue
                if entry == SEEN:
                    deferred.append((i, nl))
                    pending.append((i, p_parent, lx))
                    i = int(node_skip[i])
                    continue
                entry, bounds, single = _projected_entry(
                    node_byte, node_depth, node_skip, lex_trans, sub, i, nl, lock, lxs, lxd
                )
                if entry == NO_ENTRY:
                    deferred.append((i, single))
                    pending.append((i, p_parent, lx))
                    i = int(node_skip[i])
                    continue
                if len(fresh_keys) < fresh.shape[0]:
                    fresh_keys.append(key)
                if entry >= 0:
                    for k in range(int(sub_table[entry, 0]), int(sub_table[entry, 1])):
                        _set_bit(out, int(sub_tokens[k]))
                    entries.extend((node, p, lexer) for node, lexer in bounds)
                    i = int(node_skip[i])
                    continue
            i += 1
    for k, (node, p, lx) in enumerate(pending):
        pend_node[k], pend_parser[k], pend_lexer[k] = node, p, lx
    for k, code in enumerate(missing):
        miss[k] = code
    for k, (node, lx) in enumerate(deferred):
        def_node[k], def_lexer[k] = node, lx
    for k in range(n_entries, len(entries)):
        e_node[k], e_parser[k], e_lexer[k] = entries[k]
    for k, key in enumerate(fresh_keys):
        fresh[k] = key
    return len(pending), len(missing), len(deferred), len(fresh_keys)
