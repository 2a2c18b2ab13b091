"""The byte trie of a vocabulary's text tokens, laid out for fast walks in numba.

Nodes are numbered in depth-first preorder, so the subtree of node ``i`` is the node range
``[i, skip[i])``: a walk that finds a dead automaton state at node ``i`` jumps to ``skip[i]``. Node
0 is the root (the empty string). Arrays:

- ``node_byte[i]``: the byte on the edge into node ``i`` (0 for the root),
- ``node_depth[i]``: the length of the prefix node ``i`` stands for,
- ``node_skip[i]``: one past the last node of ``i``'s subtree,
- ``token_start[i] : token_start[i + 1]``: the slice of ``token_ids`` of tokens whose bytes end at
  ``i`` (several ids may share the same bytes),
- ``node_token[i]``: that token when it is the only one, :data:`NO_TOKEN` when there is none,
  :data:`SEVERAL_TOKENS` otherwise (walks read one array instead of a slice at most nodes),
- ``node_classes[i]``: the bit set of the classes (:data:`BYTE_CLASS`, with well-formed UTF-8
  characters as :data:`CHARS_CLASS`) of the bytes on the edges below node ``i``: an automaton
  state that loops on all of them keeps every token of the subtree (``token_ids[token_start[i + 1] :
  token_start[node_skip[i]]]``) without a walk.

Also kept: ``token_offsets``/``token_data``, every token's bytes in one flat buffer by id.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numba
import numpy as np

from structgen.vocabulary import Vocabulary

NO_TOKEN = -1
SEVERAL_TOKENS = -2


@numba.njit(cache=True)
def _build_preorder(data: np.ndarray, offsets: np.ndarray, order: np.ndarray):  # pragma: no cover - numba
    """Trie arrays from tokens sorted by bytes (``order``), sharing common prefixes."""
    n_tokens = order.shape[0]
    capacity = data.shape[0] + 1
    node_byte = np.zeros(capacity, np.uint8)
    node_depth = np.zeros(capacity, np.int32)
    node_parent = np.zeros(capacity, np.int32)
    token_node = np.zeros(n_tokens, np.int32)
    path = np.zeros(1024, np.int32)
    n_nodes = 1
    prev = -1
    for k in range(n_tokens):
        tok = order[k]
        start, end = offsets[tok], offsets[tok + 1]
        length = end - start
        common = 0
        if prev >= 0:
            p_start, p_end = offsets[prev], offsets[prev + 1]
            limit = min(length, p_end - p_start)
            while common < limit and data[start + common] == data[p_start + common]:
                common += 1
        for d in range(common, length):
            node_byte[n_nodes] = data[start + d]
            node_depth[n_nodes] = d + 1
            node_parent[n_nodes] = path[d]
            path[d + 1] = n_nodes
            n_nodes += 1
        token_node[k] = path[length]
        prev = tok
    node_skip = np.empty(n_nodes, np.int32)
    node_skip[:] = n_nodes
    # A node's subtree ends where the next node of equal or smaller depth starts.
    stack = np.zeros(1025, np.int32)
    top = 0
    for i in range(n_nodes):
        d = node_depth[i]
        while top > 0 and node_depth[stack[top - 1]] >= d:
            node_skip[stack[top - 1]] = i
            top -= 1
        stack[top] = i
        top += 1
    return node_byte[:n_nodes], node_depth[:n_nodes], node_skip, token_node, node_parent[:n_nodes]


def _byte_classes() -> np.ndarray:
    """Class of each byte for :attr:`TokenTrie.node_classes`.

    Each ASCII punctuation character, space, tab, newline and carriage return is a class of its
    own (they are what ends strings, names and numbers); digits, upper and lower case letters,
    other control bytes, DEL and non-ASCII bytes are one class each.
    """
    classes = np.zeros(256, dtype=np.uint8)
    special = [ord(c) for c in "\t\n\r "] + [b for b in range(0x21, 0x7F) if not chr(b).isalnum()]
    for k, b in enumerate(special):
        classes[b] = k
    n = len(special)
    groups = [
        range(0x30, 0x3A),
        range(0x41, 0x5B),
        range(0x61, 0x7B),
        [b for b in range(0x20) if b not in (9, 10, 13)],
        [0x7F],
        range(0x80, 0x100),
    ]
    for k, group in enumerate(groups):
        classes[list(group)] = n + k
    return classes


def _utf8_steps() -> np.ndarray:
    """``[state, byte]``: the UTF-8 decoder's next state (0: at a character boundary), -1: invalid.

    States: 0 boundary; 1, 2, 3: that many continuation bytes to come; 4, 5, 6, 7: after E0, ED,
    F0, F4, whose next byte has a narrower range (no overlong forms, surrogates or code points past
    U+10FFFF).
    """
    steps = np.full((8, 256), -1, dtype=np.int8)
    steps[0, :0x80] = 0
    steps[0, 0xC2:0xE0] = 1
    steps[0, 0xE0] = 4
    steps[0, 0xE1:0xF0] = 2
    steps[0, 0xED] = 5
    steps[0, 0xF0] = 6
    steps[0, 0xF1:0xF4] = 3
    steps[0, 0xF4] = 7
    for state, (lo, hi, to) in {
        1: (0x80, 0xC0, 0),
        2: (0x80, 0xC0, 1),
        3: (0x80, 0xC0, 2),
        4: (0xA0, 0xC0, 1),
        5: (0x80, 0xA0, 1),
        6: (0x90, 0xC0, 2),
        7: (0x80, 0x90, 2),
    }.items():
        steps[state, lo:hi] = to
    return steps


#: ``BYTE_CLASS[b]``: the class of byte ``b`` (see :attr:`TokenTrie.node_classes`).
BYTE_CLASS = _byte_classes()
#: Pseudo-classes of :attr:`TokenTrie.node_classes`: a byte of a well-formed multi-byte UTF-8
#: character (or of its beginning, at the end of a token), and a byte that breaks UTF-8.
CHARS_CLASS = int(BYTE_CLASS.max()) + 1
BROKEN_CLASS = CHARS_CLASS + 1
UTF8_STEPS = _utf8_steps()


@numba.njit(cache=True)
def _classes_below(
    node_byte: np.ndarray, node_parent: np.ndarray, byte_class: np.ndarray, utf8_steps: np.ndarray
) -> np.ndarray:  # pragma: no cover
    """Per node, the bit set of the byte classes on the edges of its subtree (below the node).

    Non-ASCII bytes count as :data:`CHARS_CLASS` or :data:`BROKEN_CLASS`, decoded from the root; a
    node inside a character gets every bit (its subtree is never judged by class).
    """
    n = node_byte.shape[0]
    decoder = np.zeros(n, dtype=np.int8)
    edge = np.zeros(n, dtype=np.uint64)
    chars = np.uint64(1) << np.uint64(CHARS_CLASS)
    broken = np.uint64(1) << np.uint64(BROKEN_CLASS)
    for i in range(1, n):  # preorder: a parent comes before its children
        up = decoder[node_parent[i]]
        b = node_byte[i]
        nxt = -1 if up < 0 else utf8_steps[up, b]
        decoder[i] = nxt
        if nxt < 0:
            edge[i] = broken
        elif b < 0x80:
            edge[i] = np.uint64(1) << np.uint64(byte_class[b])
        else:
            edge[i] = chars
    below = np.zeros(n, dtype=np.uint64)
    for i in range(n - 1, 0, -1):
        below[node_parent[i]] |= below[i] | edge[i]
    for i in range(n):
        if decoder[i] != 0:
            below[i] = ~np.uint64(0)
    return below


@dataclass(frozen=True, eq=False)
class TokenTrie:
    """Preorder byte trie of the text tokens of one vocabulary (see the module docstring)."""

    node_byte: np.ndarray
    node_depth: np.ndarray
    node_skip: np.ndarray
    token_start: np.ndarray
    token_ids: np.ndarray
    node_token: np.ndarray
    node_classes: np.ndarray
    token_offsets: np.ndarray
    token_data: np.ndarray
    max_depth: int

    @property
    def num_nodes(self) -> int:
        """Number of trie nodes, the root included."""
        return self.node_byte.shape[0]

    @classmethod
    def for_vocab(cls, vocab: Vocabulary) -> TokenTrie:
        """The trie of ``vocab`` (built once per vocabulary object, then cached)."""
        entry = _CACHE.get(id(vocab))
        if entry is not None and entry[0]() is vocab:
            return entry[1]
        trie = cls.build(vocab)
        key = id(vocab)
        _CACHE[key] = (weakref.ref(vocab, lambda _: _CACHE.pop(key, None)), trie)
        return trie

    @classmethod
    def build(cls, vocab: Vocabulary) -> TokenTrie:
        """Build the trie of ``vocab``'s text tokens."""
        pieces = [b if b is not None else b"" for b in vocab.token_bytes]
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        text_ids = np.array([i for i in range(vocab.size) if vocab.is_text_token(i)], dtype=np.int64)
        order = text_ids[np.argsort(np.array([pieces[i] for i in text_ids], dtype=object), kind="stable")]
        if lengths.max(initial=0) > 1023:
            raise ValueError("tokens longer than 1023 bytes are not supported")
        node_byte, node_depth, node_skip, token_node, node_parent = _build_preorder(data, offsets, order)
        counts = np.bincount(token_node, minlength=node_byte.shape[0])
        token_start = np.zeros(node_byte.shape[0] + 1, dtype=np.int32)
        np.cumsum(counts, out=token_start[1:])
        by_node = np.argsort(token_node, kind="stable")
        token_ids = order[by_node].astype(np.int32)
        node_token = np.full(node_byte.shape[0], NO_TOKEN, dtype=np.int32)
        node_token[counts > 1] = SEVERAL_TOKENS
        node_token[counts == 1] = token_ids[token_start[:-1][counts == 1]]
        return cls(
            node_byte=node_byte,
            node_depth=node_depth,
            node_skip=node_skip,
            token_start=token_start,
            token_ids=token_ids,
            node_token=node_token,
            node_classes=_classes_below(node_byte, node_parent, BYTE_CLASS, UTF8_STEPS),
            token_offsets=offsets,
            token_data=data,
            max_depth=int(node_depth.max(initial=0)),
        )


# Keyed by identity: vocabularies are large, and hashing their contents on every lookup would cost.
_CACHE: dict[int, tuple[weakref.ref, TokenTrie]] = {}
