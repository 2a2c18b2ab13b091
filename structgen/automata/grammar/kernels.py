"""numba kernels of the grammar engine; their plain-Python twins are in :mod:`.reference`.

The kernels walk the vocabulary's preorder token trie (see :mod:`structgen.automata.token_trie`):
visiting node ``i`` steps the state of its parent (kept per depth on a stack) by the byte into
``i``, and a dead state skips the subtree (``node_skip[i]``).

A mask is computed in two parts (XGrammar's context-independent / context-dependent split):

* :func:`subtree_walks` depends on the lexer state only: it finds the tokens below a node (the
  trie's root, or a node where a lexeme starts) that stay inside the current lexeme (always
  allowed: some terminal the parser accepts is still alive) and the *boundary* nodes, where the
  byte into the node cannot extend the lexeme; it records each with the lexer state of its
  parent. Its results are cached per (node, lexer state). A missing lexer row is computed on the
  spot (:func:`lexer_row`); when the lexer's arrays must grow first it saves its position in
  ``resume`` and returns ``NEED_ROW``, and the caller grows them and calls again.
* :func:`walk_entries` depends on the parser state: it walks subtrees ("entries": a node and the
  ``(parser, lexer)`` state of its parent) with the full state. A lexeme that ends moves the
  parser on through the memoized transition tables (hash maps from ``parser_id * ACC_STRIDE +
  acc`` to the next parser id, ``-1``: refused; ignored lexemes leave the parser where it is),
  and a transition not built yet is built on the spot by the Earley kernels below
  (:func:`parser_transition`). Below a node where a new lexeme starts, a large subtree is not
  walked: its cached lexeme part is used, and its boundary nodes become entries. Missing lexer
  rows are computed on the spot too. When a lexeme start state, a subtree cache entry, room in
  the parser's or the lexer's arrays, or an accepted terminal set new in this pass is missing,
  the kernel records it and the node as a pending entry and skips the subtree; the caller
  provides them all and walks the pending entries again.

The Earley parser (:func:`earley_scan`, :func:`earley_close`, :func:`parser_transition`) and the
lexer (:func:`lexer_row`, :func:`lexer_intern`) keep their states in integer arrays interned by
content (:func:`intern_rehash`); the Python classes owning the arrays
(:class:`~structgen.automata.grammar.earley.EarleyParser`,
:class:`~structgen.automata.grammar.lexer.LazyLexer`) grow them when a kernel returns ``GROW``.
Their references are the reference recognizer's parsing and lexing
(:mod:`~structgen.automata.grammar.reference`), which the tests compare them to set by set and
row by row.

Lexer table entries: ``>= 0`` next lexer state, ``-1`` the lexeme cannot take the byte (it may end
before it), ``-2`` row not computed yet, ``-3`` blocked (only guard-only terminals take the byte:
refused).
"""

from __future__ import annotations

import numba
import numpy as np

from structgen.automata.token_trie import BYTE_CLASS, CHARS_CLASS, SEVERAL_TOKENS

ACC_STRIDE = 1 << 24
LEX_STRIDE = 1 << 20  # subtree cache keys: node * LEX_STRIDE + lexer state (at most 65536 states)
DONE = 0
NEED_ROW = 1
EMPTY_KEY = -1
SEEN = -3  # subtree cache value of a key met once, not cached (see subtree_walks)
# 0x9E3779B97F4A7C15 (Fibonacci hashing) as a signed 64-bit value: int64 products wrap in numba.
_HASH_MUL = np.int64(0x9E3779B97F4A7C15 - (1 << 64))


# --- parser transition hash map ------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _slot(key: int, mask: int) -> int:  # pragma: no cover - numba
    # Bits 29.. of the wrapped product; arithmetic and logical shifts agree on them.
    return ((key * _HASH_MUL) >> 29) & mask


@numba.njit(cache=True)
def hash_get(keys: np.ndarray, vals: np.ndarray, key: int) -> int:  # pragma: no cover - numba
    """The value stored for ``key`` (open addressing, linear probing), or ``-2`` if absent."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k == key:
            return vals[i]
        if k == EMPTY_KEY:
            return -2
        i = (i + 1) & mask


@numba.njit(cache=True)
def hash_put(keys: np.ndarray, vals: np.ndarray, key: int, value: int) -> None:  # pragma: no cover
    """Store ``value`` for ``key``; the table must have a free slot."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k in (key, EMPTY_KEY):
            keys[i] = key
            vals[i] = value
            return
        i = (i + 1) & mask


class IntHashMap:
    """A hash map ``int64 key >= 0 -> int32`` shared with the kernels, kept at most half full.

    The parser's transition tables use it with keys ``set_id * ACC_STRIDE + acc``, the subtree
    cache with keys ``node * LEX_STRIDE + lexer_state``. ``count[0]``
    is the number of keys stored: an array, so that kernels inserting keys keep it up to date.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.keys = np.full(capacity, EMPTY_KEY, dtype=np.int64)
        self.vals = np.full(capacity, -1, dtype=np.int32)
        self.count = np.zeros(1, dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of keys stored."""
        return int(self.count[0])

    def get(self, key: int) -> int:
        """The value stored for ``key``, or ``-2`` when absent."""
        return int(hash_get(self.keys, self.vals, key))

    def get_many(self, keys: np.ndarray) -> np.ndarray:
        """:meth:`get` of each of the int64 ``keys``."""
        return hash_get_many(self.keys, self.vals, keys)

    def clear(self) -> None:
        """Forget every key."""
        if self.count[0]:
            self.keys.fill(EMPTY_KEY)
            self.count[0] = 0

    def reserve(self, extra: int) -> None:
        """Grow the table (rehashing) so that ``extra`` more keys keep it at most half full."""
        need = self.size + extra
        capacity = self.keys.shape[0]
        if 2 * need <= capacity:
            return
        while 2 * need > capacity:
            capacity *= 2
        old_keys, old_vals = self.keys, self.vals
        used = old_keys != EMPTY_KEY
        self.keys = np.full(capacity, EMPTY_KEY, dtype=np.int64)
        self.vals = np.full(capacity, -1, dtype=np.int32)
        hash_put_many(self.keys, self.vals, old_keys[used], old_vals[used])

    def put(self, key: int, value: int) -> None:
        """Record the value of ``key``."""
        self.reserve(1)
        if hash_get(self.keys, self.vals, key) == -2:
            self.count[0] += 1
        hash_put(self.keys, self.vals, key, value)

    def put_many(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Record the value of each key (one kernel call for the batch)."""
        self.reserve(keys.shape[0])
        self.count[0] += hash_put_many(self.keys, self.vals, keys, values)


# --- the Earley parser on integer arrays ---------------------------------------------------------
#
# The parser store (see structgen.automata.grammar.earley.EarleyParser) is a tuple of arrays; the
# ST_* constants are positions in it. A kernel that runs out of room in one of them writes that
# position to counts[C_NEED] and returns GROW; the caller grows the array and calls again.

ST_COUNTS, ST_SETS, ST_KPOOL, ST_E_NEXT, ST_E_ITEM, ST_E_ORIGIN = 0, 1, 2, 3, 4, 5
ST_GROUPS, ST_GKEY, ST_GI_NEXT, ST_GI_ITEM, ST_GTERMS = 6, 7, 8, 9, 10
ST_TSETS, ST_TSPOOL, ST_SET_SLOTS, ST_GROUP_SLOTS, ST_TSET_SLOTS = 11, 12, 13, 14, 15
ST_WORK, ST_EX_NEXT, ST_EX_ITEM, ST_EX_ORIGIN, ST_BUF, ST_HS_KEYS, ST_HS_GEN = 16, 17, 18, 19, 20, 21, 22
ST_ITEM_STAMP, ST_SYM_STAMP, ST_SYM_BUF = 23, 24, 25
# counts[...]: how much of each table / pool is used, the speculation mark, a stamp generator,
# and what to grow (-1: nothing).
C_SETS, C_KPOOL, C_EPOOL, C_GROUPS, C_GKEY, C_GITEMS, C_GTERMS, C_TSETS, C_TSPOOL = range(9)
C_MARK, C_GEN, C_NEED = 9, 10, 11
NUM_COUNTS = 12
# Columns of the sets table: kernel and explicit item ranges, prediction group, terminal set, accepting.
SET_K0, SET_K1, SET_E0, SET_E1, SET_GROUP, SET_TSET, SET_ACCEPTING = range(7)
# Columns of the groups table: key (direct nonterminals), items, terminals ranges, and the
# terminal set of the group's terminals (-1: not interned yet).
GROUP_K0, GROUP_K1, GROUP_I0, GROUP_I1, GROUP_T0, GROUP_T1, GROUP_TSET = range(7)
# Columns of the terminal-sets table: members range, lexeme start state (UNKNOWN_START: not yet).
TSET_T0, TSET_T1, TSET_LEX0 = range(3)
UNKNOWN_START = -2
GROW = -4
NEED_TRANS = 100  # counts[C_NEED] values for the two transition tables
NEED_SPEC_TRANS = 101
ORIGIN_BITS = 31  # an (item, origin) pair is the int64 item << ORIGIN_BITS | origin
ORIGIN_MASK = (1 << ORIGIN_BITS) - 1


@numba.njit(cache=True, inline="always")
def _grow(counts: np.ndarray, what: int) -> int:  # pragma: no cover - numba
    counts[C_NEED] = what
    return GROW


@numba.njit(cache=True)
def _lower_bound(col: np.ndarray, lo: int, hi: int, value: int) -> int:  # pragma: no cover - numba
    """First index in ``col[lo:hi]`` (sorted) whose value is not below ``value``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if col[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _seq_hash(seq: np.ndarray, n: int) -> int:  # pragma: no cover - numba
    h = np.int64(n)
    for k in range(n):
        h = (h ^ np.int64(seq[k])) * _HASH_MUL
        h ^= h >> 32
    return h


@numba.njit(cache=True)
def _intern_find(
    slots: np.ndarray, table: np.ndarray, c0: int, c1: int, pool: np.ndarray, seq: np.ndarray, n: int
) -> int:  # pragma: no cover - numba
    """The id whose pool range ``table[id, c0]:table[id, c1]`` equals ``seq[:n]``, else ``-1 - slot``."""
    mask = slots.shape[0] - 1
    i = _slot(_seq_hash(seq, n), mask)
    while True:
        ident = slots[i]
        if ident < 0:
            return -1 - i
        lo = table[ident, c0]
        if table[ident, c1] - lo == n:
            same = True
            for k in range(n):
                if pool[lo + k] != seq[k]:
                    same = False
                    break
            if same:
                return ident
        i = (i + 1) & mask


@numba.njit(cache=True)
def intern_rehash(
    slots: np.ndarray, table: np.ndarray, c0: int, c1: int, pool: np.ndarray, first: int, n: int
) -> None:  # pragma: no cover - numba
    """Insert ids ``first .. n-1`` (in that order) into the empty slot table ``slots``."""
    mask = slots.shape[0] - 1
    for ident in range(first, n):
        lo = table[ident, c0]
        i = _slot(_seq_hash(pool[lo : table[ident, c1]], table[ident, c1] - lo), mask)
        while slots[i] >= 0:
            i = (i + 1) & mask
        slots[i] = ident


@numba.njit(cache=True, inline="always")
def _group_of(gram: tuple, st: tuple, n_direct: int) -> int:  # pragma: no cover - numba
    """The prediction group of the sorted nonterminals ``sym_buf[:n_direct]`` (built if new)."""
    item_next, _, _, pred_start, pred_items, num_t = gram
    counts, groups, gkey, gi_next, gi_item, gterms = st[0], st[6], st[7], st[8], st[9], st[10]
    group_slots, work, item_stamp, sym_buf = st[14], st[16], st[23], st[25]
    found = _intern_find(group_slots, groups, GROUP_K0, GROUP_K1, gkey, sym_buf, n_direct)
    if found >= 0:
        return found
    g = counts[C_GROUPS]
    if g >= groups.shape[0]:
        return _grow(counts, ST_GROUPS)
    if 2 * (g + 1) > group_slots.shape[0]:
        return _grow(counts, ST_GROUP_SLOTS)
    if counts[C_GKEY] + n_direct > gkey.shape[0]:
        return _grow(counts, ST_GKEY)
    counts[C_GEN] += 1
    gen = counts[C_GEN]
    n_items = 0
    stride = np.int64(len(item_stamp))  # above every item id
    for d in range(n_direct):
        nt = sym_buf[d]
        for k in range(pred_start[nt], pred_start[nt + 1]):
            item = pred_items[k]
            if item_next[item] < 0 or item_stamp[item] == gen:
                continue  # an empty-span completion: the nullable rule handles it
            item_stamp[item] = gen
            if n_items == work.shape[0]:
                return _grow(counts, ST_WORK)
            work[n_items] = np.int64(item_next[item]) * stride + item
            n_items += 1
    if counts[C_GITEMS] + n_items > gi_next.shape[0]:
        return _grow(counts, ST_GI_NEXT)
    if counts[C_GTERMS] + n_items > gterms.shape[0]:
        return _grow(counts, ST_GTERMS)
    ordered = work[:n_items]
    ordered.sort()  # by next symbol: lookups are binary searches
    i0 = counts[C_GITEMS]
    t0 = counts[C_GTERMS]
    n_terms = 0
    for k in range(n_items):
        nxt = ordered[k] // stride
        gi_next[i0 + k] = nxt
        gi_item[i0 + k] = ordered[k] - nxt * stride
        if nxt < num_t and (n_terms == 0 or gterms[t0 + n_terms - 1] != nxt):
            gterms[t0 + n_terms] = nxt
            n_terms += 1
    k0 = counts[C_GKEY]
    for d in range(n_direct):
        gkey[k0 + d] = sym_buf[d]
    groups[g, GROUP_K0] = k0
    groups[g, GROUP_K1] = k0 + n_direct
    groups[g, GROUP_I0] = i0
    groups[g, GROUP_I1] = i0 + n_items
    groups[g, GROUP_T0] = t0
    groups[g, GROUP_T1] = t0 + n_terms
    groups[g, GROUP_TSET] = -1
    counts[C_GKEY] = k0 + n_direct
    counts[C_GITEMS] = i0 + n_items
    counts[C_GTERMS] = t0 + n_terms
    counts[C_GROUPS] = g + 1
    group_slots[-1 - _intern_find(group_slots, groups, GROUP_K0, GROUP_K1, gkey, sym_buf, n_direct)] = g
    return g


@numba.njit(cache=True, inline="always")
def _terminal_set_of(st: tuple, n_terms: int) -> int:  # pragma: no cover - numba
    """The terminal set of the sorted terminals ``sym_buf[:n_terms]`` (interned if new)."""
    counts, tsets, tspool, tset_slots, sym_buf = st[0], st[11], st[12], st[15], st[25]
    found = _intern_find(tset_slots, tsets, TSET_T0, TSET_T1, tspool, sym_buf, n_terms)
    if found >= 0:
        return found
    ts = counts[C_TSETS]
    if ts >= tsets.shape[0]:
        return _grow(counts, ST_TSETS)
    if 2 * (ts + 1) > tset_slots.shape[0]:
        return _grow(counts, ST_TSET_SLOTS)
    t0 = counts[C_TSPOOL]
    if t0 + n_terms > tspool.shape[0]:
        return _grow(counts, ST_TSPOOL)
    for k in range(n_terms):
        tspool[t0 + k] = sym_buf[k]
    tsets[ts, TSET_T0] = t0
    tsets[ts, TSET_T1] = t0 + n_terms
    tsets[ts, TSET_LEX0] = UNKNOWN_START
    counts[C_TSPOOL] = t0 + n_terms
    counts[C_TSETS] = ts + 1
    tset_slots[-1 - found] = ts
    return ts


@numba.njit(cache=True, inline="always")
def _mark(code: int, hs_keys: np.ndarray, hs_gen: np.ndarray, gen: int) -> bool:  # pragma: no cover
    """Add ``code`` to the hash set of generation ``gen``; whether it was absent."""
    mask = hs_keys.shape[0] - 1
    i = _slot(code, mask)
    while hs_gen[i] == gen:
        if hs_keys[i] == code:
            return False
        i = (i + 1) & mask
    hs_gen[i] = gen
    hs_keys[i] = code
    return True


@numba.njit(cache=True, inline="always")
def _push(
    code: int, hs_keys: np.ndarray, hs_gen: np.ndarray, gen: int, work: np.ndarray, top: int
) -> int:  # pragma: no cover - numba
    """Push the pair ``code`` on the work stack unless seen in this closure; the new stack top."""
    if not _mark(code, hs_keys, hs_gen, gen):
        return top
    work[top] = code
    return top + 1


@numba.njit(cache=True, inline="always")
def _tail_origin(gram: tuple, st: tuple, code: int) -> int:  # pragma: no cover - numba
    """The pair ``code`` with its origin moved down the sets where completing its rule's
    nonterminal ``A`` only completes ``A`` again.

    That is Leo's deterministic reduction path, for a right-recursive rule of ``A`` ending in
    ``A`` (e.g. a unary minus, ``factor: "-" factor``): when the only item of origin ``o``
    expecting ``A`` is ``A -> gamma . A`` from origin ``o2``, completing ``A`` at ``o`` completes
    ``A`` at ``o2`` and does nothing else, so the item from ``o2`` has the same future. A run of
    unary operators then reaches the same set again instead of a new set per operator.
    """
    item_next, item_lhs, num_t = gram[0], gram[1], gram[5]
    sets, e_next, e_item, e_origin, groups, gi_next = st[1], st[3], st[4], st[5], st[6], st[8]
    item = code >> ORIGIN_BITS
    origin = code & ORIGIN_MASK
    lhs = item_lhs[item]
    sym = num_t + lhs
    while True:
        hi = sets[origin, SET_E1]
        k = _lower_bound(e_next, sets[origin, SET_E0], hi, sym)
        if k == hi or e_next[k] != sym or (k + 1 < hi and e_next[k + 1] == sym):
            break  # no explicit item expects A, or several do
        g = sets[origin, SET_GROUP]
        if g >= 0:
            at = _lower_bound(gi_next, groups[g, GROUP_I0], groups[g, GROUP_I1], sym)
            if at < groups[g, GROUP_I1] and gi_next[at] == sym:
                break  # a predicted item expects A too
        expecting = e_item[k]
        if item_lhs[expecting] != lhs or item_next[expecting + 1] >= 0:
            break  # completing A there does more than complete A
        origin = e_origin[k]
    return (np.int64(item) << ORIGIN_BITS) | origin


@numba.njit(cache=True, inline="always")
def _same_as_set(st: tuple, c: int, n_ex: int, g: int, accepting: bool) -> bool:  # pragma: no cover
    """Whether the closure being built (``ex_*[:n_ex]``, group ``g``) is set ``c`` again.

    With origins moved down tail recursions (:func:`_tail_origin`), a set built after a unary
    operator from a set that was itself built after one can have the same items as that set: the
    same future, so the run of operators stays in one set.
    """
    counts, sets, e_item, e_origin = st[0], st[1], st[4], st[5]
    ex_item, ex_origin, hs_keys, hs_gen = st[18], st[19], st[21], st[22]
    lo, hi = sets[c, SET_E0], sets[c, SET_E1]
    if hi - lo != n_ex or sets[c, SET_GROUP] != g or sets[c, SET_ACCEPTING] != accepting:
        return False
    counts[C_GEN] += 1
    gen = counts[C_GEN]
    for k in range(lo, hi):
        _mark((np.int64(e_item[k]) << ORIGIN_BITS) | e_origin[k], hs_keys, hs_gen, gen)
    for k in range(n_ex):  # the items of both are distinct: equal counts, and none new
        if _mark((np.int64(ex_item[k]) << ORIGIN_BITS) | ex_origin[k], hs_keys, hs_gen, gen):
            return False
    return True


@numba.njit(cache=True, inline="always")
def earley_close(
    gram: tuple, st: tuple, n_kernel: int, predict_start: bool, slot: int
) -> int:  # pragma: no cover - numba
    """Build the set of the kernel ``buf[:n_kernel]`` (sorted pairs): complete, then predict.

    Explicit items (origin an older set) are completed through their origin sets; predicted
    items live in the set's prediction group, shared with every set predicting the same
    nonterminals. Nullable nonterminals follow Aycock-Horspool: predicting one also advances
    over it, so an empty-span completion never looks at the set being built. ``predict_start``
    predicts the augmented start (the initial set); ``slot`` is the kernel's free slot in the set
    intern table (``-1``: not interned). Returns the new set id, or ``GROW``.
    """
    item_next, item_lhs, nullable, _, _, num_t = gram
    counts, sets, kpool, e_next, e_item, e_origin = st[0], st[1], st[2], st[3], st[4], st[5]
    groups, gi_next, gi_item, gterms, set_slots = st[6], st[8], st[9], st[10], st[13]
    work, ex_next, ex_item, ex_origin, buf, hs_keys, hs_gen = (
        st[16],
        st[17],
        st[18],
        st[19],
        st[20],
        st[21],
        st[22],
    )
    sym_stamp, sym_buf = st[24], st[25]
    s = counts[C_SETS]
    if s >= sets.shape[0]:
        return _grow(counts, ST_SETS)
    if 2 * (s + 1) > set_slots.shape[0]:
        return _grow(counts, ST_SET_SLOTS)
    if counts[C_KPOOL] + n_kernel > kpool.shape[0]:
        return _grow(counts, ST_KPOOL)
    cap = work.shape[0]
    counts[C_GEN] += 1
    gen = counts[C_GEN]
    counts[C_GEN] += 1
    dgen = counts[C_GEN]
    top = 0
    n_seen = 0
    for k in range(n_kernel):
        top = _push(buf[k], hs_keys, hs_gen, gen, work, top)
    n_seen = top
    n_direct = 0
    if predict_start:
        sym_stamp[num_t] = dgen
        sym_buf[0] = 0
        n_direct = 1
    n_ex = 0
    accepting = False
    while top > 0:
        if n_seen + 1 >= cap:
            return _grow(counts, ST_WORK)
        top -= 1
        code = work[top]
        item = code >> ORIGIN_BITS
        origin = code & ORIGIN_MASK
        nxt = item_next[item]
        if nxt < 0:
            lhs = item_lhs[item]
            if lhs == 0 and origin == 0:
                accepting = True
            sym = num_t + lhs
            hi = sets[origin, SET_E1]
            for k in range(_lower_bound(e_next, sets[origin, SET_E0], hi, sym), hi):
                if e_next[k] != sym:
                    break
                if n_seen + 1 >= cap:
                    return _grow(counts, ST_WORK)
                before = top
                code = _tail_origin(gram, st, (np.int64(e_item[k] + 1) << ORIGIN_BITS) | e_origin[k])
                top = _push(code, hs_keys, hs_gen, gen, work, top)
                n_seen += top - before
            g = sets[origin, SET_GROUP]
            if g >= 0:
                hi = groups[g, GROUP_I1]
                for k in range(_lower_bound(gi_next, groups[g, GROUP_I0], hi, sym), hi):
                    if gi_next[k] != sym:
                        break
                    if n_seen + 1 >= cap:
                        return _grow(counts, ST_WORK)
                    before = top
                    code = _tail_origin(gram, st, (np.int64(gi_item[k] + 1) << ORIGIN_BITS) | origin)
                    top = _push(code, hs_keys, hs_gen, gen, work, top)
                    n_seen += top - before
            continue
        ex_next[n_ex] = nxt
        ex_item[n_ex] = item
        ex_origin[n_ex] = origin
        n_ex += 1
        if nxt >= num_t:
            if sym_stamp[nxt] != dgen:
                sym_stamp[nxt] = dgen
                sym_buf[n_direct] = nxt - num_t
                n_direct += 1
            if nullable[nxt - num_t]:
                before = top
                top = _push(code + (np.int64(1) << ORIGIN_BITS), hs_keys, hs_gen, gen, work, top)
                n_seen += top - before
    e0 = counts[C_EPOOL]
    if e0 + n_ex > e_next.shape[0]:
        return _grow(counts, ST_E_NEXT)
    g = -1
    if n_direct:
        sym_buf[:n_direct].sort()
        g = _group_of(gram, st, n_direct)
        if g == GROW:
            return GROW
    if n_kernel and _same_as_set(st, buf[0] & ORIGIN_MASK, n_ex, g, accepting):
        return buf[0] & ORIGIN_MASK
    # The terminals the set expects: its explicit items' and its group's. Usually the explicit
    # items expect nothing outside the group, and the group's terminal set is reused.
    in_group = g >= 0
    if in_group:
        t0, t1 = groups[g, GROUP_T0], groups[g, GROUP_T1]
        for k in range(n_ex):
            t = ex_next[k]
            if t < num_t:
                at = _lower_bound(gterms, t0, t1, t)
                if at == t1 or gterms[at] != t:
                    in_group = False
                    break
    if in_group and groups[g, GROUP_TSET] >= 0:
        ts = groups[g, GROUP_TSET]
    else:
        counts[C_GEN] += 1
        tgen = counts[C_GEN]
        n_terms = 0
        for k in range(n_ex):
            t = ex_next[k]
            if t < num_t and sym_stamp[t] != tgen:
                sym_stamp[t] = tgen
                sym_buf[n_terms] = t
                n_terms += 1
        if g >= 0:
            for k in range(groups[g, GROUP_T0], groups[g, GROUP_T1]):
                t = gterms[k]
                if sym_stamp[t] != tgen:
                    sym_stamp[t] = tgen
                    sym_buf[n_terms] = t
                    n_terms += 1
        sym_buf[:n_terms].sort()
        ts = _terminal_set_of(st, n_terms)
        if ts == GROW:
            return GROW
        if in_group:
            groups[g, GROUP_TSET] = ts
    # Sorted by next symbol (binary searches), through (next << 32 | index) keys in the free stack.
    for k in range(n_ex):
        work[k] = (np.int64(ex_next[k]) << 32) | k
    work[:n_ex].sort()
    for k in range(n_ex):
        j = work[k] & 0xFFFFFFFF
        e_next[e0 + k] = ex_next[j]
        e_item[e0 + k] = ex_item[j]
        e_origin[e0 + k] = ex_origin[j]
    k0 = counts[C_KPOOL]
    kpool[k0 : k0 + n_kernel] = buf[:n_kernel]
    sets[s, SET_K0] = k0
    sets[s, SET_K1] = k0 + n_kernel
    sets[s, SET_E0] = e0
    sets[s, SET_E1] = e0 + n_ex
    sets[s, SET_GROUP] = g
    sets[s, SET_TSET] = ts
    sets[s, SET_ACCEPTING] = accepting
    counts[C_KPOOL] = k0 + n_kernel
    counts[C_EPOOL] = e0 + n_ex
    counts[C_SETS] = s + 1
    if slot >= 0:
        set_slots[slot] = s
    return s


@numba.njit(cache=True, inline="always")
def earley_scan(
    gram: tuple, st: tuple, s: int, terms: np.ndarray, t0: int, t1: int
) -> int:  # pragma: no cover - numba
    """The set after a lexeme that is any of ``terms[t0:t1]`` from set ``s``: ``-1`` refused, or ``GROW``.

    Sets are interned by kernel (the scanned items with their origins), so equal kernels give
    the same set.
    """
    counts, sets, kpool, e_next, e_item, e_origin = st[0], st[1], st[2], st[3], st[4], st[5]
    groups, gi_next, gi_item, set_slots, buf = st[6], st[8], st[9], st[13], st[20]
    n = 0
    cap = buf.shape[0]
    g = sets[s, SET_GROUP]
    for j in range(t0, t1):
        t = terms[j]
        hi = sets[s, SET_E1]
        for k in range(_lower_bound(e_next, sets[s, SET_E0], hi, t), hi):
            if e_next[k] != t:
                break
            if n == cap:
                return _grow(counts, ST_WORK)
            buf[n] = (np.int64(e_item[k] + 1) << ORIGIN_BITS) | e_origin[k]
            n += 1
        if g >= 0:
            hi = groups[g, GROUP_I1]
            for k in range(_lower_bound(gi_next, groups[g, GROUP_I0], hi, t), hi):
                if gi_next[k] != t:
                    break
                if n == cap:
                    return _grow(counts, ST_WORK)
                buf[n] = (np.int64(gi_item[k] + 1) << ORIGIN_BITS) | s
                n += 1
    if n == 0:
        return -1
    for k in range(n):
        buf[k] = _tail_origin(gram, st, buf[k])
    buf[:n].sort()
    distinct = 1  # moved origins can make two pairs equal
    for k in range(1, n):
        if buf[k] != buf[distinct - 1]:
            buf[distinct] = buf[k]
            distinct += 1
    n = distinct
    found = _intern_find(set_slots, sets, SET_K0, SET_K1, kpool, buf, n)
    if found >= 0:
        return found
    return earley_close(gram, st, n, False, -1 - found)


@numba.njit(cache=True, inline="always")
def parser_transition(
    gram: tuple, st: tuple, tr: tuple, acc_t0: np.ndarray, acc_terms: np.ndarray, p: int, acc: int
) -> int:  # pragma: no cover - numba
    """The set after a lexeme of accepted terminal set ``acc`` from set ``p`` (memoized).

    ``tr`` is ``(keys, vals, count)`` of the lasting transition table, then of the speculative
    one: a transition goes to the speculative table when either end is a speculative set
    (id ``>= counts[C_MARK]``). Returns the set id, ``-1`` when refused, or ``GROW``.
    """
    lkeys, lvals, lcount, skeys, svals, scount = tr
    counts = st[0]
    key = p * ACC_STRIDE + acc
    nxt = hash_get(lkeys, lvals, key)
    if nxt == -2:
        nxt = hash_get(skeys, svals, key)
    if nxt != -2:
        return nxt
    if counts[C_NEED] >= 0:
        # An array is full already: a closure built now would be thrown away at its end.
        return GROW
    if 2 * (lcount[0] + 1) > lkeys.shape[0]:
        return _grow(counts, NEED_TRANS)
    if 2 * (scount[0] + 1) > skeys.shape[0]:
        return _grow(counts, NEED_SPEC_TRANS)
    nxt = earley_scan(gram, st, p, acc_terms, acc_t0[acc], acc_t0[acc + 1])
    if nxt == GROW:
        return GROW
    mark = counts[C_MARK]
    if p < mark and nxt < mark:
        hash_put(lkeys, lvals, key, nxt)
        lcount[0] += 1
    else:
        hash_put(skeys, svals, key, nxt)
        scount[0] += 1
    return nxt


# --- the lexer's states and rows on integer arrays -----------------------------------------------
#
# The lexer store (see structgen.automata.grammar.lexer.LazyLexer) is a tuple of arrays; the LX_*
# constants are positions in it. A lexer state is interned by its key: a start flag (1: a lexeme
# start) followed by its sorted codes ``global_dfa_state << 1 | guard_only``. An accepted terminal
# set is interned by ``[ignore_only, terminals...]``.

LX_COUNTS, LX_TABLE, LX_POOL, LX_SLOTS, LX_TRANS, LX_ACC, LX_HAS_EXIT = 0, 1, 2, 3, 4, 5, 6
LX_ACC_TABLE, LX_ACC_POOL, LX_ACC_SLOTS, LX_ACC_IGNORE, LX_BUF, LX_ROW = 7, 8, 9, 10, 11, 12
# Per state: the bit set of the byte classes (token_trie.BYTE_CLASS) whose every byte leads back to
# the state, with CHARS_CLASS when every member loops over well-formed UTF-8 characters (lexer
# static array 6); 0 until the row is computed. A trie subtree with only those below stays inside.
LX_LOOPS = 13
# Per state: its projection (see lexer_projection), NO_PROJECTION, or UNKNOWN_PROJECTION until asked.
LX_PROJ = 14
NO_PROJECTION = -1
UNKNOWN_PROJECTION = -2
# lockstep_patches: the two states do not read the same bytes.
NOT_PROJECTED = -1
_WITHIN_LIMIT = 4096  # reads_within gives up (no projection) past this many state pairs
NO_ENTRY = -2  # _projected_entry: the projection has no subtree cache entry yet
# counts[...] of the lexer store.
L_STATES, L_POOL, L_ACCS, L_ACC_POOL, L_NEED = 0, 1, 2, 3, 4
TOO_MANY_STATES = -5


@numba.njit(cache=True, inline="always")
def _lexer_grow(counts: np.ndarray, what: int) -> int:  # pragma: no cover - numba
    counts[L_NEED] = what
    return GROW


@numba.njit(cache=True)
def _lexer_accepting(lxs: tuple, lxd: tuple, lo: int, hi: int) -> int:  # pragma: no cover - numba
    """The accepted terminal set of the state whose codes are ``pool[lo:hi]``: id, ``-1`` or ``GROW``."""
    g_accepting, g_terminal, priorities, ignored = lxs[1], lxs[2], lxs[3], lxs[4]
    counts, pool, acc_table, acc_pool, acc_slots, acc_ignore = lxd[0], lxd[2], lxd[7], lxd[8], lxd[9], lxd[10]
    best = np.int64(-(1 << 62))
    found = False
    for k in range(lo, hi):
        g = pool[k] >> 1
        if g_accepting[g]:
            found = True
            best = max(best, priorities[g_terminal[g]])
    if not found:
        return -1
    kept = 0
    for k in range(lo, hi):  # codes are sorted by terminal: the key comes out sorted
        g = pool[k] >> 1
        t = g_terminal[g]
        if g_accepting[g] and priorities[t] == best and not ignored[t]:
            kept += 1
    ignore_only = kept == 0
    n_acc = counts[L_ACCS]
    a0 = counts[L_ACC_POOL]
    if n_acc >= acc_table.shape[0] or n_acc >= acc_ignore.shape[0]:
        return _lexer_grow(counts, LX_ACC_TABLE)
    if 2 * (n_acc + 1) > acc_slots.shape[0]:
        return _lexer_grow(counts, LX_ACC_SLOTS)
    if a0 + 1 + (hi - lo) > acc_pool.shape[0]:
        return _lexer_grow(counts, LX_ACC_POOL)
    # Written past the pool's end as the candidate key: committed only when new.
    acc_pool[a0] = ignore_only
    n = 1
    for k in range(lo, hi):
        g = pool[k] >> 1
        t = g_terminal[g]
        if g_accepting[g] and priorities[t] == best and (ignore_only or not ignored[t]):
            acc_pool[a0 + n] = t
            n += 1
    at = _intern_find(acc_slots, acc_table, 0, 1, acc_pool, acc_pool[a0 : a0 + n], n)
    if at >= 0:
        return at
    acc_table[n_acc, 0] = a0
    acc_table[n_acc, 1] = a0 + n
    acc_ignore[n_acc] = ignore_only
    acc_slots[-1 - at] = n_acc
    counts[L_ACCS] = n_acc + 1
    counts[L_ACC_POOL] = a0 + n
    return n_acc


@numba.njit(cache=True)
def lexer_intern(lxs: tuple, lxd: tuple, n: int) -> int:  # pragma: no cover - numba
    """The id of the lexer state keyed ``buf[:n]`` (interned if new), or ``GROW`` / ``TOO_MANY_STATES``."""
    max_states = lxs[5]
    counts, table, pool, slots, trans, acc, has_exit, buf = (
        lxd[0],
        lxd[1],
        lxd[2],
        lxd[3],
        lxd[4],
        lxd[5],
        lxd[6],
        lxd[11],
    )
    found = _intern_find(slots, table, 0, 1, pool, buf, n)
    if found >= 0:
        return found
    s = counts[L_STATES]
    if s >= max_states:
        return TOO_MANY_STATES
    proj = lxd[LX_PROJ]
    if s >= min(table.shape[0], trans.shape[0], acc.shape[0], has_exit.shape[0], proj.shape[0]):
        return _lexer_grow(counts, LX_TABLE)
    if 2 * (s + 1) > slots.shape[0]:
        return _lexer_grow(counts, LX_SLOTS)
    p0 = counts[L_POOL]
    if p0 + n > pool.shape[0]:
        return _lexer_grow(counts, LX_POOL)
    pool[p0 : p0 + n] = buf[:n]
    accepted = _lexer_accepting(lxs, lxd, p0 + 1, p0 + n)
    if accepted == GROW:
        return GROW
    table[s, 0] = p0
    table[s, 1] = p0 + n
    trans[s, :] = -2
    acc[s] = accepted
    has_exit[s] = False
    proj[s] = NO_PROJECTION if n == 2 else UNKNOWN_PROJECTION  # one member: its own
    slots[-1 - found] = s
    counts[L_POOL] = p0 + n
    counts[L_STATES] = s + 1
    return s


@numba.njit(cache=True)
def lexeme_start_state(
    lxs: tuple, lxd: tuple, terms: np.ndarray, t0: int, t1: int
) -> int:  # pragma: no cover - numba
    """The lexer state a lexeme starts in when the parser allows ``terms[t0:t1]`` (interned if new),
    or ``GROW`` / ``TOO_MANY_STATES``.

    The ignored terminals are alive too, and every terminal guarding an allowed one (guard-only
    when the parser does not allow it itself; static arrays 10-12: each terminal's initial global
    state, and the guards of each terminal).
    """
    ignored, initial, guard_start, guard_of = lxs[4], lxs[10], lxs[11], lxs[12]
    buf = lxd[11]
    kind = np.zeros(initial.shape[0], dtype=np.int8)  # 1: alive, 2: alive as a guard only
    for t in range(initial.shape[0]):
        if ignored[t]:
            kind[t] = 1
    for j in range(t0, t1):
        kind[terms[j]] = 1
    for j in range(t0, t1):
        t = terms[j]
        for k in range(guard_start[t], guard_start[t + 1]):
            if kind[guard_of[k]] == 0:
                kind[guard_of[k]] = 2
    buf[0] = 1
    n = 1
    for t in range(initial.shape[0]):  # global states ascend with the terminal: a sorted key
        if kind[t]:
            buf[n] = (initial[t] << 1) | (kind[t] == 2)
            n += 1
    return lexer_intern(lxs, lxd, n)


@numba.njit(cache=True)
def lexer_row(lxs: tuple, lxd: tuple, state: int) -> int:  # pragma: no cover - numba
    """Compute the transition row of lexer state ``state``: ``0``, ``GROW`` or ``TOO_MANY_STATES``.

    Byte ``b`` keeps the codes whose DFA can read it: none is ``DEAD`` (-1), only guard-only ones
    ``BLOCKED`` (-3), otherwise the interned successor. The codes are bucketed by byte from each
    member's live bytes (static arrays 7-9), in member order, so each bucket is a sorted key.
    """
    live_start, live_byte, live_next = lxs[7], lxs[8], lxs[9]
    table, pool, slots, trans, has_exit, buf, row = lxd[1], lxd[2], lxd[3], lxd[4], lxd[6], lxd[11], lxd[12]
    lo = table[state, 0] + 1
    hi = table[state, 1]
    start = np.zeros(257, dtype=np.int64)
    for k in range(lo, hi):
        g = pool[k] >> 1
        for j in range(live_start[g], live_start[g + 1]):
            start[live_byte[j] + 1] += 1
    for b in range(256):
        start[b + 1] += start[b]
    fill = start[:256].copy()
    codes = np.empty(start[256], dtype=np.int64)
    for k in range(lo, hi):
        code = pool[k]
        g = code >> 1
        for j in range(live_start[g], live_start[g + 1]):
            b = live_byte[j]
            codes[fill[b]] = (np.int64(live_next[j]) << 1) | (code & 1)
            fill[b] += 1
    prev_lo = 0
    prev_hi = -1
    prev_id = 0
    for b in range(256):
        c0, c1 = start[b], start[b + 1]
        if c0 == c1:
            row[b] = -1
            continue
        real = False
        for k in range(c0, c1):
            real = real or (codes[k] & 1) == 0
        if not real:
            row[b] = -3
            continue
        # Neighbouring bytes often lead to the same successor: compare with the last one.
        same = c1 - c0 == prev_hi - prev_lo
        if same:
            for k in range(c1 - c0):
                if codes[c0 + k] != codes[prev_lo + k]:
                    same = False
                    break
        if not same:
            buf[0] = 0
            for k in range(c0, c1):
                buf[1 + k - c0] = codes[k]
            # Most successors exist: looked up here, as a call with the lexer's tuples of arrays
            # costs more than the lookup (each array is reference counted).
            prev_id = _intern_find(slots, table, 0, 1, pool, buf, 1 + c1 - c0)
            if prev_id < 0:
                prev_id = lexer_intern(lxs, lxd, 1 + c1 - c0)
                if prev_id < 0:
                    return prev_id
            prev_lo, prev_hi = c0, c1
        row[b] = prev_id
    exit_ = False
    loops = (np.uint64(1) << np.uint64(CHARS_CLASS)) - np.uint64(1)
    for b in range(256):
        trans[state, b] = row[b]
        exit_ = exit_ or row[b] != -1
        if row[b] != state:
            loops &= ~(np.uint64(1) << np.uint64(BYTE_CLASS[b]))
    chars = True
    for k in range(lo, hi):
        chars = chars and lxs[6][pool[k] >> 1]
    if chars:
        loops |= np.uint64(1) << np.uint64(CHARS_CLASS)
    has_exit[state] = exit_
    lxd[LX_LOOPS][state] = loops
    return 0


@numba.njit(cache=True)
def reads_within(lxs: tuple, a: int, b: int, limit: int) -> bool:  # pragma: no cover - numba
    """Whether global DFA state ``b`` reads every byte string that global DFA state ``a`` reads.

    A search of the state pairs both reach (``False`` past ``limit`` pairs).
    """
    gtrans, live_start, live_byte, live_next = lxs[0], lxs[7], lxs[8], lxs[9]
    seen = {(np.int64(a) << 32) | b}
    todo = [(np.int64(a) << 32) | b]
    while todo:
        pair = todo.pop()
        x, y = pair >> 32, pair & 0xFFFFFFFF
        for j in range(live_start[x], live_start[x + 1]):
            ny = gtrans[y, live_byte[j]]
            if ny < 0:
                return False
            nxt = (np.int64(live_next[j]) << 32) | ny
            if nxt not in seen:
                if len(seen) >= limit:
                    return False
                seen.add(nxt)
                todo.append(nxt)
    return True


@numba.njit(cache=True)
def lexer_projection(lxs: tuple, lxd: tuple, state: int) -> int:  # pragma: no cover - numba
    """The state that walks the token trie like ``state`` except along its keywords, or ``-1``.

    That is the singleton state of a regular (not guard-only) member ``g`` that guards every
    other member and reads, from its DFA state, every byte string they read from theirs: an
    identifier in progress, with the keywords it may still become. Both states then take the same
    bytes, so the trie walks differ only in the lexer states along the keywords
    (:func:`lockstep_patches` finds those), and the walks of the identifier in every context
    share cache entries. Memoized in ``lxd[LX_PROJ]``; ``GROW`` / ``TOO_MANY_STATES`` (not
    memoized) when the singleton state is new and the lexer has no room for it.
    """
    proj = lxd[LX_PROJ]
    known = proj[state]
    if known != UNKNOWN_PROJECTION:
        return known
    table, pool, buf = lxd[LX_TABLE], lxd[LX_POOL], lxd[LX_BUF]
    g_terminal, guard_start, guard_of = lxs[2], lxs[11], lxs[12]
    lo = table[state, 0] + 1
    hi = table[state, 1]
    found = -1
    if hi - lo >= 2:
        for k in range(lo, hi):
            if pool[k] & 1:
                continue
            g = g_terminal[pool[k] >> 1]
            guards_all = True
            for m in range(lo, hi):
                if m == k:
                    continue
                t = g_terminal[pool[m] >> 1]
                guarded = False
                for j in range(guard_start[t], guard_start[t + 1]):
                    guarded = guarded or guard_of[j] == g
                # Keywords guard the identifier too (reserved words): guarding is not enough.
                if not guarded or not reads_within(lxs, pool[m] >> 1, pool[k] >> 1, _WITHIN_LIMIT):
                    guards_all = False
                    break
            if guards_all:
                found = pool[k]
                break
    if found < 0:
        proj[state] = NO_PROJECTION
        return NO_PROJECTION
    buf[0] = 0
    buf[1] = found
    single = lexer_intern(lxs, lxd, 2)
    if single >= 0:
        proj[state] = single
    return single


@numba.njit(cache=True)
def lockstep_patches(
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
) -> int:  # pragma: no cover - numba
    """Walk the subtree of ``root`` with lexer state ``x0`` next to its projection ``y0``.

    Only the nodes where the two states differ are visited: below a node where they meet, the
    walks are the same. ``lock`` is ``(stack_x, stack_y, patch_node, patch_lex)``: the boundary
    nodes met, whose parent states differ, go to ``patch_node`` with ``x``'s parent state in
    ``patch_lex``, in node order. So the lexeme part of ``(root, x0)`` is that of ``(root, y0)``
    with those boundaries' lexer states replaced. Returns their number, ``NOT_PROJECTED`` when one
    state takes a byte the other does not, or ``GROW`` / ``TOO_MANY_STATES`` when a lexer row is
    missing and the lexer has no room for it.
    """
    stack_x, stack_y, patch_node, patch_lex = lock
    base = node_depth[root]
    stack_x[0] = x0
    stack_y[0] = y0
    n = 0
    i = root + 1
    end = node_skip[root]
    while i < end:
        d = node_depth[i] - base
        x = stack_x[d - 1]
        y = stack_y[d - 1]
        b = node_byte[i]
        if lex_trans[x, b] == -2:
            status = lexer_row(lxs, lxd, x)
            if status != 0:
                return status
        if lex_trans[y, b] == -2:
            status = lexer_row(lxs, lxd, y)
            if status != 0:
                return status
        nx = lex_trans[x, b]
        ny = lex_trans[y, b]
        if nx == ny:
            if nx == -1:
                patch_node[n] = i
                patch_lex[n] = x
                n += 1
            i = node_skip[i]
            continue
        if nx < 0 or ny < 0:
            return NOT_PROJECTED
        stack_x[d] = nx
        stack_y[d] = ny
        i += 1
    return n


@numba.njit(cache=True, inline="always")
def _projected_entry(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    lex_trans: np.ndarray,
    sub_keys: np.ndarray,
    sub_vals: np.ndarray,
    i: int,
    nl: int,
    lock: tuple,
    lxs: tuple,
    lxd: tuple,
) -> tuple[int, int, int]:  # pragma: no cover - numba
    """The subtree cache entry that the subtree of node ``i`` in lexer state ``nl`` can take its
    lexeme part from: its projection's (:func:`lexer_projection`), with the boundaries to patch
    written to ``lock`` (:func:`lockstep_patches`). Returns ``(entry, patches, projection)``;
    ``entry`` is ``NO_ENTRY`` when the projection has no entry yet, ``-1`` when there is no
    projection or no room in the lexer for a row the patches need.
    """
    single = lxd[LX_PROJ][nl]  # memoized: read here, a call costs more
    if single == UNKNOWN_PROJECTION:
        single = lexer_projection(lxs, lxd, nl)
    if single < 0:
        return -1, 0, -1
    entry = hash_get(sub_keys, sub_vals, i * LEX_STRIDE + single)
    if entry < 0:
        return NO_ENTRY, 0, single
    n = lockstep_patches(node_byte, node_depth, node_skip, lex_trans, i, nl, single, lock, lxs, lxd)
    if n < 0:
        if n == NOT_PROJECTED:  # cannot happen (lexer_projection checks it): walk it, and never again
            lxd[LX_PROJ][nl] = NO_PROJECTION
        return -1, 0, single
    return entry, n, single


@numba.njit(cache=True, inline="always")
def _append_patched(
    nodes: np.ndarray,
    lexers: np.ndarray,
    n: int,
    sub_bnodes: np.ndarray,
    sub_blexers: np.ndarray,
    lo: int,
    hi: int,
    patch_node: np.ndarray,
    patch_lex: np.ndarray,
    n_patch: int,
) -> int:  # pragma: no cover - numba
    """Append the boundaries ``sub_*[lo:hi]`` at ``n``, with the lexer states of the patches
    (``patch_*[:n_patch]``, in node order) at their nodes; the new end, or ``-1`` when a patch
    is at no boundary."""
    k = 0
    for j in range(lo, hi):
        nodes[n] = sub_bnodes[j]
        lexers[n] = sub_blexers[j]
        if k < n_patch and patch_node[k] == sub_bnodes[j]:
            lexers[n] = patch_lex[k]
            k += 1
        n += 1
    return n if k == n_patch else -1


# --- the mask walks ------------------------------------------------------------------------------


@numba.njit(cache=True, inline="always")
def _set_bits(out: np.ndarray, ids: np.ndarray, lo: int, hi: int) -> None:  # pragma: no cover - numba
    """Set the bits of the tokens ``ids[lo:hi]`` in the uint32 mask ``out``."""
    for k in range(lo, hi):
        t = ids[k]
        out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)


@numba.njit(cache=True, inline="always")
def _defer(def_node: np.ndarray, def_lexer: np.ndarray, n: int, i: int, nl: int) -> int:  # pragma: no cover
    """The subtree of node ``i`` (lexer state ``nl`` after its byte) goes to the caller to cache."""
    def_node[n] = i
    def_lexer[n] = nl
    return n + 1


@numba.njit(cache=True)
def set_token_bits(out: np.ndarray, tokens: np.ndarray) -> None:  # pragma: no cover - numba
    """Set the bits of ``tokens`` in the uint32 mask ``out``."""
    _set_bits(out, tokens, 0, tokens.shape[0])


@numba.njit(cache=True, inline="always")
def _keep(t: int, as_mask: bool, out: np.ndarray, tokens: np.ndarray, n_t: int) -> int:  # pragma: no cover
    """Token ``t`` stays inside the lexeme: set its bit in ``out``, or append it to ``tokens``."""
    if as_mask:
        out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        return n_t
    tokens[n_t] = t
    return n_t + 1


@numba.njit(cache=True, inline="always")
def _save(
    resume: np.ndarray, k: int, i: int, n_t: int, n_b: int, n_def: int, n_fresh: int
) -> None:  # pragma: no cover
    """Where :func:`subtree_walks` stands, for the next call to go on from there."""
    resume[0] = k
    resume[1] = i
    resume[2] = n_t
    resume[3] = n_b
    resume[4] = n_def
    resume[5] = n_fresh


@numba.njit(cache=True)
def subtree_walks(
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
) -> tuple[int, int]:  # pragma: no cover - numba
    """The lexeme parts of the subtrees of nodes ``roots`` (node 0: the whole trie), in one call.

    Walk ``k`` is the subtree of node ``roots[k]`` with lexer state ``lexers[k]`` after the
    node's byte (before any byte for the root): the tokens that stay inside the lexeme are ORed
    into the uint32 mask ``out`` when it is not empty, else appended to ``tokens``; the boundary
    nodes, whose byte cannot extend the lexeme, are appended to ``bnodes`` with the lexer states
    of their parents in ``blex``. ``t_end[k]`` and ``b_end[k]`` are the pools' ends after walk
    ``k``; the pools must have room for every token and node below the roots. ``stack`` holds one
    lexer state per depth; ``resume`` is ``(walk, next node, tokens used, boundaries used,
    deferred, fresh)``, start with ``(0, roots[0] + 1, 0, 0, 0, 0)``. A missing lexer row is
    computed on the spot (:func:`lexer_row` on the lexer's ``lxs`` / ``lxd``, whose ``trans`` is
    ``lex_trans``). Several subtrees go in one call because the subtree cache asks for many,
    mostly small ones, and a kernel call costs more to dispatch than a small walk.

    In mask mode, a node below the roots whose subtree has more than ``min_subtree`` nodes is
    looked up in the subtree cache ``sub`` (as :func:`walk_entries` takes it) under ``node *
    LEX_STRIDE + lexer state after its byte``: a lexer state met for the first time in a lexeme
    usually leads, one or two bytes on, to states that other lexemes reach as well (the rest of a
    string, of an identifier), whose subtrees need not be walked again. An entry is used as it
    is; a key marked :data:`SEEN` (met once before) is written to ``def_node`` / ``def_lexer``
    for the caller to cache (the subtree is skipped: call again once cached); a key met for the
    first time is walked here and written to ``fresh`` for the caller to mark, so that a state met
    only once costs no cache entry. A lexer state of one terminal in a DFA state of class ``c``
    below a node whose subtree has more than ``min_shared`` nodes
    (``class_of[global DFA state] >= 0``, see :mod:`~structgen.automata.grammar.subtrees`) is
    looked up in the vocabulary's ``shared`` cache under ``node * LEX_STRIDE + c`` instead: its
    boundaries get the lexer state ``shared_final[terminal]``; a miss is deferred at once (the
    entry serves every automaton). Returns ``(DONE, 0)``, or ``(NEED_ROW, lexer state)`` when the
    lexer's arrays must grow before that state's row can be computed (then call again).
    """
    as_mask = out.shape[0] > 0
    sub_keys, sub_vals, sub_table, sub_tokens, sub_bnodes, sub_blexers = sub
    sh_keys, sh_vals, sh_table, sh_tokens, sh_bnodes = shared[0], shared[1], shared[2], shared[3], shared[4]
    lx_table, lx_pool, term_of, loops = lxd[1], lxd[2], lxs[2], lxd[LX_LOOPS]
    patch_node, patch_lex = lock[2], lock[3]
    k = resume[0]
    i = resume[1]
    n_t = resume[2]
    n_b = resume[3]
    n_def = resume[4]
    n_fresh = resume[5]
    while k < roots.shape[0]:
        root = roots[k]
        end = node_skip[root]
        stack[node_depth[root]] = lexers[k]
        if not as_mask and i == root + 1:
            # A listing that its state's projection has: copied, with the keywords' boundaries.
            entry, n_patch, _ = _projected_entry(
                node_byte,
                node_depth,
                node_skip,
                lex_trans,
                sub_keys,
                sub_vals,
                root,
                lexers[k],
                lock,
                lxs,
                lxd,
            )
            if entry >= 0:
                lo, hi = sub_table[entry, 2], sub_table[entry, 3]
                n_end = _append_patched(
                    bnodes, blex, n_b, sub_bnodes, sub_blexers, lo, hi, patch_node, patch_lex, n_patch
                )
                if n_end >= 0:
                    n_b = n_end
                    for j in range(sub_table[entry, 0], sub_table[entry, 1]):
                        tokens[n_t] = sub_tokens[j]
                        n_t += 1
                    i = end
        while i < end:
            d = node_depth[i]
            lx = stack[d - 1]
            nl = lex_trans[lx, node_byte[i]]
            if nl == -2 and lexer_row(lxs, lxd, lx) == 0:
                nl = lex_trans[lx, node_byte[i]]
            if nl < 0:
                if nl == -2:
                    _save(resume, k, i, n_t, n_b, n_def, n_fresh)
                    return NEED_ROW, lx
                if nl == -1:
                    bnodes[n_b] = i
                    blex[n_b] = lx
                    n_b += 1
                i = node_skip[i]
                continue
            stack[d] = nl
            t = node_token[i]
            if t >= 0:
                n_t = _keep(t, as_mask, out, tokens, n_t)
            elif t == SEVERAL_TOKENS:
                for j in range(token_start[i], token_start[i + 1]):
                    n_t = _keep(token_ids[j], as_mask, out, tokens, n_t)
            if (node_classes[i] & ~loops[nl]) == 0:
                # Every byte below leads back to this state: the whole subtree stays inside.
                for j in range(token_start[i + 1], token_start[node_skip[i]]):
                    n_t = _keep(token_ids[j], as_mask, out, tokens, n_t)
                i = node_skip[i]
                continue
            if as_mask and node_skip[i] - i > min_shared:
                cls = -1
                member = lx_pool[lx_table[nl, 0] + 1]
                if lx_table[nl, 1] - lx_table[nl, 0] == 2 and (member & 1) == 0:
                    cls = class_of[member >> 1]
                if cls >= 0:
                    entry = hash_get(sh_keys, sh_vals, i * LEX_STRIDE + cls)
                    if entry >= 0:
                        _set_bits(out, sh_tokens, sh_table[entry, 0], sh_table[entry, 1])
                        final = shared_final[term_of[member >> 1]]
                        for j in range(sh_table[entry, 2], sh_table[entry, 3]):
                            bnodes[n_b] = sh_bnodes[j]
                            blex[n_b] = final
                            n_b += 1
                    else:
                        n_def = _defer(def_node, def_lexer, n_def, i, nl)
                    i = node_skip[i]
                    continue
            if as_mask and node_skip[i] - i > min_subtree:
                key = i * LEX_STRIDE + nl
                entry = hash_get(sub_keys, sub_vals, key)
                if entry >= 0:
                    _set_bits(out, sub_tokens, sub_table[entry, 0], sub_table[entry, 1])
                    for j in range(sub_table[entry, 2], sub_table[entry, 3]):
                        bnodes[n_b] = sub_bnodes[j]
                        blex[n_b] = sub_blexers[j]
                        n_b += 1
                    i = node_skip[i]
                    continue
                seen = entry == SEEN
                # A state with a projection takes the projection's entry (met once per lexeme
                # walk: its own entry would cost more to make than this).
                entry, n_patch, _ = _projected_entry(
                    node_byte, node_depth, node_skip, lex_trans, sub_keys, sub_vals, i, nl, lock, lxs, lxd
                )
                if entry >= 0:
                    lo, hi = sub_table[entry, 2], sub_table[entry, 3]
                    n_end = _append_patched(
                        bnodes, blex, n_b, sub_bnodes, sub_blexers, lo, hi, patch_node, patch_lex, n_patch
                    )
                    if n_end >= 0:
                        n_b = n_end
                        _set_bits(out, sub_tokens, sub_table[entry, 0], sub_table[entry, 1])
                        i = node_skip[i]
                        continue
                # Deferred: met before, or the projection's entry is missing (it serves every
                # context: cached at once).
                if seen or entry == NO_ENTRY:
                    n_def = _defer(def_node, def_lexer, n_def, i, nl)
                    i = node_skip[i]
                    continue
                fresh[n_fresh] = key
                n_fresh += 1
            i += 1
        t_end[k] = n_t
        b_end[k] = n_b
        k += 1
        if k < roots.shape[0]:
            i = roots[k] + 1
    _save(resume, k, i, n_t, n_b, n_def, n_fresh)
    return DONE, 0


@numba.njit(cache=True, inline="always")
def _pend(
    node: np.ndarray, parser: np.ndarray, lexer: np.ndarray, n: int, i: int, p: int, lx: int
) -> int:  # pragma: no cover - numba
    """Node ``i`` (its parent's state ``(p, lx)``) waits for the next pass: appended at ``n``."""
    node[n] = i
    parser[n] = p
    lexer[n] = lx
    return n + 1


@numba.njit(cache=True)
def walk_entries(
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
) -> tuple[int, int, int, int]:  # pragma: no cover - numba
    """OR into ``out`` the allowed tokens of the subtrees of the first ``n_entries`` entries.

    Entry ``j`` is node ``e_node[j]`` whose parent's state is ``(e_parser[j], e_lexer[j])``. A
    lexeme that ends moves the parser on with :func:`parser_transition` (parser store ``st``,
    transition tables ``tr``, accepted terminal sets ``acc_t0/acc_terms``), which builds the new
    set when the transition is not memoized yet.

    Below a node where a new lexeme starts and whose subtree has more than ``min_subtree``
    nodes, the lexeme part does not depend on the parser: it comes from the subtree cache ``sub``
    (``(keys, vals, table, tokens, bnodes, blexers)``, see
    :class:`~structgen.automata.grammar.subtrees.SubtreeCache`), keyed ``node * LEX_STRIDE +
    lexer``: its tokens are allowed and its boundary nodes become entries of this pass. The
    policy is :func:`subtree_walks`': a key marked :data:`SEEN` pends and is written to
    ``def_node`` / ``def_lexer`` for the caller to cache; a key met for the first time is walked
    here and written to ``fresh`` (while there is room) for the caller to mark.

    A missing lexer row, or the unknown lexeme start state of a terminal set, is computed on the
    spot (:func:`lexer_row`, :func:`lexeme_start_state` on the lexer's ``lxs`` / ``lxd``, whose
    ``trans`` and ``acc`` are ``lex_trans`` and ``lex_acc``) until the lexer's arrays need to
    grow; from then on they are missing entries.

    Returns ``(pending, missing, deferred, fresh)``: the entries written to ``pend_*`` for the
    next pass, the missing table entries written to ``miss`` (``-1 - lexer_state`` for a missing
    lexer row, a terminal set id ``>= 0`` whose lexeme start state is unknown), the subtree cache
    entries to fill and the keys met for the first time. An entry also pends when the parser
    store ran out of room (``counts[C_NEED]`` says which array to grow). The ``e_*`` (entries are
    appended), ``pend_*``, ``miss`` and ``def_*`` arrays must have room for one item per trie node.
    """
    sets, tsets, tspool = st[1], st[11], st[12]
    lkeys, lvals, skeys, svals = tr[0], tr[1], tr[3], tr[4]
    recent_mask = recent_keys.shape[0] - 1
    sub_keys, sub_vals, sub_table, sub_tokens, sub_bnodes, sub_blexers = sub
    loops = lxd[LX_LOOPS]
    patch_node, patch_lex = lock[2], lock[3]
    n_pend = 0
    n_miss = 0
    n_def = 0
    n_fresh = 0
    lexer_full = False  # lexer_row asked for bigger arrays: only the caller can grow them
    j = 0
    while j < n_entries:
        i = e_node[j]
        base = node_depth[i] - 1
        stack_p[0] = e_parser[j]
        stack_l[0] = e_lexer[j]
        end = node_skip[i]
        while i < end:
            d = node_depth[i] - base
            p = stack_p[d - 1]
            lx = stack_l[d - 1]
            b = node_byte[i]
            nl = lex_trans[lx, b]
            if nl == -2 and not lexer_full:
                lexer_full = lexer_row(lxs, lxd, lx) != 0
                nl = lex_trans[lx, b]
            nxt_p = p
            started = nl < 0
            if nl < 0:
                if nl == -2:
                    miss[n_miss] = -1 - lx
                    n_miss += 1
                    n_pend = _pend(pend_node, pend_parser, pend_lexer, n_pend, i, p, lx)
                    i = node_skip[i]
                    continue
                if nl == -3:  # blocked: only guard-only terminals read this byte
                    i = node_skip[i]
                    continue
                acc = lex_acc[lx]
                if acc < 0:
                    i = node_skip[i]
                    continue
                if not acc_ignore[acc]:
                    # Memoized transitions are looked up here: calls taking the whole store
                    # cost more than the lookup. The walk's own small table comes first: a mask
                    # meets few transitions, many times each, and the parser's tables are large.
                    key = p * ACC_STRIDE + acc
                    slot = _slot(key, recent_mask)
                    if recent_keys[slot] == key:
                        nxt_p = recent_next[slot]
                    else:
                        nxt_p = hash_get(lkeys, lvals, key)
                        if nxt_p == -2:
                            nxt_p = hash_get(skeys, svals, key)
                            if nxt_p == -2:
                                if acc + 1 < acc_t0.shape[0]:
                                    nxt_p = parser_transition(gram, st, tr, acc_t0, acc_terms, p, acc)
                                else:  # accepted set new in this pass: the caller lists it first
                                    nxt_p = GROW
                        if nxt_p != GROW:
                            recent_keys[slot] = key
                            recent_next[slot] = nxt_p
                    if nxt_p < 0:
                        if nxt_p == GROW:
                            n_pend = _pend(pend_node, pend_parser, pend_lexer, n_pend, i, p, lx)
                        i = node_skip[i]
                        continue
                ts = sets[nxt_p, SET_TSET]
                l0 = tsets[ts, TSET_LEX0]
                if l0 == UNKNOWN_START and not lexer_full:
                    l0 = lexeme_start_state(lxs, lxd, tspool, tsets[ts, TSET_T0], tsets[ts, TSET_T1])
                    if l0 < 0:
                        lexer_full = True
                        l0 = UNKNOWN_START
                    else:
                        tsets[ts, TSET_LEX0] = l0
                if l0 == UNKNOWN_START:
                    miss[n_miss] = ts
                    n_miss += 1
                    n_pend = _pend(pend_node, pend_parser, pend_lexer, n_pend, i, p, lx)
                    i = node_skip[i]
                    continue
                nl = lex_trans[l0, b]
                if nl == -2 and not lexer_full:
                    lexer_full = lexer_row(lxs, lxd, l0) != 0
                    nl = lex_trans[l0, b]
                if nl < 0:
                    if nl == -2:
                        miss[n_miss] = -1 - l0
                        n_miss += 1
                        n_pend = _pend(pend_node, pend_parser, pend_lexer, n_pend, i, p, lx)
                    i = node_skip[i]
                    continue
            stack_p[d] = nxt_p
            stack_l[d] = nl
            t = node_token[i]
            if t >= 0:
                out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            elif t == SEVERAL_TOKENS:
                _set_bits(out, token_ids, token_start[i], token_start[i + 1])
            if (node_classes[i] & ~loops[nl]) == 0:
                # Every byte below leads back to this lexer state: no lexeme ends in the subtree.
                _set_bits(out, token_ids, token_start[i + 1], token_start[node_skip[i]])
                i = node_skip[i]
                continue
            if started and node_skip[i] - i > min_subtree:
                key = i * LEX_STRIDE + nl
                entry = hash_get(sub_keys, sub_vals, key)
                if entry >= 0:
                    _set_bits(out, sub_tokens, sub_table[entry, 0], sub_table[entry, 1])
                    for k in range(sub_table[entry, 2], sub_table[entry, 3]):
                        e_node[n_entries] = sub_bnodes[k]
                        e_parser[n_entries] = nxt_p
                        e_lexer[n_entries] = sub_blexers[k]
                        n_entries += 1
                    i = node_skip[i]
                    continue
                if entry == SEEN:
                    n_def = _defer(def_node, def_lexer, n_def, i, nl)
                    n_pend = _pend(pend_node, pend_parser, pend_lexer, n_pend, i, p, lx)
                    i = node_skip[i]
                    continue
                entry, n_patch, single = _projected_entry(
                    node_byte, node_depth, node_skip, lex_trans, sub_keys, sub_vals, i, nl, lock, lxs, lxd
                )
                if entry == NO_ENTRY:
                    # The identifier's walk below the node serves every context: cached at once.
                    n_def = _defer(def_node, def_lexer, n_def, i, single)
                    n_pend = _pend(pend_node, pend_parser, pend_lexer, n_pend, i, p, lx)
                    i = node_skip[i]
                    continue
                if n_fresh < fresh.shape[0]:  # met for the first time: walked here
                    fresh[n_fresh] = key
                    n_fresh += 1
                if entry >= 0:
                    lo, hi = sub_table[entry, 2], sub_table[entry, 3]
                    n_end = _append_patched(
                        e_node,
                        e_lexer,
                        n_entries,
                        sub_bnodes,
                        sub_blexers,
                        lo,
                        hi,
                        patch_node,
                        patch_lex,
                        n_patch,
                    )
                    if n_end >= 0:
                        e_parser[n_entries:n_end] = nxt_p
                        n_entries = n_end
                        _set_bits(out, sub_tokens, sub_table[entry, 0], sub_table[entry, 1])
                        i = node_skip[i]
                        continue
            i += 1
        j += 1
    return n_pend, n_miss, n_def, n_fresh


@numba.njit(cache=True)
def hash_put_absent(
    keys: np.ndarray, vals: np.ndarray, new_keys: np.ndarray, value: int
) -> int:  # pragma: no cover
    """Store ``value`` for each of ``new_keys`` not stored yet; returns how many were new."""
    added = 0
    for k in range(new_keys.shape[0]):
        if hash_get(keys, vals, new_keys[k]) == -2:
            hash_put(keys, vals, new_keys[k], value)
            added += 1
    return added


@numba.njit(cache=True)
def subtree_keys(
    nodes: np.ndarray, lexers: np.ndarray, proj: np.ndarray, index_keys: np.ndarray, index_vals: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - numba
    """The sorted distinct subtree cache keys ``nodes[k] * LEX_STRIDE + lexers[k]``, and the
    sorted distinct keys of their projections (``proj``: the lexer's ``LX_PROJ``) absent from
    the cache index ``(index_keys, index_vals)``."""
    keys = np.sort(nodes.astype(np.int64) * LEX_STRIDE + lexers)
    n = 0
    for k in range(keys.shape[0]):
        if n == 0 or keys[k] != keys[n - 1]:
            keys[n] = keys[k]
            n += 1
    missing = np.empty(n, dtype=np.int64)
    m = 0
    for k in range(n):
        single = proj[keys[k] % LEX_STRIDE]
        if single >= 0:
            key = (keys[k] // LEX_STRIDE) * LEX_STRIDE + single
            if hash_get(index_keys, index_vals, key) < 0:
                missing[m] = key
                m += 1
    missing = np.sort(missing[:m])
    m = 0
    for k in range(missing.shape[0]):
        if m == 0 or missing[k] != missing[m - 1]:
            missing[m] = missing[k]
            m += 1
    return keys[:n], missing[:m]


@numba.njit(cache=True)
def hash_get_many(keys: np.ndarray, vals: np.ndarray, query: np.ndarray) -> np.ndarray:  # pragma: no cover
    """:func:`hash_get` of each key of ``query``."""
    found = np.empty(query.shape[0], dtype=np.int64)
    for k in range(query.shape[0]):
        found[k] = hash_get(keys, vals, query[k])
    return found


@numba.njit(cache=True)
def hash_put_many(
    keys: np.ndarray, vals: np.ndarray, new_keys: np.ndarray, new_vals: np.ndarray
) -> int:  # pragma: no cover
    """:func:`hash_put` for several pairs (the table must have room for them); returns how many
    keys were absent."""
    added = 0
    for k in range(new_keys.shape[0]):
        if hash_get(keys, vals, new_keys[k]) == -2:
            added += 1
        hash_put(keys, vals, new_keys[k], new_vals[k])
    return added
