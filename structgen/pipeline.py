"""The logits pipeline: ordered steps that read the decoding state and rewrite next-token scores.

A decode loop (``structgen.generate`` or the transformers :class:`structgen.LogitsProcessor`) calls
a :class:`LogitsPipeline` once per decoding step with

* a :class:`DecodingBatch`: one :class:`DecodingRow` per sequence of the batch, holding that row's
  :class:`~structgen.matcher.Matcher` (``None`` for an unconstrained row), the token ids it has
  generated so far (prompt excluded) and the :class:`~structgen.vocabulary.Vocabulary`;
* ``scores``: a float tensor ``[B, V']`` of next-token scores, one row per batch row, where ``V'``
  is the width of the model's logits (it may exceed ``vocab.size``: the extra columns are padding).

Each :class:`Step` returns the scores for the next step (it may modify ``scores`` in place and
return it, or return a new tensor of the same shape). Steps run in list order. The contract a step
may rely on and must keep:

* it may read everything in the batch: ``row.matcher`` (``mask()``, ``accepts(t)``,
  ``forced_bytes()``, and ``copy()`` to look ahead), ``row.token_ids`` and ``row.text`` (the
  generated output), ``row.vocab``;
* it must NOT advance, roll back or otherwise mutate a row's matcher or token list: the loop that
  owns the batch advances the matchers after a token is chosen (a step that needs a look-ahead
  works on ``row.matcher.copy()``);
* it must keep the shape of ``scores``; setting a score to ``-inf`` forbids that token;
* per-sequence state a step keeps between calls must be reset in :meth:`Step.reset`, which the
  owner calls before a new generation. Rows may be reordered between calls (beam search), so state
  that belongs to a sequence should be keyed by ``row.token_ids``, not by the row index.

:class:`ConstraintMaskStep` is the step that enforces the constraints; static-analysis monitors,
grammar-aware repetition penalties and speculative proposals are meant to become further steps.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from structgen.bitmask import apply_token_bitmask_, bitmask_words, set_token_bit
from structgen.matcher import Matcher
from structgen.vocabulary import Vocabulary


@dataclass
class DecodingRow:
    """One sequence of a batch, as pipeline steps see it.

    ``matcher`` is ``None`` for an unconstrained row. ``dead`` marks a row that left its
    constraint: this happens in beam search, which may keep a continuation the mask had forbidden
    (score ``-inf``) when too few allowed ones exist; such a row is only allowed to end (EOS).
    ``extra_end_ids`` are further ids (a padding id distinct from EOS) allowed once a row ended.
    ``eos_ids``, when set, replaces ``vocab.eos_token_ids`` as the ids that may end the row (say
    only the id transformers' ``generate`` stops on, when the vocabulary knows several).
    """

    matcher: Matcher | None
    token_ids: Sequence[int]
    vocab: Vocabulary | None
    dead: bool = False
    extra_end_ids: tuple[int, ...] = ()
    eos_ids: tuple[int, ...] | None = None

    @property
    def text_bytes(self) -> bytes:
        """The exact bytes generated so far (special tokens contribute nothing)."""
        if self.vocab is None:
            raise ValueError("this row has no vocabulary, so its text is unknown")
        return self.vocab.decode(self.token_ids)

    @property
    def text(self) -> str:
        """The generated text so far (an incomplete trailing UTF-8 character shows as U+FFFD)."""
        return self.text_bytes.decode("utf-8", errors="replace")

    @property
    def finished(self) -> bool:
        """Whether the row's constraint is complete and nothing may follow (or the row is dead)."""
        return self.dead or (self.matcher is not None and self.matcher.is_finished())


@dataclass
class DecodingBatch:
    """The rows of one decoding step; ``step`` counts the calls since the generation started."""

    rows: list[DecodingRow]
    step: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[DecodingRow]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> DecodingRow:
        return self.rows[index]

    @property
    def matchers(self) -> list[Matcher | None]:
        """The matcher of every row (``None`` where unconstrained)."""
        return [row.matcher for row in self.rows]


class Step(ABC):
    """One stage of a :class:`LogitsPipeline`; see the module docstring for the contract."""

    @property
    def name(self) -> str:
        """Label used in the pipeline's timing table."""
        return type(self).__name__

    @abstractmethod
    def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
        """Return the scores ``[len(batch), V']`` after this step (in place or a new tensor)."""

    def reset(self) -> None:
        """Forget per-generation state; called before a new generation starts."""
        return None


class LogitsPipeline:
    """Runs an ordered list of steps over the scores of a batch and times each one.

    ``seconds`` maps each step's name to the time spent in it since the last :meth:`reset`.
    """

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps: list[Step] = list(steps)
        for step in self.steps:
            if not isinstance(step, Step):
                raise TypeError(f"pipeline steps must be structgen.pipeline.Step instances, got {step!r}")
        self.seconds: dict[str, float] = {}

    def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
        """Apply every step in order and return the final scores."""
        if scores.dim() != 2 or scores.shape[0] != len(batch):
            raise ValueError(f"scores must have shape [{len(batch)}, V], got {tuple(scores.shape)}")
        shape = scores.shape
        for step in self.steps:
            start = time.perf_counter()
            scores = step(batch, scores)
            elapsed = time.perf_counter() - start
            self.seconds[step.name] = self.seconds.get(step.name, 0.0) + elapsed
            if not isinstance(scores, torch.Tensor) or scores.shape != shape:
                got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise ValueError(
                    f"pipeline step {step.name} returned {got}, expected a tensor {tuple(shape)}"
                )
        return scores

    def reset(self) -> None:
        """Reset every step and the timings."""
        for step in self.steps:
            step.reset()
        self.seconds = {}

    @property
    def total_seconds(self) -> float:
        """Time spent in all steps since the last reset."""
        return sum(self.seconds.values())


class ConstraintMaskStep(Step):
    """Forbid (score ``-inf``) every token the row's matcher does not allow.

    One ``[B, ceil(V/32)]`` int32 bitmask is filled row by row with ``Matcher.fill_bitmask`` and
    applied to all constrained rows at once. Logits columns at or beyond ``vocab.size`` (padding of
    the model's output layer) are always forbidden in constrained rows. Finished rows allow only
    EOS (plus the row's ``extra_end_ids``); dead rows likewise. A row's ``eos_ids`` replace the
    vocabulary's EOS ids wherever ending is allowed. Unconstrained rows are untouched.
    """

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None

    def _bitmask(self, rows: int, words: int) -> np.ndarray:
        # Reuse one buffer across steps: fill_bitmask overwrites every word of each row it fills.
        if self._buffer is None or self._buffer.shape != (rows, words):
            self._buffer = np.zeros((rows, words), dtype=np.int32)
        return self._buffer

    def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
        constrained = [i for i, row in enumerate(batch.rows) if row.matcher is not None or row.dead]
        if not constrained:
            return scores
        vocab_size = 0
        for i in constrained:
            vocab = batch.rows[i].vocab
            if vocab is None:
                raise ValueError(f"constrained row {i} has no vocabulary")
            if vocab.size > scores.shape[1]:
                raise ValueError(
                    f"the vocabulary of row {i} has {vocab.size} tokens but the scores only "
                    f"{scores.shape[1]} columns: the constraint was compiled for another model"
                )
            vocab_size = max(vocab_size, vocab.size)
        bitmask = self._bitmask(len(constrained), bitmask_words(vocab_size))
        for out_row, i in enumerate(constrained):
            row = batch.rows[i]
            words = bitmask[out_row]
            if row.dead or row.matcher is None:
                words[:] = 0
                for eos in row.vocab.eos_token_ids:
                    set_token_bit(words, eos)
            else:
                row.matcher.fill_bitmask(bitmask, out_row)
            if row.eos_ids is not None:
                can_end = row.dead or row.matcher is None or row.matcher.is_accepting()
                unsigned = words.view(np.uint32)
                for eos in row.vocab.eos_token_ids:
                    unsigned[eos >> 5] &= np.uint32(~(1 << (eos & 31)) & 0xFFFFFFFF)
                if can_end:
                    for eos in row.eos_ids:
                        if 0 <= eos < vocab_size:
                            set_token_bit(words, eos)
            if row.finished:
                for extra in row.extra_end_ids:
                    if 0 <= extra < vocab_size:
                        set_token_bit(words, extra)
        if len(constrained) == len(batch):
            return apply_token_bitmask_(scores, bitmask)
        index = torch.tensor(constrained, device=scores.device)
        scores[index] = apply_token_bitmask_(scores[index], bitmask)
        return scores

    def reset(self) -> None:
        """Drop the bitmask buffer."""
        self._buffer = None
