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
    transitions, live, node_byte, node_depth, node_skip, token_start, token_ids, masks, counts, write
):  # pragma: no cover - numba
    """Fill ``counts[s]`` (and ``masks[s]`` when ``write``) for every state; returns the token edges.

    The edges (``start``, ``targets``: CSR of the distinct states each state reaches by one token)
    let the caller decide token-level liveness without a second walk. Without ``write``, ``masks``
    is not touched (pass a ``[1, W]`` placeholder), so liveness costs no mask memory.
    """
    n_states = transitions.shape[0]
    n_nodes = node_byte.shape[0]
    path = np.empty(1025, np.int32)
    seen = np.full(n_states, -1, np.int64)
    start = np.zeros(n_states + 1, np.int64)
    targets = np.empty(max(16, n_states * 4), np.int64)
    n_edges = 0
    for state in range(n_states):
        words = masks[state if write else 0]
        path[0] = state
        count = 0
        i = 1
        while i < n_nodes:
            s = transitions[path[node_depth[i] - 1], node_byte[i]]
            if s < 0:
                i = node_skip[i]
                continue
            path[node_depth[i]] = s
            first, last = token_start[i], token_start[i + 1]
            if live[s] and last > first:
                if write:
                    for j in range(first, last):
                        t = token_ids[j]
                        words[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
                count += last - first
                if seen[s] != state:
                    seen[s] = state
                    if n_edges == targets.shape[0]:
                        grown = np.empty(targets.shape[0] * 2, np.int64)
                        grown[:n_edges] = targets[:n_edges]
                        targets = grown
                    targets[n_edges] = s
                    n_edges += 1
            i += 1
        counts[state] = count
        start[state + 1] = n_edges
    return start, targets[:n_edges]


@numba.njit(cache=True)
def reaches_accepting(start, targets, accepting):  # pragma: no cover - numba
    """States from which the edge graph (CSR ``start``/``targets``) reaches an accepting state."""
    n = accepting.shape[0]
    in_degree = np.zeros(n + 1, np.int64)
    for k in range(targets.shape[0]):
        in_degree[targets[k] + 1] += 1
    rstart = np.cumsum(in_degree)
    fill = rstart[:-1].copy()
    sources = np.empty(targets.shape[0], np.int64)
    for s in range(n):
        for k in range(start[s], start[s + 1]):
            t = targets[k]
            sources[fill[t]] = s
            fill[t] += 1
    live = accepting.copy()
    stack = np.empty(n, np.int64)
    top = 0
    for s in range(n):
        if live[s]:
            stack[top] = s
            top += 1
    while top > 0:
        top -= 1
        t = stack[top]
        for k in range(rstart[t], rstart[t + 1]):
            s = sources[k]
            if not live[s]:
                live[s] = True
                stack[top] = s
                top += 1
    return live


@numba.njit(cache=True)
def useful_states(transitions, accepting, initial):  # pragma: no cover - numba
    """States reachable from ``initial`` that can also reach an accepting state."""
    n, width = transitions.shape
    reach = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    stack[0] = initial
    reach[initial] = True
    top = 1
    while top > 0:
        top -= 1
        s = stack[top]
        for b in range(width):
            t = transitions[s, b]
            if t >= 0 and not reach[t]:
                reach[t] = True
                stack[top] = t
                top += 1
    # The edges of the reachable part as CSR, for the backward search from accepting states.
    start = np.zeros(n + 1, np.int64)
    for s in range(n):
        start[s + 1] = start[s]
        if reach[s]:
            for b in range(width):
                if transitions[s, b] >= 0:
                    start[s + 1] += 1
    targets = np.empty(start[n], np.int64)
    k = 0
    for s in range(n):
        if reach[s]:
            for b in range(width):
                if transitions[s, b] >= 0:
                    targets[k] = transitions[s, b]
                    k += 1
    return reaches_accepting(start, targets, accepting & reach)


@numba.njit(cache=True)
def equivalence_classes(classes, accepting):  # pragma: no cover - numba
    """Hopcroft's partition refinement: ``block[s]`` numbers the Nerode class of each state.

    ``classes`` is the ``[S, C]`` transition table over byte classes, ``-1`` meaning dead; the dead
    sink is added as state ``S``. Returns ``(block, count)`` with the sink's block last.
    """
    n_real, width = classes.shape
    n = n_real + 1
    sink = n_real
    # Inverse transitions per symbol: sources of (symbol c, target t) in inv[inv_start[c*n+t] : ...+1].
    inv_count = np.zeros(width * n + 1, np.int64)
    for s in range(n):
        for c in range(width):
            t = classes[s, c] if s < n_real else -1
            t = sink if t < 0 else t
            inv_count[c * n + t + 1] += 1
    inv_start = np.cumsum(inv_count)
    fill = inv_start[:-1].copy()
    inv = np.empty(inv_start[width * n], np.int64)
    for s in range(n):
        for c in range(width):
            t = classes[s, c] if s < n_real else -1
            t = sink if t < 0 else t
            inv[fill[c * n + t]] = s
            fill[c * n + t] += 1
    # Refinable partition: elems[bstart[b]:bend[b]] are the states of block b.
    elems = np.empty(n, np.int64)
    loc = np.empty(n, np.int64)
    block = np.empty(n, np.int64)
    bstart = np.zeros(n + 1, np.int64)
    bend = np.zeros(n + 1, np.int64)
    bmark = np.zeros(n + 1, np.int64)
    pos = 0
    n_blocks = 0
    for want in (True, False):
        first = pos
        for s in range(n):
            is_acc = s < n_real and accepting[s]
            if is_acc == want:
                elems[pos] = s
                loc[s] = pos
                block[s] = n_blocks
                pos += 1
        if pos > first:
            bstart[n_blocks] = first
            bend[n_blocks] = pos
            n_blocks += 1
    in_work = np.zeros((n + 1, width), np.bool_)
    work_b = np.empty((n + 1) * width + 1, np.int64)
    work_c = np.empty((n + 1) * width + 1, np.int64)
    top = 0
    smallest = 0
    if n_blocks == 2 and bend[1] - bstart[1] < bend[0] - bstart[0]:
        smallest = 1
    for c in range(width):
        work_b[top] = smallest
        work_c[top] = c
        in_work[smallest, c] = True
        top += 1
    splitter = np.empty(n, np.int64)
    touched = np.empty(n, np.int64)
    while top > 0:
        top -= 1
        b, c = work_b[top], work_c[top]
        in_work[b, c] = False
        size = bend[b] - bstart[b]
        for k in range(size):
            splitter[k] = elems[bstart[b] + k]
        n_touched = 0
        for k in range(size):
            t = splitter[k]
            for j in range(inv_start[c * n + t], inv_start[c * n + t + 1]):
                s = inv[j]
                y = block[s]
                i = loc[s]
                m = bstart[y] + bmark[y]
                if i < m:
                    continue
                if bmark[y] == 0:
                    touched[n_touched] = y
                    n_touched += 1
                other = elems[m]
                elems[m] = s
                loc[s] = m
                elems[i] = other
                loc[other] = i
                bmark[y] += 1
        for k in range(n_touched):
            y = touched[k]
            marked = bmark[y]
            bmark[y] = 0
            if marked == bend[y] - bstart[y]:
                continue
            z = n_blocks
            n_blocks += 1
            bstart[z] = bstart[y]
            bend[z] = bstart[y] + marked
            bstart[y] = bend[z]
            for p in range(bstart[z], bend[z]):
                block[elems[p]] = z
            small = z if bend[z] - bstart[z] <= bend[y] - bstart[y] else y
            for d in range(width):
                if in_work[y, d]:
                    work_b[top] = z
                    work_c[top] = d
                    in_work[z, d] = True
                    top += 1
                else:
                    work_b[top] = small
                    work_c[top] = d
                    in_work[small, d] = True
                    top += 1
    # Renumber so the sink's block is last.
    order = np.full(n_blocks, -1, np.int64)
    count = 0
    for s in range(n_real):
        if order[block[s]] < 0 and block[s] != block[sink]:
            order[block[s]] = count
            count += 1
    order[block[sink]] = count
    out = np.empty(n_real, np.int64)
    for s in range(n_real):
        out[s] = order[block[s]]
    return out, count
