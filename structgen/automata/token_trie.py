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
  :data:`SEVERAL_TOKENS` otherwise (walks read one array instead of a slice at most nodes).

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
    return node_byte[:n_nodes], node_depth[:n_nodes], node_skip, token_node


@dataclass(frozen=True, eq=False)
class TokenTrie:
    """Preorder byte trie of the text tokens of one vocabulary (see the module docstring)."""

    node_byte: np.ndarray
    node_depth: np.ndarray
    node_skip: np.ndarray
    token_start: np.ndarray
    token_ids: np.ndarray
    node_token: np.ndarray
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
        node_byte, node_depth, node_skip, token_node = _build_preorder(data, offsets, order)
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
            token_offsets=offsets,
            token_data=data,
            max_depth=int(node_depth.max(initial=0)),
        )


# Keyed by identity: vocabularies are large, and hashing their contents on every lookup would cost.
_CACHE: dict[int, tuple[weakref.ref, TokenTrie]] = {}
