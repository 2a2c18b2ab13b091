"""Full-mask sampling: compute the whole allowed-token bitmask, then sample among allowed tokens.

Semantics shared by every sampler in this package. The *proposal* is the model's distribution
after temperature, then top-k, then top-p (nucleus), over the ids ``< vocab.size`` (logit columns
past ``vocab.size`` are not tokens of the vocabulary and are dropped; ids past the logits have no
score and are never drawn). Top-k keeps the k highest scores plus any tied with the k-th; top-p
keeps the shortest run of most likely tokens reaching ``top_p`` of the mass, plus ties with its
last one (ties are kept so the result never depends on id order). The constraint is applied
after filtering: the sampled token follows the proposal restricted to the allowed tokens, and
``log_weight`` is the log of the proposal's allowed mass, the incremental importance weight of
sequential Monte Carlo. When the filters leave
no allowed token (say the constraint forces a token outside the top-k), the sampler relaxes them:
it samples from the tempered, unfiltered distribution restricted to the allowed tokens and
reports ``log_weight = -inf`` (the proposal really puts no mass there).

Greedy decoding (temperature 0) picks the allowed token with the highest logit, ties to the lowest
id. Its proposal is the point mass on the unconstrained argmax, so ``log_weight`` is 0 when that
token is allowed and -inf otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from structgen.bitmask import allocate_token_bitmask
from structgen.errors import NoAllowedTokenError
from structgen.matcher import Matcher
from structgen.sampling import kernels
from structgen.sampling.base import SampledToken, SamplingParams, TokenSampler
from structgen.vocabulary import Vocabulary


def check_logits(logits: np.ndarray) -> np.ndarray:
    """Return ``logits`` as a 1-D float32/float64 array; raise ``ValueError`` for any other shape."""
    array = np.asarray(logits)
    if array.ndim != 1:
        raise ValueError(f"logits must be 1-D [vocab], got shape {array.shape}")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    if array.shape[0] == 0:
        raise ValueError("logits are empty")
    return array


def raise_for_status(status: int) -> None:
    """Turn a kernel status code into a ``ValueError`` naming the bad logit."""
    if status == kernels.STATUS_NAN:
        raise ValueError("logits contain NaN")
    if status == kernels.STATUS_POS_INF:
        raise ValueError("logits contain +inf")


def filtered_scores(logits: np.ndarray, vocab_size: int, params: SamplingParams) -> np.ndarray:
    """Tempered, top-k and top-p filtered log-weights of the proposal, length ``vocab_size``.

    float64, ``-inf`` outside the support; ``params`` must not be greedy.
    """
    scores = np.empty(vocab_size, dtype=np.float64)
    raise_for_status(kernels.tempered_scores(logits, 1.0 / params.temperature, scores))
    if params.top_k > 0:
        kernels.apply_top_k(scores, params.top_k)
    if params.top_p < 1.0:
        kernels.apply_threshold(scores, kernels.top_p_threshold(scores, params.top_p))
    return scores


def proposal_scores(logits: np.ndarray, vocab_size: int, params: SamplingParams) -> tuple[np.ndarray, float]:
    """:func:`filtered_scores` and the log of their total mass.

    ``scores - log_total`` are the proposal's log-probabilities (for unconstrained sampling).
    """
    scores = filtered_scores(logits, vocab_size, params)
    return scores, kernels.log_sum_exp(scores)


def relaxed_sample(
    logits: np.ndarray, bitmask: np.ndarray, params: SamplingParams, rng: np.random.Generator, vocab_size: int
) -> int:
    """Sample from the tempered, unfiltered distribution restricted to the allowed tokens.

    The fallback when top-k/top-p leave no allowed token; raises :class:`NoAllowedTokenError`
    when no allowed token has a finite logit at all.
    """
    scores = np.empty(vocab_size, dtype=np.float64)
    raise_for_status(kernels.tempered_scores(logits, 1.0 / params.temperature, scores))
    token, _ = kernels.masked_sample(scores, bitmask, rng.random())
    if token < 0:
        raise NoAllowedTokenError(
            f"no token allowed by the constraint has a finite logit (logits width {len(logits)}, "
            f"vocabulary size {vocab_size})"
        )
    return int(token)


def greedy_from_mask(logits: np.ndarray, bitmask: np.ndarray, vocab_size: int) -> tuple[int, int]:
    """``(best allowed id, unconstrained argmax)`` by logit; raises when nothing allowed is finite."""
    best_allowed, best_overall, status = kernels.masked_argmax(logits, vocab_size, bitmask)
    raise_for_status(status)
    if best_allowed < 0:
        raise NoAllowedTokenError(
            f"no token allowed by the constraint has a finite logit (logits width {len(logits)}, "
            f"vocabulary size {vocab_size})"
        )
    return int(best_allowed), int(best_overall)


class MaskSampler(TokenSampler):
    """Samples among the allowed tokens after computing the full bitmask with ``matcher.fill_bitmask``.

    Exact: the token follows the filtered proposal restricted to the allowed tokens, and
    ``log_weight`` is the exact log of the proposal's allowed mass (see the module docstring for
    greedy decoding and for the relaxation when the filters leave nothing allowed).
    ``checks`` is always 0 and ``mask_fallback`` always True.
    """

    def sample(self, logits: np.ndarray, matcher: Matcher, rng: np.random.Generator) -> SampledToken:
        """Pick a token allowed by ``matcher`` from ``logits`` (see :class:`TokenSampler`)."""
        logits = check_logits(logits)
        size = matcher.vocab.size
        bitmask = allocate_token_bitmask(1, size)[0]
        matcher.fill_bitmask(bitmask)
        if self.params.greedy:
            best_allowed, best_overall = greedy_from_mask(logits, bitmask, size)
            log_weight = 0.0 if best_allowed == best_overall else -math.inf
            return SampledToken(best_allowed, log_weight, 0, True)
        scores = filtered_scores(logits, size, self.params)
        ids = np.empty(size, dtype=np.int64)
        cumulative = np.empty(size, dtype=np.float64)
        n_allowed, log_allowed, log_total = kernels.masked_distribution(scores, bitmask, ids, cumulative)
        if log_total == -math.inf:
            raise NoAllowedTokenError("every logit is -inf")
        if n_allowed == 0:
            return SampledToken(relaxed_sample(logits, bitmask, self.params, rng, size), -math.inf, 0, True)
        token = int(ids[kernels.pick_cumulative(cumulative, n_allowed, rng.random())])
        return SampledToken(token, float(log_allowed - log_total), 0, True)


def candidate_mask(vocab: Vocabulary) -> np.ndarray:
    """Bool array: which ids a constraint can ever allow (text tokens and EOS ids).

    Special and empty tokens are never allowed by any matcher, so samplers skip them without a
    check. Cached per vocabulary object.
    """
    key = id(vocab)
    hit = _CANDIDATES.get(key)
    if hit is not None and hit[0] is vocab:
        return hit[1]
    mask = np.fromiter(
        (b is not None and len(b) > 0 for b in vocab.token_bytes), dtype=bool, count=vocab.size
    )
    mask[list(vocab.eos_token_ids)] = True
    if len(_CANDIDATES) >= _CANDIDATE_CACHE_SIZE:
        _CANDIDATES.pop(next(iter(_CANDIDATES)))
    _CANDIDATES[key] = (vocab, mask)
    return mask


# id(vocab) -> (vocab, mask); the vocabulary is kept so its id cannot be reused while cached.
_CANDIDATES: dict[int, tuple[Vocabulary, np.ndarray]] = {}
_CANDIDATE_CACHE_SIZE = 8
