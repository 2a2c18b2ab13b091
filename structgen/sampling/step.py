"""AWRS as a logits-pipeline step: constrained sampling inside transformers' ``model.generate``.

:class:`RejectionSamplingStep` replaces the full-mask step of a :class:`~structgen.LogitsProcessor`
by adaptive weighted rejection sampling (:class:`~structgen.sampling.rejection.RejectionSampler`):
for every constrained row it draws the next token from that row's scores with a few
``matcher.accepts`` checks, and returns scores that are ``-inf`` everywhere except the chosen token.
Whatever ``generate`` does next (greedy argmax, or sampling after its own temperature/top-k/top-p
warpers) then emits exactly that token::

    step = RejectionSamplingStep(SamplingParams(temperature=0.8), seed=0)
    processor = structgen.LogitsProcessor(constraints, steps=[step], eos_token_id=...)
    model.generate(**inputs, logits_processor=[processor], do_sample=False, max_new_tokens=64)

With ``LogitsProcessor(..., max_new_tokens=N)`` the rows' matchers carry the token budget
(:class:`~structgen.completion.BudgetMatcher`), and the step samples exactly from the model
restricted to outputs that can still be completed within it.

The sampling distribution is the step's: its :class:`~structgen.sampling.base.SamplingParams`
(temperature, top-k, top-p) are applied to the scores it receives, i.e. the model's logits after
the processors transformers runs before user processors (repetition penalty, ...) and after the
pipeline steps placed before this one. ``generate``'s own ``temperature``/``top_k``/``top_p`` only
see the one finite score and change nothing, so set them on the step; ``do_sample=False`` is the
natural choice. Beam search works (the processor tracks rows by suffix) but each row offers a
single continuation, so it degenerates to sampling ``num_beams`` independent rows.

The step subclasses :class:`~structgen.pipeline.ConstraintMaskStep`, so the processor does not
append a mask step after it (it only adds one when no step of that type is present): the point of
AWRS is to avoid computing the full mask. Rows that are finished (nothing may follow) or dead get
exactly the mask step's treatment (only the end ids stay allowed; the step lists those few ids
directly instead of filling and applying a bitmask); unconstrained rows are left untouched.
Rows that can still continue are sampled, which also decides between ending and going on: EOS is
one of the candidates, accepted when the output is complete.

End ids. When a row carries ``eos_ids`` (the processor's ``eos_token_id``), only those ids may
end it, as in the mask step: vocabulary EOS ids outside ``eos_ids`` get no mass. An id of
``eos_ids`` that the vocabulary does not list as EOS is folded into one end candidate whose
tempered mass is the sum of the end ids' masses (the matcher only knows the vocabulary's EOS);
when it is drawn, the emitted id is chosen among ``eos_ids`` in proportion to their masses
(greedy: the best one). In that rare case top-k/top-p see the end ids as a single candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from structgen.pipeline import ConstraintMaskStep, DecodingBatch, DecodingRow
from structgen.sampling.base import SampledToken, SamplingParams
from structgen.sampling.rejection import RejectionSampler


@dataclass
class RowSamplingStats:
    """What the step did for one batch row since the last reset.

    ``samples`` holds one :class:`~structgen.sampling.base.SampledToken` per token the step chose
    (finished/dead rows add none). ``log_weight`` is the sum of their ``log_weight``: the log of
    an unbiased estimate of the probability the proposal gives to the constraint being respected
    along the row (NaN when the step runs without weight estimates).
    """

    samples: list[SampledToken] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """Tokens chosen by AWRS for this row."""
        return len(self.samples)

    @property
    def checks(self) -> int:
        """``matcher.accepts`` calls made for this row."""
        return sum(s.checks for s in self.samples)

    @property
    def fallbacks(self) -> int:
        """Tokens for which the check budget ran out and the full mask was computed."""
        return sum(1 for s in self.samples if s.mask_fallback)

    @property
    def log_weight(self) -> float:
        """Sum of the per-token log weights (see the class docstring)."""
        return math.fsum(s.log_weight for s in self.samples) if self.samples else 0.0


class RejectionSamplingStep(ConstraintMaskStep):
    """Choose each constrained row's next token by AWRS; leave only that token with a finite score.

    ``params`` are the sampling parameters of the proposal (temperature 0 = greedy: the allowed
    token with the best score). ``max_checks`` and ``estimate_weight`` are those of
    :class:`~structgen.sampling.rejection.RejectionSampler`. The step draws from its own
    ``numpy.random.Generator`` created from ``seed`` (``None``: fresh entropy); :meth:`reset`
    clears the statistics but does not reseed, so successive generations differ. Create a new step
    with the same seed to repeat a generation.

    Statistics since the last reset (the processor resets its steps when a generation starts):
    ``rows[i]`` is a :class:`RowSamplingStats` for batch row ``i``; ``last`` holds the
    :class:`~structgen.sampling.base.SampledToken` of each row at the last call (``None`` for rows
    the step did not sample). Rows are counted by position, which follows one sequence under
    greedy and sampling decoding; beam search reorders rows between steps, so there the per-row
    sums mix sequences (the totals stay right).
    """

    def __init__(
        self,
        params: SamplingParams | None = None,
        *,
        max_checks: int = 32,
        estimate_weight: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if params is not None and not isinstance(params, SamplingParams):
            raise TypeError(f"params must be structgen SamplingParams, got {type(params).__name__}")
        self.sampler = RejectionSampler(params, max_checks=max_checks, estimate_weight=estimate_weight)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.rows: list[RowSamplingStats] = []
        self.last: list[SampledToken | None] = []

    @property
    def params(self) -> SamplingParams:
        """The sampling parameters of the proposal."""
        return self.sampler.params

    def reset(self) -> None:
        """Clear the statistics and the mask buffer (the random generator keeps its state)."""
        super().reset()
        self.rows = []
        self.last = []

    # -- statistics ---------------------------------------------------------------------------

    @property
    def sampled_tokens(self) -> int:
        """Tokens chosen by AWRS since the last reset, over all rows."""
        return sum(r.tokens for r in self.rows)

    @property
    def total_checks(self) -> int:
        """``matcher.accepts`` calls since the last reset, over all rows."""
        return sum(r.checks for r in self.rows)

    @property
    def fallbacks(self) -> int:
        """Tokens that needed the full mask since the last reset, over all rows."""
        return sum(r.fallbacks for r in self.rows)

    @property
    def checks_per_token(self) -> list[int]:
        """The checks of every sampled token since the last reset (row by row)."""
        return [s.checks for r in self.rows for s in r.samples]

    @property
    def log_weights(self) -> list[float]:
        """Per row, the summed log weight (see :class:`RowSamplingStats`)."""
        return [r.log_weight for r in self.rows]

    # -- the step -----------------------------------------------------------------------------

    def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
        """Sample every constrained row that can continue; mask finished and dead rows."""
        while len(self.rows) < len(batch):
            self.rows.append(RowSamplingStats())
        self.last = [None] * len(batch)
        for i, row in enumerate(batch.rows):
            if row.dead or (row.matcher is not None and row.finished):
                _keep_only(scores[i], self._end_ids(i, row))
            elif row.matcher is not None:
                choice, token = self._sample_row(i, row, scores[i])
                self.last[i] = choice
                self.rows[i].samples.append(choice)
                _keep_only(scores[i], [token])
        return scores

    @staticmethod
    def _end_ids(index: int, row: DecodingRow) -> list[int]:
        """What a finished or dead row may still emit: the mask step's allowed set, without a mask.

        A finished matcher allows only EOS (nothing may follow its output) and a dead row only
        EOS; ``eos_ids`` replace the vocabulary's EOS ids, and ``extra_end_ids`` (padding) join
        them. Ids past the vocabulary are dropped, as the mask step drops them.
        """
        vocab = row.vocab
        if vocab is None:
            raise ValueError(f"constrained row {index} has no vocabulary")
        ends = row.eos_ids if row.eos_ids is not None else vocab.eos_token_ids
        return [e for e in dict.fromkeys((*ends, *row.extra_end_ids)) if 0 <= e < vocab.size]

    def _sample_row(self, index: int, row: DecodingRow, scores: torch.Tensor) -> tuple[SampledToken, int]:
        """AWRS on one row's scores: ``(the sampler's decision, the id to emit)``."""
        vocab = row.vocab
        if vocab is None:
            raise ValueError(f"constrained row {index} has no vocabulary")
        if vocab.size > scores.shape[0]:
            raise ValueError(
                f"the vocabulary of row {index} has {vocab.size} tokens but the scores only "
                f"{scores.shape[0]} columns: the constraint was compiled for another model"
            )
        # Columns past vocab.size are padding of the output layer, never tokens: not passed on.
        logits = scores[: vocab.size].detach().to(device="cpu", dtype=torch.float32).numpy()
        if row.eos_ids is None:
            choice = self.sampler.sample(logits, row.matcher, self.rng)
            return choice, choice.token_id
        logits, end_slot, ends = self._restrict_ends(logits, row)
        choice = self.sampler.sample(logits, row.matcher, self.rng)
        token = choice.token_id
        if token == end_slot and ends is not None:
            token = self._pick_end(ends, scores)
        return choice, token

    def _restrict_ends(
        self, logits: np.ndarray, row: DecodingRow
    ) -> tuple[np.ndarray, int, list[int] | None]:
        """Logits where only ``row.eos_ids`` may end the row.

        Returns ``(logits, end_slot, ends)``: when every end id is a vocabulary EOS id, ``ends`` is
        None and the sampled id is emitted as is. Otherwise the end ids' mass sits on the EOS id
        ``end_slot`` and, when that is drawn, the emitted id is picked from ``ends``.
        """
        vocab = row.vocab
        vocab_eos = set(vocab.eos_token_ids)
        ends = [e for e in dict.fromkeys(row.eos_ids) if 0 <= e < vocab.size]
        logits = logits.copy()
        if all(e in vocab_eos for e in ends):
            for eos in vocab_eos - set(ends):
                logits[eos] = -math.inf
            return logits, -1, None
        slot = next((e for e in ends if e in vocab_eos), vocab.eos_token_ids[0])
        values = np.array([logits[e] for e in ends], dtype=np.float64)
        for e in vocab_eos | set(ends):
            logits[e] = -math.inf
        params = self.sampler.params
        if params.greedy:
            merged = float(values.max())
        else:
            # T * log(sum exp(s / T)): the tempered mass of the slot is the end ids' total.
            t = params.temperature
            top = float(values.max())
            merged = top if top == -math.inf else top + t * math.log(float(np.exp((values - top) / t).sum()))
        logits[slot] = merged
        return logits, slot, ends

    def _pick_end(self, ends: list[int], scores: torch.Tensor) -> int:
        """The end id to emit once the folded end candidate was drawn."""
        values = np.array([float(scores[e]) for e in ends], dtype=np.float64)
        params = self.sampler.params
        if params.greedy or len(ends) == 1:
            return ends[int(np.argmax(values))]
        weights = np.exp((values - values.max()) / params.temperature)
        cumulative = np.cumsum(weights)
        pick = int(np.searchsorted(cumulative, self.rng.random() * cumulative[-1], side="right"))
        return ends[min(pick, len(ends) - 1)]


def _keep_only(row: torch.Tensor, ids: list[int]) -> None:
    """Set every score of ``row`` to ``-inf`` except those of ``ids``, which keep their values.

    Keeping the model's score of a chosen token (shown by ``output_scores``) is a courtesy: any
    finite value would do. CPU float rows are written through numpy: torch ops over a row go
    through the intra-op thread pool, which on a busy CPU costs up to tens of milliseconds.
    """
    if row.device.type == "cpu" and row.dtype in (torch.float32, torch.float64) and not row.requires_grad:
        values = row.numpy()
        kept = values[ids].copy()
        values.fill(-np.inf)
        values[ids] = kept
        return
    index = torch.tensor(ids, dtype=torch.long, device=row.device)
    kept = row[index].clone()
    row.fill_(-math.inf)
    row[index] = kept
