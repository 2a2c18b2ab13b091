"""Caches of subtree walks: one per automaton, and one per vocabulary for shared DFA states.

:class:`SubtreeCache` holds what :func:`~structgen.automata.grammar.kernels.subtree_walks` finds
below a trie node for a lexer state (the tokens that stay inside the lexeme, the nodes where it
ends), keyed ``node * LEX_STRIDE + state``.

Shared walks. Many terminals contain the same sub-language: every JSON key and string terminal,
once its lexeme is past what makes it special (a listed key's spelling, a length bound), reads
"the rest of a JSON string". A lexer state made of one such terminal, in a DFA state equivalent
(same language from there) to state ``s`` of a *shared DFA*, walks the token trie exactly like
state ``s`` of that DFA: the same tokens stay inside the lexeme, and it ends at the same nodes.
Only the lexer state at those ends differs (each terminal is its own); a shared DFA has one
accepting state, which no byte leaves, so that lexer state is the terminal's copy of it, and ends
under states that do not accept are dropped (no lexeme can end there). So such walks are cached
once per vocabulary (:func:`shared_cache`), keyed by the trie node and the *class* ``(shared DFA,
state)``, and read by every automaton that meets an equivalent state: a schema's hundredth object
type, or the next compile, finds the rest of a key already walked.
"""

from __future__ import annotations

import hashlib
import weakref

import numpy as np

from structgen.automata import kernels as dfa_kernels
from structgen.automata.byte_dfa import DEAD, ByteDFA, distinct_columns
from structgen.automata.grammar.kernels import SEEN, IntHashMap, hash_put_absent
from structgen.automata.token_trie import TokenTrie
from structgen.errors import GrammarError

# Shared DFA (by content) -> the class id of its state 0; classes of one DFA are consecutive.
_CLASS_BASES: dict[bytes, int] = {}
_NEXT_CLASS = [0]
_CACHES: weakref.WeakKeyDictionary[TokenTrie, SubtreeCache] = weakref.WeakKeyDictionary()


class SubtreeCache:
    """Lexeme parts of trie subtrees, per ``(node, lexer state)``, in arrays the mask walk reads.

    An entry is what :func:`~structgen.automata.grammar.kernels.subtree_walks` finds in the
    subtree of ``node`` with lexer state ``lx`` after the node's byte: the tokens below it that stay
    inside the lexeme and the boundary nodes with their parents' lexer states. It does not depend
    on the parser, so every mask reaching the node at a lexeme start in that lexer state shares
    it. Memory is
    bounded: when the pools would pass ``max_items`` token ids or boundaries, the cache starts
    over empty (before a batch, so that the entries one walk pass asked for stay together).
    """

    def __init__(self, max_items: int = 1 << 21) -> None:
        self.max_items = max_items
        self._clear()

    def _clear(self) -> None:
        self.index = IntHashMap()
        self.table = np.zeros((64, 4), dtype=np.int64)
        self.tokens = np.zeros(4096, dtype=np.int32)
        self.bnodes = np.zeros(4096, dtype=np.int32)
        self.blexers = np.zeros(4096, dtype=np.int32)
        self.num_entries = 0
        self.num_tokens = 0
        self.num_bounds = 0

    def arrays(self) -> tuple[np.ndarray, ...]:
        """``(keys, vals, table, tokens, bnodes, blexers)`` as :func:`walk_entries` takes them."""
        return (self.index.keys, self.index.vals, self.table, self.tokens, self.bnodes, self.blexers)

    def add_batch(
        self,
        keys: np.ndarray,
        tokens: np.ndarray,
        t_end: np.ndarray,
        bnodes: np.ndarray,
        blexers: np.ndarray,
        b_end: np.ndarray,
    ) -> None:
        """Store entries absent so far, as :func:`~.kernels.subtree_walks` lists them.

        Entry ``k`` (key ``node * LEX_STRIDE + lexer``) has the tokens ``tokens[t_end[k - 1] :
        t_end[k]]`` and the boundaries ``bnodes`` / ``blexers[b_end[k - 1] : b_end[k]]``.
        """
        n = keys.shape[0]
        n_t = int(t_end[-1]) if n else 0
        n_b = int(b_end[-1]) if n else 0
        if max(self.num_tokens + n_t, self.num_bounds + n_b) > self.max_items:
            self._clear()
        t0, b0, e0 = self.num_tokens, self.num_bounds, self.num_entries
        self.tokens = _ensure_room(self.tokens, t0 + n_t)
        self.bnodes = _ensure_room(self.bnodes, b0 + n_b)
        self.blexers = _ensure_room(self.blexers, b0 + n_b)
        self.table = _ensure_room(self.table, e0 + n)
        self.tokens[t0 : t0 + n_t] = tokens[:n_t]
        self.bnodes[b0 : b0 + n_b] = bnodes[:n_b]
        self.blexers[b0 : b0 + n_b] = blexers[:n_b]
        rows = self.table[e0 : e0 + n]
        rows[:, 1] = t0 + t_end
        rows[:, 0] = t0
        rows[1:, 0] += t_end[:-1]
        rows[:, 3] = b0 + b_end
        rows[:, 2] = b0
        rows[1:, 2] += b_end[:-1]
        self.index.put_many(keys, np.arange(e0, e0 + n, dtype=np.int32))
        self.num_entries += n
        self.num_tokens += n_t
        self.num_bounds += n_b

    def mark_seen(self, keys: np.ndarray) -> None:
        """Mark ``keys`` as met once (:data:`~.kernels.SEEN`): the next walk to meet one caches it."""
        # Keys met once come from walks of states that may never recur: their number is bounded too.
        keys = np.unique(keys)
        if self.index.size + keys.shape[0] > self.max_items // 4:
            self._clear()
        self.index.reserve(keys.shape[0])
        self.index.count[0] += hash_put_absent(self.index.keys, self.index.vals, keys, SEEN)


def _ensure_room(pool: np.ndarray, size: int) -> np.ndarray:
    """``pool``, or a copy at least twice as large when it is shorter than ``size``."""
    if size <= pool.shape[0]:
        return pool
    grown = np.zeros((max(size, 2 * pool.shape[0]), *pool.shape[1:]), dtype=pool.dtype)
    grown[: pool.shape[0]] = pool
    return grown


def shared_cache(trie: TokenTrie) -> SubtreeCache:
    """The cache of shared subtree walks of ``trie``'s vocabulary (one per trie, process-wide).

    Entries are keyed ``node * LEX_STRIDE + class``; their boundary nodes are the nodes where the
    lexeme ends in the accepting state (their lexer states are not stored: each terminal has its own).
    """
    found = _CACHES.get(trie)
    if found is None:
        found = _CACHES[trie] = SubtreeCache()
    return found


def class_base(shared: ByteDFA) -> int:
    """The class id of ``shared``'s state 0 (registered on first use).

    Raises :class:`GrammarError` unless ``shared`` has one accepting state and no byte leaves it.
    """
    key = hashlib.sha1(
        shared.transitions.tobytes() + shared.accepting.tobytes() + np.int64(shared.initial).tobytes()
    ).digest()
    base = _CLASS_BASES.get(key)
    if base is None:
        accepting = np.flatnonzero(shared.accepting)
        if accepting.shape[0] != 1 or (shared.transitions[accepting[0]] != DEAD).any():
            raise GrammarError("a shared DFA needs exactly one accepting state, with no way out of it")
        base = _CLASS_BASES[key] = _NEXT_CLASS[0]
        _NEXT_CLASS[0] += shared.transitions.shape[0]
    return base


def equivalent_states(dfa: ByteDFA, shared: ByteDFA) -> np.ndarray:
    """``out[s]``: the state of ``shared`` with the same language as ``dfa``'s state ``s``, or -1.

    Both DFAs minimized (as every ByteDFA is), so each shared state matches at most one state.
    """
    n = dfa.transitions.shape[0]
    union = np.vstack([dfa.transitions, np.where(shared.transitions >= 0, shared.transitions + n, DEAD)])
    union = union.astype(np.int32)
    accepting = np.concatenate([dfa.accepting, shared.accepting])
    classes = np.ascontiguousarray(union[:, distinct_columns(union)])
    block, count = dfa_kernels.equivalence_classes(classes, accepting)
    by_block = np.full(count, -1, dtype=np.int64)
    by_block[block[n:]] = np.arange(shared.transitions.shape[0])
    return by_block[block[:n]]
