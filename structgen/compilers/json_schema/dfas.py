"""Byte DFAs built directly for the string terminals every schema has many of.

Object keys that are "anything but the listed property names" and length-bounded strings have
regexes (kept in the grammar IR) whose character-level construction through interegular is slow;
these builders make the same languages as byte DFAs in milliseconds. Strings under several
keywords at once (``pattern`` with ``maxLength``, a ``format`` with a ``pattern``) get the
intersection of the keywords' DFAs. Both rely on strings having one
canonical spelling (see ``ecma_regex.json_char_regex``): one-character codes are prefix-free, so a
string is a unique sequence of character codes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import numpy as np

from structgen.automata.byte_dfa import ByteDFA, finalize
from structgen.automata.regex import regex_to_byte_dfa
from structgen.compilers.json_schema.ecma_regex import ANY, json_char_regex

DEAD = -1


@functools.lru_cache(maxsize=1)
def _char_dfa() -> ByteDFA:
    """One canonical JSON string character (raw, short escape, or ``\\u00XX`` control)."""
    dfa = regex_to_byte_dfa(json_char_regex(ANY))
    exits = (dfa.transitions >= 0).any(axis=1)
    if (dfa.accepting & exits).any():  # pragma: no cover - guards the prefix-free assumption
        raise AssertionError("JSON character codes must be prefix-free")
    return dfa


@functools.lru_cache(maxsize=1)
def json_string_dfa() -> ByteDFA:
    """A whole canonical JSON string, quotes included."""
    return regex_to_byte_dfa(f'"(?:{json_char_regex(ANY)})*"')


@functools.lru_cache(maxsize=4096)
def excluded_keys_dfa(words: tuple[str, ...]) -> ByteDFA:
    """Canonical JSON strings (with quotes) except the JSON spellings of ``words``."""
    g = json_string_dfa()
    gt = g.transitions
    trie_children: list[dict[int, int]] = [{}]
    word_end: list[bool] = [False]
    for w in words:
        node = 0
        for b in json.dumps(w, ensure_ascii=False).encode("utf-8"):
            nxt = trie_children[node].get(b)
            if nxt is None:
                nxt = len(trie_children)
                trie_children[node][b] = nxt
                trie_children.append({})
                word_end.append(False)
            node = nxt
        word_end[node] = True
    n_g = gt.shape[0]
    # States 0..n_g-1: off the trie, in string state g. Then one state per (trie node, g) pair met.
    ids: dict[tuple[int, int], int] = {}
    rows: list[np.ndarray] = [np.where(gt[s] >= 0, gt[s], DEAD).astype(np.int32) for s in range(n_g)]
    accepting: list[bool] = [bool(g.accepting[s]) for s in range(n_g)]

    def state_of(gs: int, node: int) -> int:
        key = (gs, node)
        found = ids.get(key)
        if found is None:
            found = len(rows)
            ids[key] = found
            rows.append(None)  # type: ignore[arg-type]
            accepting.append(bool(g.accepting[gs]) and not word_end[node])
            todo.append((gs, node, found))
        return found

    todo: list[tuple[int, int, int]] = []
    initial = state_of(g.initial, 0)
    while todo:
        gs, node, sid = todo.pop()
        row = np.where(gt[gs] >= 0, gt[gs], DEAD).astype(np.int32)
        for b, child in trie_children[node].items():
            g2 = int(gt[gs, b])
            if g2 < 0:
                continue
            if word_end[child]:
                row[b] = DEAD  # the closing quote of an excluded word
            else:
                row[b] = state_of(g2, child)
        rows[sid] = row
    return finalize(np.stack(rows), np.array(accepting, dtype=bool), initial)


@functools.lru_cache(maxsize=1024)
def length_string_dfa(min_len: int, max_len: int | None) -> ByteDFA:
    """Canonical JSON strings (with quotes) of ``min_len..max_len`` characters (None: unbounded)."""
    c = _char_dfa()
    ct = c.transitions
    inner = [s for s in range(ct.shape[0]) if not c.accepting[s]]
    index = np.full(ct.shape[0], -1, dtype=np.int64)
    index[inner] = np.arange(len(inner))
    width = len(inner)
    top = max_len if max_len is not None else min_len
    # Per inner state and byte: the inner state reached and whether a character was completed.
    sub = ct[inner]
    alive = sub >= 0
    completes = alive & c.accepting[np.where(alive, sub, 0)]
    target_inner = np.where(completes, index[c.initial], index[np.where(alive, sub, 0)])
    # State 0: before the opening quote; 1: after the closing quote; then (count, inner state).
    n = 2 + (top + 1) * width
    transitions = np.full((n, 256), DEAD, dtype=np.int32)
    accepting = np.zeros(n, dtype=bool)
    accepting[1] = True
    base = 2 + np.arange(top + 1) * width
    counts = np.arange(top + 1)
    next_count = counts + 1 if max_len is not None else np.minimum(counts + 1, top)
    for k in range(width):
        rows = base + k
        # Completing a character moves to the next count; a bounded string stops at max_len.
        tgt = np.where(completes[k][None, :], base[np.minimum(next_count, top)][:, None], base[:, None])
        tgt = tgt + target_inner[k][None, :]
        tgt = np.where(alive[k][None, :], tgt, DEAD)
        if max_len is not None:
            tgt[counts == max_len] = DEAD
        transitions[rows] = tgt.astype(np.int32)
    start_rows = base + index[c.initial]
    transitions[0, ord('"')] = start_rows[0]
    transitions[start_rows[counts >= min_len], ord('"')] = 1
    return finalize(transitions, accepting, 0)


class _NotAscii(Exception):
    pass


def _nfa_fragment(node, trans: list[dict[int, set[int]]], eps: list[set[int]]) -> tuple[int, int]:
    """Thompson construction over bytes for an ASCII-only regex AST; returns (start, end)."""
    from structgen.compilers.json_schema.ecma_regex import Alt, Chars, Repeat, Seq

    def new() -> int:
        trans.append({})
        eps.append(set())
        return len(trans) - 1

    if isinstance(node, Chars):
        if not node.ranges or node.ranges[-1][1] > 0x7F:
            raise _NotAscii()
        s, e = new(), new()
        for lo, hi in node.ranges:
            for b in range(lo, hi + 1):
                trans[s].setdefault(b, set()).add(e)
        return s, e
    if isinstance(node, Seq):
        s = e = new()
        for item in node.items:
            a, b = _nfa_fragment(item, trans, eps)
            eps[e].add(a)
            e = b
        return s, e
    if isinstance(node, Alt):
        s, e = new(), new()
        for option in node.options:
            a, b = _nfa_fragment(option, trans, eps)
            eps[s].add(a)
            eps[b].add(e)
        return s, e
    if isinstance(node, Repeat):
        s = e = new()
        for _ in range(node.lo):
            a, b = _nfa_fragment(node.item, trans, eps)
            eps[e].add(a)
            e = b
        if node.hi is None:
            a, b = _nfa_fragment(node.item, trans, eps)
            eps[e].add(a)
            eps[b].add(e)
        else:
            end = new()
            eps[e].add(end)
            for _ in range(node.hi - node.lo):
                a, b = _nfa_fragment(node.item, trans, eps)
                eps[e].add(a)
                eps[b].add(end)
                e = b
            e = end
        return s, e
    raise _NotAscii()  # anchors


@functools.lru_cache(maxsize=4096)
def ascii_regex_dfa(pattern: str) -> ByteDFA | None:
    """Byte DFA of a full-match ASCII-only regex (ECMA syntax), or None if it is not ASCII-only.

    Subset construction on a Thompson NFA: fast for the digit-heavy regexes of integer ranges and
    formats, where interegular's character-set machinery is slow.
    """
    from structgen.compilers.json_schema.ecma_regex import PatternSyntaxError, UnsupportedPattern, parse

    try:
        tree = parse(pattern)
        trans: list[dict[int, set[int]]] = []
        eps: list[set[int]] = []
        start, end = _nfa_fragment(tree, trans, eps)
    except (_NotAscii, UnsupportedPattern, PatternSyntaxError):
        return None

    def closure(states: frozenset[int]) -> frozenset[int]:
        out = set(states)
        todo = list(states)
        while todo:
            for t in eps[todo.pop()]:
                if t not in out:
                    out.add(t)
                    todo.append(t)
        return frozenset(out)

    first = closure(frozenset([start]))
    ids = {first: 0}
    order = [first]
    rows: list[np.ndarray] = []
    i = 0
    while i < len(order):
        current = order[i]
        i += 1
        row = np.full(256, DEAD, dtype=np.int32)
        moves: dict[int, set[int]] = {}
        for s in current:
            for b, targets in trans[s].items():
                moves.setdefault(b, set()).update(targets)
        for b, targets in moves.items():
            nxt = closure(frozenset(targets))
            sid = ids.get(nxt)
            if sid is None:
                sid = len(order)
                ids[nxt] = sid
                order.append(nxt)
            row[b] = sid
        rows.append(row)
        if len(order) > 100_000:
            return None
    accepting = np.array([end in s for s in order], dtype=bool)
    return finalize(np.stack(rows), accepting, 0)


def _product_walk(dfas: list[ByteDFA], stop_when: Callable | None = None):
    """BFS over tuples of states of ``dfas`` (the first must stay alive, the others may die: -1).

    Returns (states, rows) where rows[i][byte] is the index of the successor tuple or -1; stops early
    (returning None) when ``stop_when(tuple)`` is true for a reached tuple.
    """
    first = tuple(d.initial for d in dfas)
    index = {first: 0}
    states = [first]
    rows: list[np.ndarray] = []
    i = 0
    while i < len(states):
        current = states[i]
        i += 1
        if stop_when is not None and stop_when(current):
            return None
        nexts = [d.transitions[s] if s >= 0 else None for d, s in zip(dfas, current, strict=True)]
        row = np.full(256, DEAD, dtype=np.int32)
        for b in np.flatnonzero(nexts[0] >= 0):
            key = tuple(-1 if n is None else int(n[b]) for n in nexts)
            sid = index.get(key)
            if sid is None:
                sid = len(states)
                index[key] = sid
                states.append(key)
            row[b] = sid
        rows.append(row)
        if len(states) > 200_000:
            raise OverflowError("product automaton too large")
    return states, rows


def difference_dfa(base: ByteDFA, removed: list[ByteDFA]) -> ByteDFA:
    """Strings of ``base`` accepted by none of ``removed``."""
    dfas = [base, *removed]
    states, rows = _product_walk(dfas)
    accepting = np.array(
        [
            bool(base.accepting[t[0]])
            and not any(s >= 0 and d.accepting[s] for d, s in zip(removed, t[1:], strict=True))
            for t in states
        ],
        dtype=bool,
    )
    return finalize(np.stack(rows), accepting, 0)


def intersection_dfa(dfas: list[ByteDFA]) -> ByteDFA:
    """Strings accepted by every DFA of ``dfas`` (EmptyLanguageError when there is none).

    Raises OverflowError when the product has more than 200,000 states.
    """
    states, rows = _product_walk(dfas)
    accepting = np.array(
        [all(s >= 0 and d.accepting[s] for d, s in zip(dfas, t, strict=True)) for t in states], dtype=bool
    )
    return finalize(np.stack(rows), accepting, 0)


def intersects(a: ByteDFA, b: ByteDFA) -> bool:
    """Whether some string is accepted by both."""
    try:
        result = _product_walk(
            [a, b], stop_when=lambda t: t[1] >= 0 and a.accepting[t[0]] and b.accepting[t[1]]
        )
    except OverflowError:
        return True
    return result is None
