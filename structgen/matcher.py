"""The matcher core shared by every compiler.

Each compiler (regex, Lark grammar, JSON Schema) produces an :class:`Automaton`: a token-level
automaton over one vocabulary whose states are immutable values. :class:`Constraint` wraps an
automaton and is what every ``compile_*`` function returns; :class:`Matcher` is the per-sequence
cursor over it. Because automaton states are immutable, a matcher is a stack of states: ``copy`` is
a list copy and ``rollback`` pops.

End of sequence is handled here, not by automata: an EOS token is allowed exactly when the current
state is accepting, and once it is consumed the matcher is finished and allows only EOS again (so a
finished row of a padded batch keeps producing EOS/padding).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from structgen.bitmask import allocate_token_bitmask, bitmask_to_bool, bitmask_words, set_token_bit
from structgen.errors import TokenRefusedError
from structgen.vocabulary import Vocabulary

State = Any


class Automaton(ABC):
    """Token-level automaton over ``vocab``: the compiled form of every constraint.

    States are opaque and never mutated. Special tokens (``vocab.token_bytes[i] is None``), EOS
    included, never reach :meth:`next_state` or :meth:`fill_token_bitmask`.
    """

    vocab: Vocabulary

    @abstractmethod
    def initial_state(self) -> State:
        """The state before any output."""

    @abstractmethod
    def next_state(self, state: State, token_id: int) -> State | None:
        """The state after emitting text token ``token_id``, or ``None`` if the token is refused."""

    @abstractmethod
    def fill_token_bitmask(self, state: State, row: np.ndarray) -> None:
        """OR into ``row`` (int32, ``ceil(V/32)`` words) the bits of the text tokens allowed."""

    def write_token_bitmask(self, state: State, row: np.ndarray) -> None:
        """Overwrite ``row`` with the allowed text tokens (override when a copy is cheaper)."""
        row[:] = 0
        self.fill_token_bitmask(state, row)

    @abstractmethod
    def is_accepting(self, state: State) -> bool:
        """Whether the output so far is a complete sentence of the constraint."""

    @abstractmethod
    def can_continue(self, state: State) -> bool:
        """Whether some non-empty continuation of the output is still allowed."""

    def forced_bytes(self, state: State) -> bytes:
        """Bytes every allowed continuation of ``state`` starts with (empty when there is a choice)."""
        return b""

    def completion_relaxation(self, state: State) -> tuple[Automaton, State]:
        """Where to search for the shortest completion of ``state`` (:mod:`structgen.completion`).

        Returns ``(automaton, relaxed_state)``: by default ``(self, state)``. An automaton whose
        states carry data that makes them unique (so a search cannot merge them) returns a coarser
        automaton over the same vocabulary and the state there, such that every token sequence
        this automaton allows (and accepts) from ``state``, the coarser one allows (and accepts)
        from ``relaxed_state``. The search runs over the coarser states and replays the path it
        finds through :meth:`next_state`.
        """
        return self, state


class Constraint:
    """A compiled constraint: an automaton plus the vocabulary it was compiled for."""

    def __init__(self, automaton: Automaton, *, source: str = "") -> None:
        self.automaton = automaton
        self.vocab = automaton.vocab
        self.source = source

    def matcher(self) -> Matcher:
        """A fresh matcher positioned at the start of the output."""
        return Matcher(self.automaton)

    def __repr__(self) -> str:
        kind = type(self.automaton).__name__
        return f"Constraint({kind}, vocab={self.vocab.name!r}, source={self.source[:60]!r})"


_FINISHED = object()


class Matcher:
    """Per-sequence state of a constraint: masks, single-token checks, advance and rollback."""

    __slots__ = ("_automaton", "_states", "vocab")

    def __init__(self, automaton: Automaton, states: list[State] | None = None) -> None:
        self._automaton = automaton
        self.vocab = automaton.vocab
        self._states = states if states is not None else [automaton.initial_state()]

    @property
    def state(self) -> State:
        """The automaton state after the tokens consumed so far (opaque)."""
        return self._states[-1]

    @property
    def num_tokens(self) -> int:
        """Number of tokens consumed (EOS included)."""
        return len(self._states) - 1

    def copy(self) -> Matcher:
        """An independent matcher at the same position (cheap: states are shared, not copied)."""
        return Matcher(self._automaton, list(self._states))

    def is_finished(self) -> bool:
        """True once EOS was consumed, or when the output is complete and nothing may follow."""
        state = self._states[-1]
        if state is _FINISHED:
            return True
        return self._automaton.is_accepting(state) and not self._automaton.can_continue(state)

    def is_accepting(self) -> bool:
        """Whether the output so far is complete (EOS would be allowed now)."""
        state = self._states[-1]
        return state is _FINISHED or self._automaton.is_accepting(state)

    def fill_bitmask(self, out: np.ndarray, row: int = 0) -> None:
        """Write the allowed next tokens into row ``row`` of an int32 bitmask ``out``."""
        words = out[row] if out.ndim == 2 else out
        state = self._states[-1]
        if state is _FINISHED:
            words[:] = 0
        else:
            self._automaton.write_token_bitmask(state, words)
        if state is _FINISHED or self._automaton.is_accepting(state):
            for eos in self.vocab.eos_token_ids:
                set_token_bit(words, eos)

    def bitmask(self) -> np.ndarray:
        """A fresh one-row bitmask of the allowed next tokens, shape ``[ceil(V/32)]``."""
        out = allocate_token_bitmask(1, self.vocab.size)
        self.fill_bitmask(out, 0)
        return out[0]

    def mask(self) -> np.ndarray:
        """Bool array of length ``vocab.size``: which tokens are allowed next."""
        return bitmask_to_bool(self.bitmask(), self.vocab.size)

    def accepts(self, token_id: int) -> bool:
        """Whether ``token_id`` is allowed next, without computing a mask."""
        state = self._states[-1]
        if token_id in self.vocab.eos_token_ids:
            return state is _FINISHED or self._automaton.is_accepting(state)
        if state is _FINISHED or not self.vocab.is_text_token(token_id):
            return False
        return self._automaton.next_state(state, token_id) is not None

    def advance(self, token_id: int) -> None:
        """Consume ``token_id``; raises :class:`TokenRefusedError` if it is not allowed."""
        state = self._states[-1]
        if token_id in self.vocab.eos_token_ids:
            if state is not _FINISHED and not self._automaton.is_accepting(state):
                raise TokenRefusedError(f"EOS token {token_id} refused: the output is not complete")
            self._states.append(_FINISHED)
            return
        nxt = None
        if state is not _FINISHED and self.vocab.is_text_token(token_id):
            nxt = self._automaton.next_state(state, token_id)
        if nxt is None:
            raise TokenRefusedError(
                f"token {token_id} ({self.vocab.describe(token_id)}) refused after {self.num_tokens} tokens"
            )
        self._states.append(nxt)

    def consume(self, token_ids: Iterable[int]) -> None:
        """Advance over several tokens."""
        for token_id in token_ids:
            self.advance(token_id)

    def rollback(self, n: int = 1) -> None:
        """Undo the last ``n`` tokens."""
        if n < 0 or n > self.num_tokens:
            raise ValueError(f"cannot roll back {n} tokens: {self.num_tokens} consumed")
        if n:
            del self._states[-n:]

    def forced_bytes(self) -> bytes:
        """The bytes that every allowed continuation starts with."""
        state = self._states[-1]
        if state is _FINISHED:
            return b""
        return self._automaton.forced_bytes(state)

    def forced_tokens(self, encode: Callable[[str], Sequence[int]]) -> list[int]:
        """Tokens the constraint fully determines from here, as ``encode`` tokenizes the forced text.

        The forced bytes are cut to whole UTF-8 characters and tokenized with ``encode`` (the model's
        own tokenizer, so the tokens are canonical). The last token is dropped unless the forced
        text ends the output, because a longer token could merge it with what the model writes next.
        Every returned token is checked against the constraint.
        """
        data = self.forced_bytes()
        text = data.decode("utf-8", errors="ignore")
        while text and text.encode("utf-8") != data[: len(text.encode("utf-8"))]:
            text = text[:-1]
        if not text:
            return []
        ids = list(encode(text))
        probe = self.copy()
        accepted: list[int] = []
        for token_id in ids:
            if not probe.accepts(token_id):
                break
            probe.advance(token_id)
            accepted.append(token_id)
        if accepted and not (probe.is_accepting() and not probe._automaton.can_continue(probe.state)):
            accepted.pop()
        return accepted


def fill_batch_bitmask(matchers: Sequence[Matcher], out: np.ndarray | None = None) -> np.ndarray:
    """Fill one bitmask row per matcher; allocates ``out`` when not given."""
    if out is None:
        out = np.zeros((len(matchers), bitmask_words(matchers[0].vocab.size)), dtype=np.int32)
    for row, matcher in enumerate(matchers):
        matcher.fill_bitmask(out, row)
    return out
