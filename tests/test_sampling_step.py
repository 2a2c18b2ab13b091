"""RejectionSamplingStep: AWRS as a pipeline step, alone and inside structgen.LogitsProcessor."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from test_sampling_helpers import (
    abc_constraint,
    assert_distribution,
    assert_mean,
    digits_constraint,
    exact_constrained,
    random_logits,
    toy_vocab,
)

from structgen.compilers.regex import compile_regex
from structgen.errors import NoAllowedTokenError
from structgen.matcher import Matcher
from structgen.pipeline import ConstraintMaskStep, DecodingBatch, DecodingRow
from structgen.processor import LogitsProcessor
from structgen.sampling.base import SamplingParams
from structgen.sampling.step import RejectionSamplingStep
from structgen.vocabulary import Vocabulary

VOCAB = toy_vocab()
PAD_COLUMNS = 5  # logits wider than the vocabulary, as many output layers are


def scores_of(*rows: np.ndarray) -> torch.Tensor:
    """A ``[B, V + PAD_COLUMNS]`` float32 score tensor with finite padding columns."""
    out = torch.zeros(len(rows), VOCAB.size + PAD_COLUMNS)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = torch.from_numpy(row)
    return out


def finite(row: torch.Tensor) -> list[int]:
    return torch.nonzero(torch.isfinite(row)).flatten().tolist()


def sample_many(
    step: RejectionSamplingStep, rows: list[DecodingRow], scores: torch.Tensor, n: int
) -> np.ndarray:
    """Call the step ``n`` times on copies of ``scores``; the chosen token of each constrained row."""
    batch = DecodingBatch(rows)
    chosen = np.empty((n, len(rows)), dtype=np.int64)
    for k in range(n):
        out = step(batch, scores.clone())
        for i, row in enumerate(rows):
            ids = finite(out[i])
            if row.matcher is None:
                assert torch.equal(out[i], scores[i])  # unconstrained rows are untouched
                chosen[k, i] = -1
                continue
            assert len(ids) == 1, ids
            (token,) = ids
            # The chosen token keeps its own score; everything else is -inf.
            assert out[i, token] == scores[i, token]
            chosen[k, i] = token
    return chosen


@pytest.mark.parametrize("params", [SamplingParams(), SamplingParams(temperature=0.7)])
def test_chosen_tokens_are_allowed_and_follow_the_constrained_distribution(params: SamplingParams) -> None:
    abc = abc_constraint(VOCAB).matcher()
    digits = digits_constraint(VOCAB).matcher()
    logits = [random_logits(VOCAB, seed, scale=2.0) for seed in (1, 2, 3)]
    rows = [
        DecodingRow(abc, [], VOCAB),
        DecodingRow(None, [], VOCAB),  # unconstrained
        DecodingRow(digits, [], VOCAB),
    ]
    step = RejectionSamplingStep(params, seed=7)
    n = 4000
    chosen = sample_many(step, rows, scores_of(*logits), n)
    for i, matcher in ((0, abc), (2, digits)):
        allowed = matcher.mask()
        assert allowed[chosen[:, i]].all()
        target, _ = exact_constrained(logits[i], allowed, params.temperature)
        assert_distribution(chosen[:, i], target)
    # Stats: every sampled token is recorded for its row, none for the unconstrained row.
    assert [r.tokens for r in step.rows] == [n, 0, n]
    assert step.sampled_tokens == 2 * n
    assert step.total_checks == sum(step.checks_per_token) >= 2 * n
    assert [s.token_id for s in step.rows[0].samples] == chosen[:, 0].tolist()
    assert step.last[1] is None and step.last[0] is not None


def test_log_weights_estimate_the_allowed_mass_without_bias() -> None:
    matcher = digits_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 11, scale=1.0)
    _, mass = exact_constrained(logits, matcher.mask())
    step = RejectionSamplingStep(seed=3)
    rows = [DecodingRow(matcher, [], VOCAB)]
    sample_many(step, rows, scores_of(logits), 3000)
    weights = np.exp([s.log_weight for s in step.rows[0].samples])
    assert_mean(weights, mass)
    assert step.log_weights[0] == pytest.approx(float(np.log(weights).sum()))
    assert step.rows[0].fallbacks == step.fallbacks


def test_without_weight_estimates_log_weight_is_nan() -> None:
    step = RejectionSamplingStep(estimate_weight=False, seed=0)
    rows = [DecodingRow(abc_constraint(VOCAB).matcher(), [], VOCAB)]
    sample_many(step, rows, scores_of(random_logits(VOCAB, 4)), 5)
    assert math.isnan(step.log_weights[0])


def test_greedy_picks_the_best_allowed_token() -> None:
    matcher = abc_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 5)
    allowed = matcher.mask()
    best = int(np.argmax(np.where(allowed, logits, -np.inf)))
    step = RejectionSamplingStep(SamplingParams(temperature=0.0), seed=0)
    chosen = sample_many(step, [DecodingRow(matcher, [], VOCAB)], scores_of(logits), 3)
    assert chosen[:, 0].tolist() == [best] * 3


def test_same_seed_same_tokens_and_reset_keeps_the_generator() -> None:
    rows = [DecodingRow(abc_constraint(VOCAB).matcher(), [], VOCAB)]
    scores = scores_of(random_logits(VOCAB, 6, scale=0.5))
    first = sample_many(RejectionSamplingStep(seed=42), rows, scores, 20)
    again = sample_many(RejectionSamplingStep(seed=42), rows, scores, 20)
    assert first.tolist() == again.tolist()
    step = RejectionSamplingStep(seed=42)
    sample_many(step, rows, scores, 20)
    step.reset()
    assert step.rows == [] and step.sampled_tokens == 0
    # The generator was not reseeded: the next draws continue the stream.
    assert sample_many(step, rows, scores, 20).tolist() != first.tolist()


def test_finished_and_dead_rows_get_the_mask_steps_treatment() -> None:
    constraint = compile_regex("ab", VOCAB)
    finished = constraint.matcher()
    finished.consume([VOCAB.token_bytes.index(b"ab")])
    assert finished.is_finished()
    pad = 2  # a special id that is not EOS
    rows = [
        DecodingRow(finished, [9], VOCAB, extra_end_ids=(pad,)),
        DecodingRow(None, [9], VOCAB, dead=True),
        DecodingRow(constraint.matcher(), [], VOCAB),
    ]
    scores = scores_of(*(random_logits(VOCAB, s) for s in (1, 2, 3)))
    step = RejectionSamplingStep(seed=0)
    out = step(DecodingBatch(rows), scores.clone())
    expected = ConstraintMaskStep()(DecodingBatch(rows[:2]), scores[:2].clone())
    assert torch.equal(out[:2], expected)
    assert finite(out[0]) == sorted([*VOCAB.eos_token_ids, pad])
    assert finite(out[1]) == list(VOCAB.eos_token_ids)
    assert len(finite(out[2])) == 1
    assert [r.tokens for r in step.rows] == [0, 0, 1]
    # All rows finished or dead: the mask step alone.
    out = step(DecodingBatch(rows[:2]), scores[:2].clone())
    assert torch.equal(out, expected)


def two_eos_vocab() -> Vocabulary:
    """The toy vocabulary with ids 0 and 1 both EOS (id 2 stays a plain special id)."""
    return Vocabulary.from_token_bytes(VOCAB.token_bytes, [0, 1], name="toy-2eos")


def end_target(logits: np.ndarray, matcher: Matcher, ends: list[int]) -> np.ndarray:
    """The constrained distribution when only ``ends`` may end the (accepting) row."""
    vocab = matcher.vocab
    allowed = matcher.mask()
    allowed[list(vocab.eos_token_ids)] = False
    allowed[ends] = True
    return exact_constrained(logits, allowed)[0]


@pytest.mark.parametrize("ends", [(1,), (2,), (0, 2)], ids=["vocab-eos", "special-id", "mixed"])
def test_eos_ids_restrict_how_a_row_ends(ends: tuple[int, ...]) -> None:
    vocab = two_eos_vocab()
    matcher = compile_regex("a[bc]{0,3}", vocab).matcher()
    matcher.advance(vocab.token_bytes.index(b"a"))
    assert matcher.is_accepting()
    logits = random_logits(vocab, 8, scale=1.0)
    logits[[0, 1, 2]] = 2.0  # ending is likely, so the end ids get many draws
    step = RejectionSamplingStep(seed=1)
    rows = [DecodingRow(matcher, [3], vocab, eos_ids=ends)]
    scores = torch.from_numpy(logits.copy()).unsqueeze(0)
    batch = DecodingBatch(rows)
    chosen = np.array([finite(step(batch, scores.clone())[0])[0] for _ in range(4000)])
    assert_distribution(chosen, end_target(logits, matcher, list(ends)))


def test_no_allowed_finite_score_raises() -> None:
    matcher = digits_constraint(VOCAB).matcher()
    logits = random_logits(VOCAB, 9)
    logits[matcher.mask()] = -np.inf
    with pytest.raises(NoAllowedTokenError):
        RejectionSamplingStep(seed=0)(DecodingBatch([DecodingRow(matcher, [], VOCAB)]), scores_of(logits))


def test_constructor_and_shape_checks() -> None:
    with pytest.raises(TypeError, match="SamplingParams"):
        RejectionSamplingStep({"temperature": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_checks"):
        RejectionSamplingStep(max_checks=-1)
    row = DecodingRow(abc_constraint(VOCAB).matcher(), [], VOCAB)
    with pytest.raises(ValueError, match="compiled for another model"):
        RejectionSamplingStep()(DecodingBatch([row]), torch.zeros(1, VOCAB.size - 1))


def test_processor_uses_the_step_instead_of_the_mask() -> None:
    constraints = [abc_constraint(VOCAB), digits_constraint(VOCAB)]
    step = RejectionSamplingStep(seed=0)
    processor = LogitsProcessor(constraints, steps=[step])
    # The step is a ConstraintMaskStep, so the processor adds no full-mask step after it.
    assert processor.pipeline.steps == [step]
    prompt = [5, 6]
    generated: list[list[int]] = [[], []]
    matchers = [c.matcher() for c in constraints]
    for _ in range(3):
        scores = scores_of(random_logits(VOCAB, 1), random_logits(VOCAB, 2))
        out = processor(torch.tensor([prompt + g for g in generated]), scores)
        for i in range(2):
            (token,) = finite(out[i])
            if matchers[i].is_finished():
                assert token in VOCAB.eos_token_ids
            assert matchers[i].accepts(token)
            matchers[i].advance(token)
            generated[i].append(token)
    assert step.sampled_tokens == sum(r.tokens for r in step.rows) >= 2
    # A new prompt is a new generation: the processor resets its steps' statistics.
    processor(torch.tensor([[7], [7]]), scores_of(random_logits(VOCAB, 1), random_logits(VOCAB, 2)))
    assert step.sampled_tokens == 2


# ---------------------------------------------------------------------------------------------
# With the default model and transformers' generate


PATTERNS = [r"\d{3}-\d{4}", r"(yes|no|maybe)", r"[A-Z][a-z]{3,8}", r"(red|green|blue) (cat|dog)"]
PROMPTS = ["Give me a phone number", "Is the sky blue?", "Name a person", "Describe a pet"]


@pytest.mark.slow
@pytest.mark.parametrize("do_sample", [False, True], ids=["generate-greedy", "generate-sampling"])
def test_model_generate_with_awrs_step(default_model, do_sample: bool) -> None:
    model, tokenizer, vocab = default_model
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
        )
        for p in PROMPTS
    ]
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = previous
    constraints = [compile_regex(p, vocab) for p in PATTERNS]
    step = RejectionSamplingStep(SamplingParams(temperature=1.0), seed=0)
    processor = LogitsProcessor(
        constraints,
        steps=[step],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=model.generation_config.eos_token_id,
    )
    torch.manual_seed(0)
    out = model.generate(**encoded, logits_processor=[processor], max_new_tokens=20, do_sample=do_sample)
    generated = out[:, encoded["input_ids"].shape[1] :].tolist()
    end = model.generation_config.eos_token_id
    for row, (pattern, ids) in enumerate(zip(PATTERNS, generated, strict=True)):
        body = ids[: ids.index(end)] if end in ids else ids
        text = vocab.decode(body).decode("utf-8")
        assert re.fullmatch(pattern, text), (pattern, text)
        # generate emitted exactly the tokens AWRS chose (the last one may be EOS).
        chosen = [s.token_id for s in step.rows[row].samples]
        assert chosen == ids[: len(chosen)]
        assert body == [t for t in chosen if t != end]
    # AWRS needs a handful of checks per token, far fewer than the 49,152 of a mask.
    assert step.total_checks / step.sampled_tokens < 50
    assert processor.stats["calls"] < 20
