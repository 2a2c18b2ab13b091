"""numba kernels over a byte DFA and a token trie (plain-Python twins live in ``reference.py``).

All kernels take the DFA as its ``int32[S, 256]`` transition table (``-1`` = dead) and the trie as
the preorder arrays of :class:`~structgen.automata.token_trie.TokenTrie`. ``live[s]`` is false for
states from which no token sequence reaches acceptance; tokens ending there are refused.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def walk_bytes(transitions, state, data, start, end):  # pragma: no cover - numba
    """State after reading ``data[start:end]`` from ``state``, or -1."""
    s = state
    for k in range(start, end):
        s = transitions[s, data[k]]
        if s < 0:
            return -1
    return s


@numba.njit(cache=True)
def fill_state_mask(
    transitions, live, node_byte, node_depth, node_skip, token_start, token_ids, state, words
):  # pragma: no cover - numba
    """OR into ``words`` (uint32) the tokens allowed from ``state``; returns how many there are."""
    n_nodes = node_byte.shape[0]
    path = np.empty(n_nodes if n_nodes < 1025 else 1025, np.int32)
    path[0] = state
    count = 0
    i = 1
    while i < n_nodes:
        s = transitions[path[node_depth[i] - 1], node_byte[i]]
        if s < 0:
            i = node_skip[i]
            continue
        path[node_depth[i]] = s
        if live[s]:
            for j in range(token_start[i], token_start[i + 1]):
                t = token_ids[j]
                words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
                count += 1
        i += 1
    return count


@numba.njit(cache=True)
def state_transitions(
    transitions, live, node_byte, node_depth, node_skip, token_start, token_ids, state, out_tokens, out_next
):  # pragma: no cover - numba
    """Write the allowed tokens from ``state`` and the state each leads to; returns the count."""
    n_nodes = node_byte.shape[0]
    path = np.empty(n_nodes if n_nodes < 1025 else 1025, np.int32)
    path[0] = state
    count = 0
    i = 1
    while i < n_nodes:
        s = transitions[path[node_depth[i] - 1], node_byte[i]]
        if s < 0:
            i = node_skip[i]
            continue
        path[node_depth[i]] = s
        if live[s]:
            for j in range(token_start[i], token_start[i + 1]):
                out_tokens[count] = token_ids[j]
                out_next[count] = s
                count += 1
        i += 1
    return count


@numba.njit(cache=True)
def fill_all_masks(
    transitions, live, node_byte, node_depth, node_skip, token_start, token_ids, masks, counts
):  # pragma: no cover - numba
    """Fill ``masks[s]`` and ``counts[s]`` for every state ``s``."""
    for s in range(transitions.shape[0]):
        counts[s] = fill_state_mask(
            transitions, live, node_byte, node_depth, node_skip, token_start, token_ids, s, masks[s]
        )


@numba.njit(cache=True)
def token_level_live(
    transitions, accepting, node_byte, node_depth, node_skip, token_start, token_ids
):  # pragma: no cover - numba
    """States from which some token sequence reaches an accepting state (a backward fixpoint)."""
    n_states = transitions.shape[0]
    n_tokens = token_ids.shape[0]
    everything = np.ones(n_states, np.bool_)
    offsets = np.zeros(n_states + 1, np.int64)
    targets = np.empty(0, np.int32)
    scratch_t = np.empty(n_tokens, np.int32)
    scratch_n = np.empty(n_tokens, np.int32)
    chunks = []
    for s in range(n_states):
        c = state_transitions(
            transitions,
            everything,
            node_byte,
            node_depth,
            node_skip,
            token_start,
            token_ids,
            s,
            scratch_t,
            scratch_n,
        )
        offsets[s + 1] = offsets[s] + c
        chunks.append(np.unique(scratch_n[:c]))
    targets = np.empty(offsets[n_states], np.int32)
    for s in range(n_states):
        chunk = chunks[s]
        targets[offsets[s] : offsets[s] + chunk.shape[0]] = chunk
        offsets[s + 1] = offsets[s] + chunk.shape[0]
    live = accepting.copy()
    changed = True
    while changed:
        changed = False
        for s in range(n_states):
            if live[s]:
                continue
            for k in range(offsets[s], offsets[s + 1]):
                if live[targets[k]]:
                    live[s] = True
                    changed = True
                    break
    return live
