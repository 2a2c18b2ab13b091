"""The JSON Schema automaton: grammar masks, re-verified by exact runtime checks where needed.

A state is ``(grammar_state, tracker_state)``. Masks come from the grammar engine; when the schema
has inexact nodes, the allowed tokens that could complete a value with a check (they contain a
byte at which a value can complete: ``"``, ``}``, ``]``, ``,``, ``:``, whitespace; which ones matter
depends on where the output is, see :meth:`JsonSchemaAutomaton._candidates`) are replayed through
the tracker and dropped if a value they complete fails its check. Inside a key, most tokens need no
replay: where every key is allowed, a token that closes the key and completes nothing else fails
only by repeating a key of the object, which is looked up by its text. Schemas whose grammar is
exact never get here: the compiler returns the plain grammar automaton for them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from structgen.compilers.json_schema.runtime import (
    CLOSING_BYTES,
    INITIAL,
    JsonTracker,
    TrackerState,
    inert_after_key,
)
from structgen.matcher import Automaton
from structgen.vocabulary import PerVocabulary, Vocabulary


@dataclass(frozen=True)
class TokenClasses:
    """Token classes of one vocabulary that decide which tokens a mask must replay (see below)."""

    closers: np.ndarray  # bool [V]: a byte at which some value may complete
    quote: np.ndarray  # a '"'
    quotes: np.ndarray  # two or more '"'
    close: np.ndarray  # '}' or ']'
    scalar_end: np.ndarray  # a byte that ends a number or literal
    # Inside a key: tokens that close it with plain text (no backslash before their first '"') and
    # then complete nothing (see runtime.inert_after_key), and those tokens by that text.
    key_simple: np.ndarray
    key_heads: dict[bytes, np.ndarray]
    longest: int  # bytes of the longest token


def _build_token_classes(vocab: Vocabulary) -> TokenClasses:
    names = ("closers", "quote", "quotes", "close", "scalar_end", "key_simple")
    arrays = {name: np.zeros(vocab.size, dtype=bool) for name in names}
    heads: dict[bytes, list[int]] = {}
    for i, data in enumerate(vocab.token_bytes):
        if not data or CLOSING_BYTES.isdisjoint(data):
            continue
        arrays["closers"][i] = True
        quotes = data.count(b'"')
        arrays["quote"][i] = quotes > 0
        arrays["quotes"][i] = quotes > 1
        arrays["close"][i] = b"}" in data or b"]" in data
        arrays["scalar_end"][i] = not _SCALAR_END.isdisjoint(data)
        if quotes:
            head, _, rest = data.partition(b'"')
            if b"\\" not in head and inert_after_key(rest):
                arrays["key_simple"][i] = True
                heads.setdefault(head, []).append(i)
    key_heads = {head: np.array(ids, dtype=np.int64) for head, ids in heads.items()}
    longest = max((len(data) for data in vocab.token_bytes if data), default=0)
    return TokenClasses(**arrays, key_heads=key_heads, longest=longest)


#: The :class:`TokenClasses` of a vocabulary (built once per vocabulary).
token_classes = PerVocabulary(_build_token_classes)


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
            candidates = bits & self._candidates(tstate)
            if tstate.in_string and tstate.is_key:
                candidates = self._drop_repeated_keys(tstate, bits, candidates)
            admits = self.tracker.admits
            token_bytes = self.vocab.token_bytes
            for token_id in np.flatnonzero(candidates):
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
            return classes.closers  # between values: a token may start and complete new ones
        needs = self.tracker.checker.needs_check
        path = self.tracker.path(st.stack)
        # Containers complete at } or ]; any open one with a non-trivial check makes those relevant
        # (the container of stack frame d is at path[:d]).
        out = classes.close if any(needs(path[:d]) for d in range(len(path))) else None
        if st.in_string:
            if out is not None:
                out = out & classes.quote  # inside a string, only a token that ends it can close more
            extra = classes.quote if (st.is_key or self._string_needs_check(st, path)) else classes.quotes
        else:
            extra = classes.scalar_end if needs(path) else classes.quotes
        return extra if out is None else out | extra

    def _string_needs_check(self, st: TrackerState, path: tuple) -> bool:
        """Whether some token could complete the string value of ``st`` with a failing check.

        Not where the check is a ``maxLength`` the string cannot reach with one more token.
        """
        checker = self.tracker.checker
        if not checker.needs_check(path):
            return False
        bound = checker.length_bound(path)
        written = len(st.text) - st.string_start - 1
        return bound is None or written + self._classes.longest > bound

    def _drop_repeated_keys(self, st: TrackerState, bits: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Inside a key: refuse the plain tokens that repeat a key, and return the rest to replay.

        Where every key is allowed, a plain token (:attr:`TokenClasses.key_simple`) fails the
        tracker only when its key is already in the object; with no backslash in the key, its text
        is the key's UTF-8 spelling, so the repeats are looked up by text instead of replayed. The
        grammar already makes the key a JSON string.
        """
        written = st.text[st.string_start + 1 :]
        if b"\\" in written or not self.tracker.checker.keys_unrestricted(self.tracker.path(st.stack[:-1])):
            return candidates
        heads = self._classes.key_heads
        for key in st.stack[-1].keys:
            spelled = key.encode("utf-8", "surrogatepass")
            if spelled.startswith(written):
                repeats = heads.get(spelled[len(written) :])
                if repeats is not None:
                    bits[repeats] = False
        return candidates & ~self._classes.key_simple

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
