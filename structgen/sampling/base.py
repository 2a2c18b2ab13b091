"""The sampler interface used by ``structgen.generate`` and by the logits-processor pipeline."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from structgen.matcher import Matcher


@dataclass(frozen=True)
class SampledToken:
    """One sampling decision.

    ``log_weight`` is the log of the (estimated) probability mass the constraint allows under the
    sampler's proposal distribution: the incremental importance weight used by sequential Monte
    Carlo. ``checks`` counts ``Matcher.accepts`` calls; ``mask_fallback`` says a full mask was
    computed.
    """

    token_id: int
    log_weight: float = 0.0
    checks: int = 0
    mask_fallback: bool = False


@dataclass(frozen=True)
class SamplingParams:
    """How to turn logits into a distribution: ``temperature == 0`` means greedy."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        """Whether decoding picks the highest-scoring allowed token."""
        return self.temperature == 0


class TokenSampler(ABC):
    """Chooses the next token for one sequence from its logits and its matcher."""

    def __init__(self, params: SamplingParams | None = None) -> None:
        self.params = params or SamplingParams()

    @abstractmethod
    def sample(self, logits: np.ndarray, matcher: Matcher, rng: np.random.Generator) -> SampledToken:
        """Pick a token allowed by ``matcher`` from float32 ``logits`` of shape ``[vocab.size]``.

        ``logits`` are the pipeline's output (monitors and penalties already applied), before
        temperature and top-k/top-p, which the sampler applies from ``self.params``.
        """
