"""``structgen.LogitsProcessor``: constrained decoding inside transformers' ``model.generate``.

Usage::

    constraint = compile_regex(r"\\d{3}-\\d{4}", vocab)
    processor = structgen.LogitsProcessor(constraint)
    model.generate(**inputs, logits_processor=[processor], max_new_tokens=16)

One matcher is kept per batch row. transformers gives the processor only ``input_ids`` (prompt plus
generated tokens) and the scores, and beam search reorders the rows between steps, so a row is
identified by what it generated, not by its index: after each call the processor remembers the
matcher of every generated suffix; at the next call each row's matcher is its parent's (the suffix
minus the last token) advanced by the last token. The prompt length is taken from the first call.
A suffix with no remembered parent (e.g. the processor was used outside ``generate``) is replayed
from a fresh matcher, so the result does not depend on the call pattern.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor as _HFLogitsProcessor

from structgen.completion import BudgetMatcher, budgeted_matcher
from structgen.matcher import Constraint, Matcher
from structgen.pipeline import ConstraintMaskStep, DecodingBatch, DecodingRow, LogitsPipeline, Step
from structgen.vocabulary import Vocabulary


@dataclass
class _Track:
    """What the processor knows about one generated suffix."""

    matcher: Matcher | None
    dead: bool = False


class LogitsProcessor(_HFLogitsProcessor):
    """A transformers logits processor that enforces structgen constraints, one matcher per row.

    ``constraints`` is one :class:`~structgen.matcher.Constraint` for every row, or a sequence of
    constraints (``None`` = unconstrained row) whose length divides the number of rows ``R`` that
    ``generate`` uses (``R = batch_size * num_beams * num_return_sequences``). Rows are split into
    ``len(constraints)`` contiguous groups of equal size and group ``g`` uses ``constraints[g]``:

    * ``len == batch_size`` (one per prompt): all beams / returned sequences of prompt ``i`` use
      ``constraints[i]``; this is the form to use with beam search;
    * ``len == R``: one constraint per row; with greedy or sampling and ``num_beams == 1`` this is
      the same as one per prompt.

    Works under greedy search, sampling and beam search. Rows whose constraint is complete with
    nothing allowed after it get only EOS (and ``pad_token_id``, if given and different) allowed.
    ``eos_token_id`` (pass ``model.generation_config.eos_token_id``) restricts the ids that may end
    a row to those ``generate`` stops on; by default every EOS id of the vocabulary may end it
    (SmolLM2 lists both ``<|im_end|>`` and ``<|endoftext|>``, and ``generate`` stops only on the
    first, so a row ending with the other one would be padded with it up to ``max_new_tokens``).
    Beam search may keep a continuation that was masked out when a group has too few allowed
    tokens; such a row is marked dead, gets only EOS allowed and its score is already ``-inf``.

    ``steps`` run before the mask (e.g. penalties); include a :class:`ConstraintMaskStep`
    yourself to choose its position. A
    :class:`~structgen.sampling.step.RejectionSamplingStep` (a ``ConstraintMaskStep`` subclass)
    replaces the mask: it picks each row's token by adaptive weighted rejection sampling and
    leaves only that token a finite score, so no full mask is computed for rows that can still
    continue. Create one processor per ``generate`` call or call
    :meth:`reset`; a new generation (different prompt or shorter input) is also detected.
    ``max_new_tokens`` (pass ``generate``'s) makes the token budget part of the constraint: each
    row's matcher is a :class:`~structgen.completion.BudgetMatcher`, which near the end of the
    budget allows only tokens after which the output can still be completed in time.
    ``stats`` holds ``calls``, ``constraint_seconds`` (time in the pipeline and matchers),
    ``replays``, ``dead_rows`` and ``budget_steps`` (rows decided under the budget test).
    """

    def __init__(
        self,
        constraints: Constraint | Sequence[Constraint | None],
        *,
        steps: Sequence[Step] = (),
        pad_token_id: int | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        max_new_tokens: int | None = None,
    ) -> None:
        if max_new_tokens is not None and (
            isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1
        ):
            raise ValueError(f"max_new_tokens must be a positive integer or None, got {max_new_tokens!r}")
        self.max_new_tokens = max_new_tokens
        if isinstance(constraints, Constraint):
            self.constraints: list[Constraint | None] = [constraints]
        else:
            self.constraints = list(constraints)
            if not self.constraints:
                raise ValueError("LogitsProcessor needs at least one constraint")
        for c in self.constraints:
            if c is not None and not isinstance(c, Constraint):
                raise TypeError(f"expected structgen Constraint objects (or None), got {type(c).__name__}")
        vocabs = [c.vocab for c in self.constraints if c is not None]
        if not vocabs:
            raise ValueError("every constraint is None: nothing to enforce")
        self.vocab: Vocabulary = vocabs[0]
        steps = list(steps)
        if not any(isinstance(s, ConstraintMaskStep) for s in steps):
            steps.append(ConstraintMaskStep())
        self.pipeline = LogitsPipeline(steps)
        self.pad_token_id = pad_token_id
        if eos_token_id is None:
            self.eos_token_ids: tuple[int, ...] | None = None
        else:
            ids = (eos_token_id,) if isinstance(eos_token_id, int) else tuple(eos_token_id)
            if not ids or any(not isinstance(i, int) or not 0 <= i < self.vocab.size for i in ids):
                raise ValueError(f"eos_token_id must be token ids of the vocabulary, got {eos_token_id!r}")
            self.eos_token_ids = ids
        self.reset()

    def reset(self) -> None:
        """Forget the current generation (matchers, prompt, steps' state, stats)."""
        self._prompt: torch.Tensor | None = None
        self._prompt_len = 0
        self._last_len = 0
        self._group_size = 1
        self._tracks: dict[tuple[int, tuple[int, ...]], _Track] = {}
        self._calls = 0
        self.last_batch: DecodingBatch | None = None
        self.pipeline.reset()
        self.stats: dict[str, float] = {
            "calls": 0,
            "constraint_seconds": 0.0,
            "replays": 0,
            "dead_rows": 0,
            "budget_steps": 0,
        }

    def _start(self, input_ids: torch.Tensor) -> None:
        rows = input_ids.shape[0]
        if rows % len(self.constraints):
            raise ValueError(
                f"{len(self.constraints)} constraints cannot be spread over {rows} rows: give one "
                "constraint, one per prompt or one per row (batch_size * num_beams)"
            )
        self.reset()
        self._prompt = input_ids.clone()
        self._prompt_len = input_ids.shape[1]
        self._group_size = rows // len(self.constraints)

    def _is_new_generation(self, input_ids: torch.Tensor) -> bool:
        if self._prompt is None:
            return True
        length = input_ids.shape[1]
        if input_ids.shape[0] != self._prompt.shape[0] or length <= self._prompt_len:
            return True
        # generate() adds one token per call; a jump means another run reused this processor.
        if length > self._last_len + 1:
            return True
        return not torch.equal(input_ids[:, : self._prompt_len], self._prompt.to(input_ids.device))

    def _end_ids(self) -> tuple[int, ...]:
        if self.pad_token_id is None or self.pad_token_id in self.vocab.eos_token_ids:
            return ()
        return (self.pad_token_id,)

    def _child(self, parent: _Track, token: int, in_place: bool) -> _Track:
        """The track after ``token`` (a copy unless ``in_place``); never raises on refusal."""
        if parent.dead or parent.matcher is None:
            return parent
        matcher = parent.matcher
        if matcher.is_finished():
            # After the end only EOS/padding can follow (transformers pads finished rows).
            if token in matcher.vocab.eos_token_ids or token == self.pad_token_id or self._is_eos(token):
                return parent
            return _Track(None, dead=True)
        if self._is_eos(token) and token not in matcher.vocab.eos_token_ids:
            # An end id that the vocabulary does not list as EOS: end the matcher with its own EOS.
            if not matcher.is_accepting():
                return _Track(None, dead=True)
            token = matcher.vocab.eos_token_ids[0]
        if not matcher.accepts(token):
            return _Track(None, dead=True)
        child = matcher if in_place else matcher.copy()
        child.advance(token)
        return _Track(child)

    def _is_eos(self, token: int) -> bool:
        return self.eos_token_ids is not None and token in self.eos_token_ids

    def _replay(self, group: int, generated: tuple[int, ...]) -> _Track:
        constraint = self.constraints[group]
        track = _Track(budgeted_matcher(constraint, self.max_new_tokens) if constraint is not None else None)
        for token in generated:
            track = self._child(track, token, in_place=True)
        return track

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Mask ``scores`` ``[R, V']`` for the rows ``input_ids`` ``[R, L]``; returns the scores."""
        start = time.perf_counter()
        if self._is_new_generation(input_ids):
            self._start(input_ids)
        generated = [tuple(ids) for ids in input_ids[:, self._prompt_len :].tolist()]
        keys = [(r // self._group_size, ids) for r, ids in enumerate(generated)]
        # Count children per parent so that a parent with one child is advanced in place.
        children: dict[tuple[int, tuple[int, ...]], int] = {}
        for group, ids in keys:
            if ids:
                parent_key = (group, ids[:-1])
                children[parent_key] = children.get(parent_key, 0) + 1
        tracks: dict[tuple[int, tuple[int, ...]], _Track] = {}
        for key in keys:
            if key in tracks:
                continue
            group, ids = key
            if not ids:
                tracks[key] = self._replay(group, ids)
                continue
            parent_key = (group, ids[:-1])
            parent = self._tracks.get(parent_key)
            if parent is None:
                self.stats["replays"] += 1
                tracks[key] = self._replay(group, ids)
            else:
                tracks[key] = self._child(parent, ids[-1], in_place=children[parent_key] == 1)
        self._tracks = tracks
        end_ids = self._end_ids()
        rows = []
        for key in keys:
            track = tracks[key]
            constraint = self.constraints[key[0]]
            vocab = constraint.vocab if constraint is not None else self.vocab
            rows.append(
                DecodingRow(
                    track.matcher,
                    key[1],
                    vocab,
                    dead=track.dead,
                    extra_end_ids=end_ids,
                    eos_ids=self.eos_token_ids,
                )
            )
        self.stats["dead_rows"] += sum(1 for row in rows if row.dead)
        self.stats["budget_steps"] += sum(
            1 for row in rows if isinstance(row.matcher, BudgetMatcher) and row.matcher.budget_active()
        )
        batch = DecodingBatch(rows, step=self._calls)
        self.last_batch = batch
        scores = self.pipeline(batch, scores)
        self._calls += 1
        self._last_len = input_ids.shape[1]
        self.stats["calls"] = self._calls
        self.stats["constraint_seconds"] += time.perf_counter() - start
        return scores

    def matchers(self) -> list[Matcher | None]:
        """The matcher of each row at the last call (before that call's token was chosen)."""
        if self.last_batch is None:
            return []
        return self.last_batch.matchers
