"""Sequential Monte Carlo over constrained sequences, with AWRS weights as incremental weights.

``N`` particles (partial outputs) advance together, one token per step, from one batched model
call. Each particle's token comes from a :class:`~structgen.sampling.base.TokenSampler`
(by default :class:`~structgen.sampling.rejection.RejectionSampler`), whose ``log_weight`` (the
exact or unbiased estimate of the proposal mass the constraint allows) is the particle's
incremental importance weight. The target is the model's distribution (as filtered by the
sampler's params) conditioned on the constraint, and the estimate of the log marginal likelihood
is ``log Z_hat`` with ``Z_hat`` unbiased for

    Z = P_model(every token of the output is allowed by the constraint),

where the output ends at EOS or after ``max_tokens`` tokens, whichever comes first (so particles
cut at ``max_tokens`` count as their prefix's probability; they are flagged ``finished=False``).

When the effective sample size ``ESS = 1 / sum(w_i^2)`` of the normalized weights falls below
``ess_threshold * N``, the particles are resampled (systematic resampling by default, multinomial
on request; both are unbiased, systematic has lower variance), their matchers copied, and the
weights reset to the average; the running estimate keeps the average weight of every stage.
Finished particles (EOS consumed) stay in the population with their weight and take part in
resampling, but sample no more tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from structgen.completion import BudgetMatcher
from structgen.matcher import Constraint, Matcher
from structgen.sampling import kernels
from structgen.sampling.base import TokenSampler
from structgen.sampling.rejection import RejectionSampler

NextLogits = Callable[[list[list[int]], "np.ndarray | None"], np.ndarray]

RESAMPLING_METHODS = ("systematic", "multinomial")


@dataclass(frozen=True)
class SMCResult:
    """Outcome of one SMC run.

    ``token_ids[i]`` are particle ``i``'s generated tokens (EOS included when it finished);
    ``log_weights`` are the unnormalized log weights since the last resampling and ``weights``
    their normalization (the particle approximation of the constrained distribution);
    ``log_marginal_likelihood`` is ``log Z_hat`` (see the module docstring); ``budget_steps`` counts
    the tokens decided under a :class:`~structgen.completion.BudgetMatcher`'s budget test.
    """

    token_ids: list[list[int]]
    log_weights: np.ndarray
    weights: np.ndarray
    finished: np.ndarray
    log_marginal_likelihood: float
    steps: int
    n_resamples: int
    ess_history: list[float] = field(default_factory=list)
    checks: int = 0
    mask_fallbacks: int = 0
    budget_steps: int = 0

    def best(self) -> list[int]:
        """The tokens of the particle with the highest weight."""
        return self.token_ids[int(np.argmax(self.weights))]


def log_sum_exp(values: np.ndarray) -> float:
    """``log(sum(exp(values)))``, -inf for an empty or all -inf input."""
    return float(kernels.log_sum_exp(np.asarray(values, dtype=np.float64)))


def effective_sample_size(log_weights: np.ndarray) -> float:
    """``1 / sum(w_i^2)`` of the normalized weights; 0 when every weight is zero."""
    total = log_sum_exp(log_weights)
    if total == -math.inf:
        return 0.0
    w = np.exp(log_weights - total)
    return float(1.0 / np.sum(w * w))


def resample(weights: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
    """Ancestor indices for ``len(weights)`` slots from normalized ``weights``."""
    if method == "systematic":
        return kernels.systematic_resample(weights, rng.random())
    if method == "multinomial":
        return kernels.multinomial_resample(weights, rng.random(weights.shape[0]))
    raise ValueError(f"unknown resampling method {method!r}; expected one of {RESAMPLING_METHODS}")


class SequentialMonteCarlo:
    """Constrained generation by sequential Monte Carlo with a batched model callback.

    ``next_logits(token_ids, parents)`` receives every particle's generated tokens so far (the
    prompt is the callback's business) and returns float logits of shape ``[N, V]`` (rows of
    finished particles are ignored). ``parents`` is ``None`` unless the particles were resampled
    since the previous call; then ``parents[i]`` is the index, in the previous call's order, of
    the particle that slot ``i`` now continues, so a KV-cached model can reorder its cache with
    ``cache[parents]`` before appending the newest tokens.

    ``start`` is the constraint (each particle gets a fresh matcher) or a matcher to copy (say one
    already advanced over a forced prefix, or a :class:`~structgen.completion.BudgetMatcher`, so
    that every particle must complete within its token budget).
    """

    def __init__(
        self,
        start: Constraint | Matcher,
        next_logits: NextLogits,
        *,
        n_particles: int,
        sampler: TokenSampler | None = None,
        ess_threshold: float = 0.5,
        resampling: str = "systematic",
        max_tokens: int = 256,
    ) -> None:
        if n_particles < 1:
            raise ValueError(f"n_particles must be >= 1, got {n_particles}")
        if not 0.0 <= ess_threshold <= 1.0:
            raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold}")
        if resampling not in RESAMPLING_METHODS:
            raise ValueError(
                f"unknown resampling method {resampling!r}; expected one of {RESAMPLING_METHODS}"
            )
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if not isinstance(start, Constraint | Matcher):
            raise TypeError(f"start must be a Constraint or a Matcher, got {type(start).__name__}")
        self.start = start
        self.next_logits = next_logits
        self.n_particles = n_particles
        self.sampler = sampler if sampler is not None else RejectionSampler()
        self.ess_threshold = ess_threshold
        self.resampling = resampling
        self.max_tokens = max_tokens

    def _fresh_matcher(self) -> Matcher:
        return self.start.matcher() if isinstance(self.start, Constraint) else self.start.copy()

    def run(self, rng: np.random.Generator) -> SMCResult:
        """Run SMC to completion (every particle finished, or ``max_tokens`` steps)."""
        n = self.n_particles
        matchers = [self._fresh_matcher() for _ in range(n)]
        eos = set(matchers[0].vocab.eos_token_ids)
        tokens: list[list[int]] = [[] for _ in range(n)]
        finished = np.zeros(n, dtype=bool)
        log_weights = np.zeros(n, dtype=np.float64)
        log_ml = 0.0  # sum over past stages of log(mean weight)
        parents: np.ndarray | None = None
        ess_history: list[float] = []
        n_resamples = checks = fallbacks = steps = budget_steps = 0

        for step in range(self.max_tokens):
            if finished.all():
                break
            logits = np.asarray(self.next_logits([list(t) for t in tokens], parents))
            if logits.ndim != 2 or logits.shape[0] != n:
                raise ValueError(f"next_logits must return an array of shape [{n}, V], got {logits.shape}")
            parents = None
            steps = step + 1
            for i in np.flatnonzero(~finished):
                choice = self.sampler.sample(logits[i], matchers[i], rng)
                if math.isnan(choice.log_weight):
                    raise ValueError(
                        f"{type(self.sampler).__name__} returned no weight (NaN); SMC needs weights "
                        "(RejectionSampler(estimate_weight=True) or MaskSampler)"
                    )
                tokens[i].append(choice.token_id)
                log_weights[i] += choice.log_weight
                checks += choice.checks
                fallbacks += int(choice.mask_fallback)
                budget_steps += int(isinstance(matchers[i], BudgetMatcher) and matchers[i].budget_active())
                matchers[i].advance(choice.token_id)
                if choice.token_id in eos:
                    finished[i] = True

            if log_sum_exp(log_weights) == -math.inf:
                # Every particle has zero weight: the estimate is 0 and nothing can be resampled.
                ess_history.append(0.0)
                break
            ess = effective_sample_size(log_weights) / n
            ess_history.append(ess)
            if finished.all() or step + 1 == self.max_tokens or ess >= self.ess_threshold:
                continue
            total = log_sum_exp(log_weights)
            log_ml += total - math.log(n)
            ancestors = resample(np.exp(log_weights - total), self.resampling, rng)
            tokens = [list(tokens[a]) for a in ancestors]
            matchers = [matchers[a].copy() for a in ancestors]
            finished = finished[ancestors]
            log_weights = np.zeros(n, dtype=np.float64)
            parents = ancestors
            n_resamples += 1

        total = log_sum_exp(log_weights)
        log_ml = log_ml + total - math.log(n) if total > -math.inf else -math.inf
        weights = np.exp(log_weights - total) if total > -math.inf else np.zeros(n)
        return SMCResult(
            token_ids=tokens,
            log_weights=log_weights,
            weights=weights,
            finished=finished,
            log_marginal_likelihood=float(log_ml),
            steps=steps,
            n_resamples=n_resamples,
            ess_history=ess_history,
            checks=checks,
            mask_fallbacks=fallbacks,
            budget_steps=budget_steps,
        )
