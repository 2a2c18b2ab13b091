"""numba kernels of the grammar engine, each with the plain-Python reference tests compare it to.

The kernels walk the vocabulary's preorder token trie (see :mod:`structgen.automata.token_trie`):
visiting node ``i`` steps the state of its parent (kept per depth on a stack) by the byte into
``i``, and a dead state skips the subtree (``node_skip[i]``).

A mask is computed in two parts (XGrammar's context-independent / context-dependent split):

* :func:`lexeme_walk` depends on the lexer state only: it finds the tokens that stay inside the
  current lexeme (always allowed: some terminal the parser accepts is still alive) and the
  *boundary* nodes, where the byte into the node cannot extend the lexeme; it records each with
  the lexer state of its parent. Its result is cached per lexer state. It is resumable: when a
  lexer row is missing it saves its position in ``resume`` and returns ``NEED_ROW``; the caller
  computes the row and calls again.
* :func:`walk_entries` depends on the parser state: it walks subtrees ("entries": a node and the
  ``(parser, lexer)`` state of its parent) with the full state. A lexeme that ends moves the
  parser on through the memoized transition tables, hash maps from ``parser_id * ACC_STRIDE +
  acc`` to the next parser id (``-1``: refused; ignored lexemes leave the parser where it is):
  one for the sets the output went through, one for the mask's speculative sets.
  When an entry it needs is missing (a lexer row, a parser transition) the kernel records it,
  records the node as a pending entry for the next pass and skips its subtree; the caller fills
  in every missing entry of the pass at once and walks the pending entries. The number of passes
  is the nesting depth of new parser states inside one token, not their number.

Lexer table entries: ``>= 0`` next lexer state, ``-1`` the lexeme cannot take the byte (it may end
before it), ``-2`` row not computed yet, ``-3`` blocked (only guard-only terminals take the byte:
refused).
"""

from __future__ import annotations

import numba
import numpy as np

ACC_STRIDE = 1 << 24
DONE = 0
NEED_ROW = 1
NEED_SPACE = 3
EMPTY_KEY = -1
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


def hash_get_reference(keys: np.ndarray, vals: np.ndarray, key: int) -> int:
    """Plain-Python :func:`hash_get`."""
    mask = keys.shape[0] - 1
    i = int(((key * 0x9E3779B97F4A7C15) % (1 << 64)) >> 29) & mask
    while True:
        k = int(keys[i])
        if k == key:
            return int(vals[i])
        if k == EMPTY_KEY:
            return -2
        i = (i + 1) & mask


class ParserTransitionMap:
    """The parser transition table shared with the kernels: ``(set id, accepted set) -> set id``."""

    def __init__(self, capacity: int = 1024) -> None:
        self.keys = np.full(capacity, EMPTY_KEY, dtype=np.int64)
        self.vals = np.full(capacity, -1, dtype=np.int32)
        self.size = 0

    def get(self, parser_id: int, acc: int) -> int:
        """The next set id, or ``-2`` when not known yet."""
        return int(hash_get(self.keys, self.vals, parser_id * ACC_STRIDE + acc))

    def clear(self) -> None:
        """Forget every transition."""
        if self.size:
            self.keys.fill(EMPTY_KEY)
            self.size = 0

    def put_many(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Record several new transitions given by key (``parser * ACC_STRIDE + acc``) at once.

        The keys must be distinct and absent from the table.
        """
        need = self.size + keys.shape[0]
        if 2 * need > self.keys.shape[0]:
            capacity = self.keys.shape[0]
            while 2 * need > capacity:
                capacity *= 2
            old_keys, old_vals = self.keys, self.vals
            used = old_keys != EMPTY_KEY
            self.keys = np.full(capacity, EMPTY_KEY, dtype=np.int64)
            self.vals = np.full(capacity, -1, dtype=np.int32)
            hash_put_many(self.keys, self.vals, old_keys[used], old_vals[used])
        hash_put_many(self.keys, self.vals, keys.astype(np.int64), values.astype(np.int32))
        self.size = need

    def put(self, parser_id: int, acc: int, value: int) -> None:
        """Record a transition (growing the table to keep it at most half full)."""
        if 2 * (self.size + 1) > self.keys.shape[0]:
            old_keys, old_vals = self.keys, self.vals
            self.keys = np.full(2 * old_keys.shape[0], EMPTY_KEY, dtype=np.int64)
            self.vals = np.full(2 * old_keys.shape[0], -1, dtype=np.int32)
            used = old_keys != EMPTY_KEY
            hash_put_many(self.keys, self.vals, old_keys[used], old_vals[used])
        key = parser_id * ACC_STRIDE + acc
        if hash_get(self.keys, self.vals, key) == -2:
            self.size += 1
        hash_put(self.keys, self.vals, key, value)


# --- the mask walks ------------------------------------------------------------------------------


@numba.njit(cache=True)
def lexeme_walk(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    token_start: np.ndarray,
    token_ids: np.ndarray,
    lex_trans: np.ndarray,
    lexer0: int,
    out: np.ndarray,
    bnodes: np.ndarray,
    blex: np.ndarray,
    stack: np.ndarray,
    resume: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - numba
    """Tokens inside the lexeme from ``lexer0`` (ORed into ``out``) and the boundary nodes.

    ``resume[0]`` is the next node (start with 1), ``resume[1]`` the number of boundaries stored
    in ``bnodes`` (node) / ``blex`` (lexer state of its parent), start with 0. ``stack`` holds one
    lexer state per depth. Returns ``(status, info)``: ``DONE``; ``NEED_ROW`` with the lexer state
    whose row is missing; ``NEED_SPACE`` when the boundary arrays are full.
    """
    n_nodes = node_byte.shape[0]
    stack[0] = lexer0
    i = resume[0]
    n_b = resume[1]
    cap_b = bnodes.shape[0]
    while i < n_nodes:
        d = node_depth[i]
        lx = stack[d - 1]
        nl = lex_trans[lx, node_byte[i]]
        if nl < 0:
            if nl == -2:
                resume[0] = i
                resume[1] = n_b
                return NEED_ROW, lx
            if nl == -1:
                if n_b == cap_b:
                    resume[0] = i
                    resume[1] = n_b
                    return NEED_SPACE, 0
                bnodes[n_b] = i
                blex[n_b] = lx
                n_b += 1
            i = node_skip[i]
            continue
        stack[d] = nl
        for k in range(token_start[i], token_start[i + 1]):
            t = token_ids[k]
            out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        i += 1
    resume[0] = i
    resume[1] = n_b
    return DONE, 0


@numba.njit(cache=True)
def walk_entries(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    token_start: np.ndarray,
    token_ids: np.ndarray,
    lex_trans: np.ndarray,
    lex_acc: np.ndarray,
    acc_ignore: np.ndarray,
    hkeys: np.ndarray,
    hvals: np.ndarray,
    tkeys: np.ndarray,
    tvals: np.ndarray,
    p_lex0: np.ndarray,
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
    miss_node: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - numba
    """OR into ``out`` the allowed tokens of the subtrees of the first ``n_entries`` entries.

    Parser transitions are looked up in the table ``hkeys/hvals``, then in ``tkeys/tvals`` (the
    speculative transitions of the mask being computed).

    Entry ``j`` is node ``e_node[j]`` whose parent's state is ``(e_parser[j], e_lexer[j])``.
    Returns ``(pending, missing)``: the entries written to ``pend_*`` for the next pass and the
    missing table entries written to ``miss`` (``-1 - lexer_state`` for a missing lexer row, the
    key ``parser * ACC_STRIDE + acc`` for a missing parser transition), with the node that needed
    each in ``miss_node``. The ``pend_*`` and ``miss*`` arrays must have room for one item per
    trie node.
    """
    n_pend = 0
    n_miss = 0
    for j in range(n_entries):
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
            nxt_p = p
            if nl < 0:
                if nl == -2:
                    miss[n_miss] = -1 - lx
                    miss_node[n_miss] = i
                    n_miss += 1
                    pend_node[n_pend] = i
                    pend_parser[n_pend] = p
                    pend_lexer[n_pend] = lx
                    n_pend += 1
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
                    key = p * ACC_STRIDE + acc
                    nxt_p = hash_get(hkeys, hvals, key)
                    if nxt_p == -2:
                        nxt_p = hash_get(tkeys, tvals, key)
                    if nxt_p < 0:
                        if nxt_p == -2:
                            miss[n_miss] = key
                            miss_node[n_miss] = i
                            n_miss += 1
                            pend_node[n_pend] = i
                            pend_parser[n_pend] = p
                            pend_lexer[n_pend] = lx
                            n_pend += 1
                        i = node_skip[i]
                        continue
                l0 = p_lex0[nxt_p]
                nl = lex_trans[l0, b]
                if nl < 0:
                    if nl == -2:
                        miss[n_miss] = -1 - l0
                        miss_node[n_miss] = i
                        n_miss += 1
                        pend_node[n_pend] = i
                        pend_parser[n_pend] = p
                        pend_lexer[n_pend] = lx
                        n_pend += 1
                    i = node_skip[i]
                    continue
            stack_p[d] = nxt_p
            stack_l[d] = nl
            for k in range(token_start[i], token_start[i + 1]):
                t = token_ids[k]
                out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            i += 1
    return n_pend, n_miss


@numba.njit(cache=True)
def hash_put_many(
    keys: np.ndarray, vals: np.ndarray, new_keys: np.ndarray, new_vals: np.ndarray
) -> None:  # pragma: no cover
    """:func:`hash_put` for several pairs (the table must have room for them)."""
    for k in range(new_keys.shape[0]):
        hash_put(keys, vals, new_keys[k], new_vals[k])


@numba.njit(cache=True)
def byte_runs_below(node_byte: np.ndarray, node_depth: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``runs[i]``: the longest run of ``node_byte[i]`` on a trie path starting at node ``i``."""
    n = node_byte.shape[0]
    parent = np.zeros(n, np.int32)
    last_at_depth = np.zeros(node_depth.max() + 2, np.int32)
    for i in range(1, n):
        d = node_depth[i]
        parent[i] = last_at_depth[d - 1]
        last_at_depth[d] = i
    runs = np.ones(n, np.int32)
    for i in range(n - 1, 0, -1):
        p = parent[i]
        if p > 0 and node_byte[p] == node_byte[i] and runs[i] + 1 > runs[p]:
            runs[p] = runs[i] + 1
    return runs


def byte_runs_below_reference(node_byte: np.ndarray, node_depth: np.ndarray) -> np.ndarray:
    """Plain-Python :func:`byte_runs_below`."""
    n = node_byte.shape[0]
    parent = [0] * n
    last = {0: 0}
    for i in range(1, n):
        parent[i] = last[int(node_depth[i]) - 1]
        last[int(node_depth[i])] = i
    runs = np.ones(n, np.int32)
    for i in range(n - 1, 0, -1):
        p = parent[i]
        if p > 0 and node_byte[p] == node_byte[i]:
            runs[p] = max(runs[p], runs[i] + 1)
    return runs


def _set_bit(out: np.ndarray, t: int) -> None:
    out[t >> 5] |= np.uint32(1 << (t & 31))


def lexeme_walk_reference(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    token_start: np.ndarray,
    token_ids: np.ndarray,
    lex_trans: np.ndarray,
    lexer0: int,
    out: np.ndarray,
    bnodes: np.ndarray,
    blex: np.ndarray,
    stack: np.ndarray,
    resume: np.ndarray,
) -> tuple[int, int]:
    """Plain-Python :func:`lexeme_walk` (same arguments, same results)."""
    stack[0] = lexer0
    i, n_b = int(resume[0]), int(resume[1])
    while i < node_byte.shape[0]:
        d = int(node_depth[i])
        lx = int(stack[d - 1])
        nl = int(lex_trans[lx, node_byte[i]])
        if nl == -2:
            resume[0], resume[1] = i, n_b
            return NEED_ROW, lx
        if nl < 0:
            if nl == -1:
                if n_b == bnodes.shape[0]:
                    resume[0], resume[1] = i, n_b
                    return NEED_SPACE, 0
                bnodes[n_b], blex[n_b] = i, lx
                n_b += 1
            i = int(node_skip[i])
            continue
        stack[d] = nl
        for k in range(int(token_start[i]), int(token_start[i + 1])):
            _set_bit(out, int(token_ids[k]))
        i += 1
    resume[0], resume[1] = i, n_b
    return DONE, 0


def walk_entries_reference(
    node_byte: np.ndarray,
    node_depth: np.ndarray,
    node_skip: np.ndarray,
    token_start: np.ndarray,
    token_ids: np.ndarray,
    lex_trans: np.ndarray,
    lex_acc: np.ndarray,
    acc_ignore: np.ndarray,
    hkeys: np.ndarray,
    hvals: np.ndarray,
    tkeys: np.ndarray,
    tvals: np.ndarray,
    p_lex0: np.ndarray,
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
    miss_node: np.ndarray,
) -> tuple[int, int]:
    """Plain-Python :func:`walk_entries` (same arguments, same results)."""
    pending: list[tuple[int, int, int]] = []
    missing: list[tuple[int, int]] = []

    def step(p: int, lx: int, b: int) -> tuple[int, int] | int | None:
        """Next ``(parser, lexer)``; ``None`` if refused; an int: the missing table entry."""
        nl = int(lex_trans[lx, b])
        if nl >= 0:
            return p, nl
        if nl == -2:
            return -1 - lx
        if nl == -3 or lex_acc[lx] < 0:
            return None
        acc = int(lex_acc[lx])
        if not acc_ignore[acc]:
            key = p * ACC_STRIDE + acc
            nxt = hash_get_reference(hkeys, hvals, key)
            if nxt == -2:
                nxt = hash_get_reference(tkeys, tvals, key)
            if nxt == -2:
                return key
            if nxt < 0:
                return None
            p = nxt
        l0 = int(p_lex0[p])
        nl = int(lex_trans[l0, b])
        if nl == -2:
            return -1 - l0
        return (p, nl) if nl >= 0 else None

    for j in range(n_entries):
        i = int(e_node[j])
        base = int(node_depth[i]) - 1
        stack = {0: (int(e_parser[j]), int(e_lexer[j]))}
        end = int(node_skip[i])
        while i < end:
            d = int(node_depth[i]) - base
            p, lx = stack[d - 1]
            result = step(p, lx, int(node_byte[i]))
            if result is None or isinstance(result, int):
                if isinstance(result, int):
                    missing.append((result, i))
                    pending.append((i, p, lx))
                i = int(node_skip[i])
                continue
            stack[d] = result
            for k in range(int(token_start[i]), int(token_start[i + 1])):
                _set_bit(out, int(token_ids[k]))
            i += 1
    for k, (node, p, lx) in enumerate(pending):
        pend_node[k], pend_parser[k], pend_lexer[k] = node, p, lx
    for k, (key, node) in enumerate(missing):
        miss[k], miss_node[k] = key, node
    return len(pending), len(missing)
