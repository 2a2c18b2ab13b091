"""Adaptive weighted rejection sampling (AWRS): constrained sampling from a few single-token checks.

Lipkin et al., "Fast Controlled Generation from Language Models with Adaptive Weighted Rejection
Sampling" (COLM 2025, arXiv 2504.05410). Instead of computing the constraint's mask over the whole
vocabulary, draw tokens from the proposal (the model's tempered, top-k/top-p filtered distribution;
see :mod:`structgen.sampling.mask` for the shared semantics) *without replacement*, asking the
matcher about one token at a time: a refused token is removed and the rest renormalized, and the
first accepted token is the sample. Since a refusal only removes a token the target gives zero
mass, the accepted token follows the proposal restricted to the allowed tokens exactly, and a good
model needs about one check per token.

Weight. After the first run (refusals ``R1``, accepted token ``x``) a second run starts from the
proposal with ``R1`` removed and draws until it accepts a token, removing its own refusals ``R2``
(``x`` stays in, so the run often stops at once). With ``n = |R1| + |R2|``, the estimate

    Z_hat = (1 - q(R1)) / (n + 1)

of the allowed mass ``Z = q(allowed)`` is unbiased (the paper's estimator: it Rao-Blackwellizes
the "first draw accepted" indicator over the runs). The accepted token is independent of the
refusals (given the ordered refusals ``R1``, ``x`` still follows ``q`` restricted to the allowed
tokens), and ``Z_hat`` depends on the refusals only, so ``E[Z_hat * 1{x = a}] = q(a)`` for every
allowed ``a``: the pair is properly weighted for sequential Monte Carlo. The tests check both
identities exactly, by enumerating every run on small cases, and statistically on larger ones.

Proposal mechanics. Candidates are drawn by inverse CDF over a cumulative sum of the support's
weights, with removed tokens' intervals skipped (kernel ``draw_candidate``): one O(V) pass to
build, then O(log V) per candidate. When the removed mass passes half of the built total the sum
is rebuilt from the remaining tokens, so every draw keeps full float64 resolution however peaked
the model is. Special and empty tokens (never allowed by any matcher) are dropped up front; their
mass is simply not part of ``Z``.

Bounded worst case. After ``max_checks`` calls to ``matcher.accepts`` the sampler computes the full
bitmask once and finishes the current run, and the weight run, by simulation: with the allowed set
known, the rest of a without-replacement run is drawn in closed form from Gumbel-max arguments
(``_AWRSRun._simulate_run``: one inverse-CDF draw plus Poisson thinning for the refusals, about
one random number per refusal). The runs are thus distributed exactly as without the budget, so
the sample stays exact and the weight unbiased (returning the exact ``Z`` after a fallback would
bias the estimate, because whether the fallback happens depends on the run).
"""

from __future__ import annotations

import math

import numpy as np

from structgen.bitmask import allocate_token_bitmask
from structgen.errors import NoAllowedTokenError
from structgen.matcher import Matcher
from structgen.sampling import kernels
from structgen.sampling.base import SampledToken, SamplingParams, TokenSampler
from structgen.sampling.mask import (
    candidate_mask,
    check_logits,
    filtered_scores,
    greedy_from_mask,
    relaxed_sample,
)

# Rebuild the cumulative sum when the removed mass exceeds this fraction of the built total, so
# the remaining mass (computed by subtraction) never loses more than one bit of precision.
_REBUILD_FRACTION = 0.5
# The simulated run draws Poisson events while their expected number is at most this many per
# support token; above it, one Bernoulli per refused token is cheaper.
_POISSON_LIMIT = 0.125
# Below this the built total is rescaled: weights that small lose precision (subnormals).
_TINY = 1e-200
# The greedy walk takes the best 1, then 16, 256, ... tokens (one pass over the logits each):
# usually the argmax is allowed and the walk costs one pass.
_GREEDY_CHUNK = 1
_GREEDY_GROWTH = 16


class _WithoutReplacement:
    """Draws positions of the support without replacement, proportionally to ``exp(values)``.

    ``weights``/``cumulative`` are ``exp(values - ref)`` and their running sum, as built by
    ``kernels.support_cumulative``; ``ref + log(remaining)`` is the log of the mass left.
    """

    def __init__(
        self, values: np.ndarray, weights: np.ndarray, cumulative: np.ndarray, ref: float, capacity: int
    ) -> None:
        self.values = values
        self.weights = weights
        self.cumulative = cumulative
        self.removed = np.zeros(values.shape[0], dtype=np.bool_)
        # Positions removed since the last rebuild, ascending; at most one per check.
        self.shift = np.empty(capacity + 1, dtype=np.int64)
        self.n_shift = 0
        self.ref = ref
        self.built = float(cumulative[-1]) if cumulative.shape[0] else 0.0
        self.remaining = self.built
        if values.shape[0] > 0 and self.built < _TINY:
            # The weights were taken relative to a far larger non-candidate score: rescale them.
            self._rebuild()

    def _rebuild(self) -> None:
        self.ref = float(kernels.build_cumulative(self.values, self.removed, self.weights, self.cumulative))
        self.built = float(self.cumulative[-1]) if self.cumulative.shape[0] else 0.0
        self.remaining = self.built
        self.n_shift = 0

    def log_remaining(self) -> float:
        """Log of the mass not removed (in the units of ``values``)."""
        return self.ref + math.log(self.remaining) if self.remaining > 0 else -math.inf

    def draw(self, u: float) -> int:
        """A position not removed, or -1 when none is left."""
        if self.remaining <= 0.0:
            return -1
        return int(
            kernels.draw_candidate(
                self.weights, self.cumulative, self.removed, self.shift, self.n_shift, self.remaining, u
            )
        )

    def remove(self, pos: int) -> None:
        """Remove ``pos`` and renormalize the rest."""
        self.removed[pos] = True
        if self.n_shift + 1 > self.shift.shape[0]:
            self._rebuild()
            return
        at = int(np.searchsorted(self.shift[: self.n_shift], pos))
        self.shift[at + 1 : self.n_shift + 1] = self.shift[at : self.n_shift]
        self.shift[at] = pos
        self.n_shift += 1
        self.remaining -= float(self.weights[pos])
        if self.remaining < _REBUILD_FRACTION * self.built:
            self._rebuild()


class RejectionSampler(TokenSampler):
    """Adaptive weighted rejection sampling (see the module docstring).

    ``max_checks`` bounds the ``matcher.accepts`` calls per token; past it the full mask is
    computed (``mask_fallback=True``) and the sample and weight stay exact/unbiased.
    ``estimate_weight=False`` skips the second run (fewer checks) when no weight is needed, for
    plain generation; ``log_weight`` is then NaN. Greedy decoding (temperature 0) walks the tokens
    by decreasing logit and returns the first allowed one, with the same ``log_weight`` as
    :class:`~structgen.sampling.mask.MaskSampler` (0 if it is the unconstrained argmax, else -inf).
    """

    def __init__(
        self, params: SamplingParams | None = None, *, max_checks: int = 32, estimate_weight: bool = True
    ) -> None:
        super().__init__(params)
        if max_checks < 0:
            raise ValueError(f"max_checks must be >= 0, got {max_checks}")
        self.max_checks = max_checks
        self.estimate_weight = estimate_weight

    def sample(self, logits: np.ndarray, matcher: Matcher, rng: np.random.Generator) -> SampledToken:
        """Pick a token allowed by ``matcher`` from ``logits`` (see :class:`TokenSampler`)."""
        logits = check_logits(logits)
        if self.params.greedy:
            return self._greedy(logits, matcher)
        return _AWRSRun(self, logits, matcher, rng).sample()

    def _greedy(self, logits: np.ndarray, matcher: Matcher) -> SampledToken:
        top = float(logits.max())
        if math.isnan(top) or top == math.inf:
            raise ValueError("logits contain NaN" if math.isnan(top) else "logits contain +inf")
        vocab = matcher.vocab
        candidates = candidate_mask(vocab)
        checks = 0
        start = 0
        chunk = _GREEDY_CHUNK
        while True:
            order = kernels.top_order(logits, vocab.size, chunk)
            for rank in range(start, order.shape[0]):
                token = int(order[rank])
                if not candidates[token]:
                    continue
                if checks >= self.max_checks:
                    bitmask = allocate_token_bitmask(1, vocab.size)[0]
                    matcher.fill_bitmask(bitmask)
                    best_allowed, best_overall = greedy_from_mask(logits, bitmask, vocab.size)
                    log_weight = 0.0 if best_allowed == best_overall else -math.inf
                    return SampledToken(best_allowed, log_weight, checks, True)
                checks += 1
                if matcher.accepts(token):
                    return SampledToken(token, 0.0 if rank == 0 else -math.inf, checks, False)
            if order.shape[0] < chunk:
                raise NoAllowedTokenError(
                    f"no token allowed by the constraint has a finite logit (logits width {len(logits)}, "
                    f"vocabulary size {vocab.size})"
                )
            start = order.shape[0]
            chunk *= _GREEDY_GROWTH


class _AWRSRun:
    """One AWRS decision: the state shared by the sample run, the weight run and the fallback."""

    def __init__(
        self, sampler: RejectionSampler, logits: np.ndarray, matcher: Matcher, rng: np.random.Generator
    ) -> None:
        self.sampler = sampler
        self.logits = logits
        self.matcher = matcher
        self.rng = rng
        vocab = matcher.vocab
        scores = filtered_scores(logits, vocab.size, sampler.params)
        ids = np.empty(vocab.size, dtype=np.int64)
        values, weights, cumulative = (np.empty(vocab.size, dtype=np.float64) for _ in range(3))
        m, ref, self.log_total = kernels.support_cumulative(
            scores, candidate_mask(vocab), ids, values, weights, cumulative
        )
        if self.log_total == -math.inf:
            raise NoAllowedTokenError("every logit is -inf")
        self.ids, self.values = ids[:m], values[:m]
        self.draws = _WithoutReplacement(self.values, weights[:m], cumulative[:m], ref, sampler.max_checks)
        self.checks = 0
        self.bitmask: np.ndarray | None = None
        self.allowed: np.ndarray | None = None  # allowed flag per support position, after fallback
        self.accepted = -1  # support position accepted by the first run

    def _fallback(self) -> None:
        if self.bitmask is None:
            self.bitmask = allocate_token_bitmask(1, self.matcher.vocab.size)[0]
            self.matcher.fill_bitmask(self.bitmask)
            self.allowed = kernels.bits_at(self.bitmask, self.ids)

    def _run(self) -> tuple[int, int]:
        """One rejection run from the current removed set: ``(accepted position or -1, refusals)``."""
        refusals = 0
        while self.allowed is None:
            if self.checks >= self.sampler.max_checks:
                # The draw has not been made yet, so finishing by simulation is exact.
                self._fallback()
                break
            pos = self.draws.draw(self.rng.random())
            if pos < 0:
                return -1, refusals
            if pos == self.accepted:
                return pos, refusals
            self.checks += 1
            if self.matcher.accepts(int(self.ids[pos])):
                return pos, refusals
            self.draws.remove(pos)
            refusals += 1
        pos, more = self._simulate_run()
        return pos, refusals + more

    def _simulate_run(self) -> tuple[int, int]:
        """Finish a rejection run with the allowed set known, without walking it.

        In Gumbel-max terms the run proposes tokens in decreasing order of the keys
        ``log w + Gumbel`` and stops at the first allowed one. The best allowed key is
        ``log A + G0`` (``A`` the allowed mass left, ``G0`` a standard Gumbel) and its token is drawn
        proportionally to ``w``, independently of ``G0``. Given that key, each refused token ``j``
        has a larger key, i.e. is proposed (and refused) first, independently with probability
        ``1 - exp(-w_j / (A e^G0))``: the chance that a Poisson variable of rate
        ``w_j / (A e^G0)`` is non-zero. So the refusals are the distinct tokens hit by
        ``Poisson(D / (A e^G0))`` events (``D`` the refused mass left) spread proportionally to
        ``w``: about as many draws as refusals, instead of a key for every token. When that rate is
        large, one Bernoulli per refused token is cheaper. Refused positions are marked removed.
        """
        weights, removed, allowed = self.draws.weights, self.draws.removed, self.allowed
        m = weights.shape[0]
        cumulative_allowed, cumulative_refused = np.empty(m), np.empty(m)
        a, d = kernels.split_cumulative(weights, removed, allowed, cumulative_allowed, cumulative_refused)
        if a <= 0.0:
            # Nothing allowed is left: the run refuses everything that remains.
            left = ~removed & (weights > 0)
            removed |= left
            return -1, int(left.sum())
        winner = int(kernels.pick_interval(cumulative_allowed, self.rng.random()))
        if d <= 0.0:
            return winner, 0
        u = self.rng.random()
        while u == 0.0:
            u = self.rng.random()
        log_scale = -(math.log(a) - math.log(-math.log(u)))  # -(log A + G0)
        rate = math.exp(math.log(d) + log_scale) if math.log(d) + log_scale < 700 else math.inf
        if rate <= _POISSON_LIMIT * m:
            events = self.rng.random(int(self.rng.poisson(rate)))
            return winner, int(kernels.mark_events(cumulative_refused, removed, events))
        uniforms = self.rng.random(m)
        return winner, int(kernels.mark_bernoulli(weights, removed, allowed, math.exp(log_scale), uniforms))

    def sample(self) -> SampledToken:
        pos, refused_first = self._run()
        if pos < 0:
            # Nothing in the proposal's support is allowed: Z = 0 exactly.
            self._fallback()
            token = relaxed_sample(
                self.logits, self.bitmask, self.sampler.params, self.rng, self.matcher.vocab.size
            )
            return SampledToken(token, -math.inf, self.checks, True)
        self.accepted = pos
        token = int(self.ids[pos])
        if not self.sampler.estimate_weight:
            return SampledToken(token, math.nan, self.checks, self.bitmask is not None)
        # The numerator 1 - q(R1) is the mass left, never computed as 1 minus the refused mass: the
        # running remainder stays above half of its last rebuilt exact sum, so it is precise.
        if self.allowed is None:
            log_left = self.draws.log_remaining() - self.log_total
        else:  # the simulated refusals are not in the running remainder: sum what is left
            left = kernels.sum_weights(self.draws.weights, self.draws.removed)
            log_left = self.draws.ref + math.log(left) - self.log_total
        second, refused_second = self._run()
        if second < 0:  # unreachable: the first run's token is still in the support
            raise AssertionError("AWRS weight run found no allowed token")
        # log_left <= 0 exactly; rounding can leave +1e-16 when nothing was refused.
        log_weight = min(log_left, 0.0) - math.log(refused_first + refused_second + 1)
        return SampledToken(token, float(log_weight), self.checks, self.bitmask is not None)
