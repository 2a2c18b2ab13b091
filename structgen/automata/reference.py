"""Plain-Python reference implementations of the kernels in ``kernels.py`` (used by the tests)."""

from __future__ import annotations

from structgen.automata.byte_dfa import ByteDFA
from structgen.vocabulary import Vocabulary


def allowed_transitions(dfa: ByteDFA, vocab: Vocabulary, state: int) -> dict[int, int]:
    """``{token_id: next_state}`` for every text token readable from ``state`` (byte-level liveness)."""
    out = {}
    for token_id, data in enumerate(vocab.token_bytes):
        if not vocab.is_text_token(token_id):
            continue
        s = dfa.walk(data, state)
        if s >= 0:
            out[token_id] = s
    return out


def token_level_live(dfa: ByteDFA, vocab: Vocabulary) -> list[bool]:
    """States from which some token sequence reaches acceptance."""
    edges = [set(allowed_transitions(dfa, vocab, s).values()) for s in range(dfa.num_states)]
    live = [bool(a) for a in dfa.accepting]
    changed = True
    while changed:
        changed = False
        for s in range(dfa.num_states):
            if not live[s] and any(live[t] for t in edges[s]):
                live[s] = changed = True
    return live


def useful_states(transitions, accepting, initial: int) -> list[bool]:
    """States reachable from ``initial`` that can reach an accepting state."""
    n = len(transitions)
    reach, stack = {initial}, [initial]
    while stack:
        for t in transitions[stack.pop()]:
            if t >= 0 and t not in reach:
                reach.add(int(t))
                stack.append(int(t))
    live = {s for s in reach if accepting[s]}
    changed = True
    while changed:
        changed = False
        for s in reach - live:
            if any(t in live for t in transitions[s]):
                live.add(s)
                changed = True
    return [s in live for s in range(n)]


def equivalence_classes(classes, accepting) -> list[int]:
    """Moore refinement: states are equivalent when no suffix tells them apart (dead = sink)."""
    n = len(classes)
    block = [1 if a else 0 for a in accepting] + [0]
    rows = [list(r) for r in classes] + [[-1] * (len(classes[0]) if n else 0)]
    while True:
        signatures = [(block[s], *(block[t] if t >= 0 else block[n] for t in rows[s])) for s in range(n + 1)]
        ids: dict[tuple, int] = {}
        new_block = [ids.setdefault(sig, len(ids)) for sig in signatures]
        if len(ids) == len(set(block)):
            return new_block[:n]
        block = new_block
