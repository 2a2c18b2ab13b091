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
