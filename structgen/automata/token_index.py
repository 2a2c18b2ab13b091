"""Token index of a byte DFA: for each state, which tokens are allowed and where they lead.

The index is the bridge between byte automata and a vocabulary. Masks are bitmask rows computed by a
numba walk of the token trie (dead branches are skipped whole) and cached per state; transitions of
single tokens are byte walks, so ``accepts`` never needs a mask.
"""

from __future__ import annotations

import numpy as np

from structgen.automata import kernels
from structgen.automata.byte_dfa import ByteDFA
from structgen.automata.token_trie import TokenTrie
from structgen.bitmask import bitmask_words
from structgen.errors import EmptyLanguageError
from structgen.matcher import Automaton
from structgen.vocabulary import Vocabulary

# Above this many bytes of masks, rows are computed on first use instead of all at compile time.
EAGER_MASK_BUDGET = 64 * 1024 * 1024


class TokenIndex:
    """Allowed tokens and their successor states for every state of ``dfa`` over ``vocab``.

    With ``eager`` (default: when all rows fit in :data:`EAGER_MASK_BUDGET`) every mask row is built
    up front in one numba call; otherwise rows are built on first use and cached.
    """

    def __init__(self, dfa: ByteDFA, vocab: Vocabulary, *, eager: bool | None = None) -> None:
        self.dfa = dfa
        self.vocab = vocab
        self.trie = TokenTrie.for_vocab(vocab)
        self.words = bitmask_words(vocab.size)
        self._rows: dict[int, np.ndarray] = {}
        self._counts = np.full(dfa.num_states, -1, dtype=np.int64)
        self.live = np.ones(dfa.num_states, dtype=bool)
        if eager is None:
            eager = dfa.num_states * self.words * 4 <= EAGER_MASK_BUDGET
        # When every single byte is a token, any byte string is spelled by tokens and the DFA's
        # own trimming is exact; otherwise some states may reach acceptance by bytes only.
        byte_complete = _byte_complete(self.trie)
        if eager:
            self._build_all(check_liveness=not byte_complete)
        elif not byte_complete:
            self._find_token_dead_ends()
        if not self.live[dfa.initial]:
            raise EmptyLanguageError(
                f"no sequence of tokens of vocabulary {vocab.name!r} satisfies the constraint"
            )

    def _trie_args(self) -> tuple[np.ndarray, ...]:
        t = self.trie
        return (t.node_byte, t.node_depth, t.node_skip, t.token_start, t.token_ids)

    def _find_token_dead_ends(self) -> None:
        """Refuse states that reach acceptance by bytes but by no sequence of tokens (lazy index)."""
        placeholder = np.zeros((1, self.words), dtype=np.uint32)
        args = (self.dfa.transitions, self.live, *self._trie_args(), placeholder, self._counts, False)
        start, targets = kernels.fill_all_masks(*args)
        self.live = kernels.reaches_accepting(start, targets, self.dfa.accepting)
        self._counts[:] = -1

    def _build_all(self, check_liveness: bool) -> None:
        """Every mask row in one walk; the same walk's edges reveal token-level dead ends."""
        masks = np.zeros((self.dfa.num_states, self.words), dtype=np.uint32)
        args = (self.dfa.transitions, self.live, *self._trie_args(), masks, self._counts, True)
        start, targets = kernels.fill_all_masks(*args)
        if check_liveness:
            live = kernels.reaches_accepting(start, targets, self.dfa.accepting)
            if not live.all():
                self.live = live
                masks[:] = 0
                kernels.fill_all_masks(
                    self.dfa.transitions, live, *self._trie_args(), masks, self._counts, True
                )
        for state in range(self.dfa.num_states):
            self._rows[state] = masks[state]

    def mask_row(self, state: int) -> np.ndarray:
        """The uint32 bitmask row of tokens allowed from ``state`` (shared; do not modify)."""
        row = self._rows.get(state)
        if row is None:
            row = np.zeros(self.words, dtype=np.uint32)
            self._counts[state] = kernels.fill_state_mask(
                self.dfa.transitions, self.live, *self._trie_args(), state, row
            )
            self._rows[state] = row
        return row

    def num_allowed(self, state: int) -> int:
        """How many tokens are allowed from ``state``."""
        if self._counts[state] < 0:
            self.mask_row(state)
        return int(self._counts[state])

    def next_state(self, state: int, token_id: int) -> int:
        """State after ``token_id`` from ``state``, or -1 when the token is refused."""
        offsets = self.trie.token_offsets
        nxt = kernels.walk_bytes(
            self.dfa.transitions, state, self.trie.token_data, offsets[token_id], offsets[token_id + 1]
        )
        if nxt < 0 or not self.live[nxt]:
            return -1
        return int(nxt)

    def transitions(self, state: int) -> tuple[np.ndarray, np.ndarray]:
        """``(token_ids, next_states)`` allowed from ``state``, sorted by token id."""
        n = self.trie.token_ids.shape[0]
        tokens = np.empty(n, dtype=np.int32)
        nexts = np.empty(n, dtype=np.int32)
        count = kernels.state_transitions(
            self.dfa.transitions, self.live, *self._trie_args(), state, tokens, nexts
        )
        order = np.argsort(tokens[:count], kind="stable")
        return tokens[:count][order], nexts[:count][order]


def _byte_complete(trie: TokenTrie) -> bool:
    """Whether all 256 single bytes are tokens of the vocabulary."""
    depth_one = np.flatnonzero(trie.node_depth == 1)
    has_token = trie.token_start[depth_one + 1] > trie.token_start[depth_one]
    return int(has_token.sum()) == 256


class DFAAutomaton(Automaton):
    """A regular constraint: a byte DFA plus its token index. States are DFA state numbers."""

    def __init__(self, dfa: ByteDFA, vocab: Vocabulary, *, eager: bool | None = None) -> None:
        self.vocab = vocab
        self.dfa = dfa
        self.index = TokenIndex(dfa, vocab, eager=eager)
        self._accepting = dfa.accepting.tolist()

    def initial_state(self) -> int:
        return self.dfa.initial

    def next_state(self, state: int, token_id: int) -> int | None:
        nxt = self.index.next_state(state, token_id)
        return None if nxt < 0 else nxt

    def fill_token_bitmask(self, state: int, row: np.ndarray) -> None:
        view = row.view(np.uint32)
        np.bitwise_or(view, self.index.mask_row(state), out=view)

    def write_token_bitmask(self, state: int, row: np.ndarray) -> None:
        np.copyto(row, self.index.mask_row(state).view(np.int32))

    def is_accepting(self, state: int) -> bool:
        return self._accepting[state]

    def can_continue(self, state: int) -> bool:
        return self.index.num_allowed(state) > 0

    def forced_bytes(self, state: int) -> bytes:
        return self.dfa.forced_bytes(state)
