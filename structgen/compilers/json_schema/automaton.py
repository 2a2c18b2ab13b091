"""The JSON Schema automaton: grammar masks, re-verified by exact runtime checks where needed.

A state is ``(grammar_state, tracker_state)``. Masks come from the grammar engine; when the schema
has inexact nodes, the allowed tokens that contain a byte at which a value can complete
(``"``, ``}``, ``]``, ``,``, ``:``, whitespace) are replayed through the tracker and dropped if a value
they complete fails its check. Schemas whose grammar is exact never get here: the compiler returns
the plain grammar automaton for them.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from structgen.compilers.json_schema.runtime import CLOSING_BYTES, INITIAL, JsonTracker, TrackerState
from structgen.matcher import Automaton
from structgen.vocabulary import Vocabulary

_CLASS_CACHE: dict[int, dict[str, np.ndarray]] = {}


def token_classes(vocab: Vocabulary) -> dict[str, np.ndarray]:
    """Bool ``[V]`` masks (cached per vocab) of the tokens that may complete some JSON value.

    ``closers``: any byte at which a value can complete; ``quote``: a ``"``; ``quotes``: two or more;
    ``close``: ``}`` or ``]``; ``scalar_end``: a byte that ends a number or literal.
    """
    key = id(vocab)
    found = _CLASS_CACHE.get(key)
    if found is None or found["closers"].shape[0] != vocab.size:
        names = ("closers", "quote", "quotes", "close", "scalar_end")
        found = {name: np.zeros(vocab.size, dtype=bool) for name in names}
        for i, data in enumerate(vocab.token_bytes):
            if not data or CLOSING_BYTES.isdisjoint(data):
                continue
            found["closers"][i] = True
            quotes = data.count(b'"')
            found["quote"][i] = quotes > 0
            found["quotes"][i] = quotes > 1
            found["close"][i] = b"}" in data or b"]" in data
            found["scalar_end"][i] = not _SCALAR_END.isdisjoint(data)
        _CLASS_CACHE[key] = found
    return found


_SCALAR_END = frozenset(b",}] \t\n\r")


class JsonSchemaAutomaton(Automaton):
    """Wraps a grammar automaton with a JSON tracker whose checks make the constraint exact."""

    def __init__(
        self, grammar_automaton: Automaton, tracker: JsonTracker, *, mask_cache_size: int = 1024
    ) -> None:
        self.grammar = grammar_automaton
        self.tracker = tracker
        self.vocab = grammar_automaton.vocab
        self._classes = token_classes(self.vocab)
        self._mask_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._mask_cache_size = mask_cache_size

    def initial_state(self) -> tuple:
        """The state before any output."""
        return (self.grammar.initial_state(), INITIAL)

    def next_state(self, state: tuple, token_id: int) -> tuple | None:
        """Grammar step, then the tracker's checks on every value the token completes."""
        gstate, tstate = state
        nxt = self.grammar.next_state(gstate, token_id)
        if nxt is None:
            return None
        tnext = self.tracker.feed(tstate, self.vocab.token_bytes[token_id])
        if tnext is None:
            return None
        return (nxt, tnext)

    def fill_token_bitmask(self, state: tuple, row: np.ndarray) -> None:
        """Grammar mask minus the tokens whose completed values fail a check."""
        gstate, tstate = state
        key = (gstate, _signature(tstate))
        cached = self._mask_cache.get(key)
        if cached is None:
            words = np.zeros_like(row)
            self.grammar.fill_token_bitmask(gstate, words)
            bits = np.unpackbits(words.view(np.uint8), bitorder="little")[: self.vocab.size].astype(bool)
            admits = self.tracker.admits
            token_bytes = self.vocab.token_bytes
            for token_id in np.flatnonzero(bits & self._candidates(tstate)):
                if not admits(tstate, token_bytes[token_id]):
                    bits[token_id] = False
            padded = np.zeros(words.shape[0] * 32, dtype=bool)
            padded[: bits.shape[0]] = bits
            cached = np.packbits(padded, bitorder="little").view(np.int32)
            self._mask_cache[key] = cached
            if len(self._mask_cache) > self._mask_cache_size:
                self._mask_cache.popitem(last=False)
        np.bitwise_or(row, cached, out=row)

    def _candidates(self, st: TrackerState) -> np.ndarray:
        """Tokens that could complete a value whose check is not trivially true, from ``st``."""
        classes = self._classes
        if not st.in_string and st.scalar_start < 0:
            return classes["closers"]  # between values: a token may start and complete new ones
        needs = self.tracker.checker.needs_check
        path = self.tracker.path(st.stack)
        # Containers complete at } or ]; any open one with a non-trivial check makes those relevant.
        out = classes["close"] if any(needs(path[:d]) for d in range(len(path) + 1)) else None
        if st.in_string:
            extra = classes["quote"] if (st.is_key or needs(path)) else classes["quotes"]
        else:
            extra = classes["scalar_end"] if needs(path) else classes["quotes"]
        return extra if out is None else out | extra

    def is_accepting(self, state: tuple) -> bool:
        """Grammar accepts and a pending top-level scalar passes its check."""
        gstate, tstate = state
        return self.grammar.is_accepting(gstate) and self.tracker.finish(tstate)

    def can_continue(self, state: tuple) -> bool:
        """Whether some byte may follow (per the grammar)."""
        return self.grammar.can_continue(state[0])

    def forced_bytes(self, state: tuple) -> bytes:
        """Forced bytes of the grammar (checks never add choices, so this stays correct)."""
        return self.grammar.forced_bytes(state[0])

    def completion_relaxation(self, state: tuple) -> tuple[Automaton, object]:
        """The grammar state: tracker states hold the output's text, so they never repeat."""
        return self.grammar, state[0]


def _signature(st: TrackerState) -> tuple:
    """What of a tracker state can influence which tokens pass: the open values' text and paths."""
    starts = [f.start for f in st.stack]
    if st.in_string:
        starts.append(st.string_start)
    if st.scalar_start >= 0:
        starts.append(st.scalar_start)
    first = min(starts) if starts else len(st.text)
    # Tokens can complete any open value, whose text starts at its own start offset.
    return (
        st.text[first:],
        tuple((f.kind, f.slot, f.keys) for f in st.stack),
        st.in_string,
        st.escaped,
        st.is_key,
        st.scalar_start - first if st.scalar_start >= 0 else -1,
        st.expect_key,
        st.string_start - first if st.in_string else -1,
        tuple(f.start - first for f in st.stack),
    )
