"""structgen.LogitsProcessor: per-row matchers tracked by generated suffix, and model.generate with it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from structgen.compilers.regex import compile_regex
from structgen.matcher import Constraint
from structgen.processor import LogitsProcessor
from structgen.vocabulary import Vocabulary

PROMPT = [101, 102, 103]
PAD = 1  # a special id of SmolLM2 that is not EOS


def ids_of(vocab: Vocabulary, text: str) -> list[int]:
    """One single-character token per character."""
    index = {b: i for i, b in enumerate(vocab.token_bytes) if b is not None}
    return [index[ch.encode()] for ch in text]


def expected_allowed(constraint: Constraint, generated: list[int]) -> list[int]:
    matcher = constraint.matcher()
    matcher.consume(generated)
    return np.flatnonzero(matcher.mask()).tolist()


def allowed(scores: torch.Tensor) -> list[list[int]]:
    return [torch.nonzero(torch.isfinite(row)).flatten().tolist() for row in scores]


def call(processor: LogitsProcessor, rows: list[list[int]], width: int) -> list[list[int]]:
    input_ids = torch.tensor([PROMPT + row for row in rows])
    return allowed(processor(input_ids, torch.zeros(len(rows), width)))


def test_rows_are_tracked_by_suffix_when_beams_reorder(smollm2_vocab: Vocabulary) -> None:
    constraint = compile_regex(r"abc|abd|xyz", smollm2_vocab)
    a, b, c, d, x, y, z = ids_of(smollm2_vocab, "abcdxyz")
    processor = LogitsProcessor(constraint)
    width = smollm2_vocab.size
    steps = [
        [[], [], []],
        [[a], [x], [a]],
        # beam search reorders rows: row 0 continues old row 1, rows 1 and 2 both continue "a"
        [[x, y], [a, b], [a, b]],
        [[a, b, d], [x, y, z], [a, b, c]],
    ]
    for rows in steps:
        assert call(processor, rows, width) == [expected_allowed(constraint, r) for r in rows]
    assert processor.stats["replays"] == 0
    assert processor.stats["dead_rows"] == 0
    assert processor.stats["calls"] == len(steps)
    # Complete rows allow only EOS, and so do rows that already ended with EOS.
    eos = sorted(smollm2_vocab.eos_token_ids)
    assert expected_allowed(constraint, [x, y, z]) == eos
    assert call(processor, [[a, b, d, 2], [x, y, z, 2], [a, b, c, 2]], width) == [eos, eos, eos]
    assert processor.stats["dead_rows"] == 0


def test_one_constraint_per_group_of_rows(smollm2_vocab: Vocabulary) -> None:
    digits = compile_regex(r"[0-9]", smollm2_vocab)
    letters = compile_regex(r"[a-z]", smollm2_vocab)
    processor = LogitsProcessor([digits, letters])
    rows = call(processor, [[], [], [], []], smollm2_vocab.size)
    assert rows[0] == rows[1] == expected_allowed(digits, [])
    assert rows[2] == rows[3] == expected_allowed(letters, [])
    with pytest.raises(ValueError, match="cannot be spread over 3 rows"):
        call(LogitsProcessor([digits, letters]), [[], [], []], smollm2_vocab.size)


def test_constructor_validates_constraints(smollm2_vocab: Vocabulary) -> None:
    with pytest.raises(ValueError, match="at least one"):
        LogitsProcessor([])
    with pytest.raises(ValueError, match="every constraint is None"):
        LogitsProcessor([None, None])
    with pytest.raises(TypeError, match="Constraint"):
        LogitsProcessor([r"\d+"])  # type: ignore[list-item]


def test_unconstrained_rows_and_padded_logits(smollm2_vocab: Vocabulary) -> None:
    digits = compile_regex(r"[0-9]+", smollm2_vocab)
    processor = LogitsProcessor([digits, None])
    width = smollm2_vocab.size + 16
    rows = call(processor, [[], []], width)
    assert rows[0] == expected_allowed(digits, [])
    assert rows[1] == list(range(width))


def test_finished_rows_accept_eos_then_padding(smollm2_vocab: Vocabulary) -> None:
    constraint = compile_regex(r"ab", smollm2_vocab)
    a, b = ids_of(smollm2_vocab, "ab")
    processor = LogitsProcessor(constraint, pad_token_id=PAD)
    width = smollm2_vocab.size
    call(processor, [[]], width)
    call(processor, [[a]], width)
    end = sorted([*smollm2_vocab.eos_token_ids, PAD])
    assert call(processor, [[a, b]], width) == [end]
    assert call(processor, [[a, b, 2]], width) == [end]
    assert call(processor, [[a, b, 2, PAD]], width) == [end]
    assert processor.stats["dead_rows"] == 0


def test_eos_token_id_restricts_the_ids_that_end_a_row(smollm2_vocab: Vocabulary) -> None:
    assert set(smollm2_vocab.eos_token_ids) == {0, 2}
    constraint = compile_regex(r"a|ab", smollm2_vocab)
    a, b = ids_of(smollm2_vocab, "ab")
    processor = LogitsProcessor(constraint, eos_token_id=2)
    width = smollm2_vocab.size
    call(processor, [[]], width)
    rows = call(processor, [[a]], width)
    assert 2 in rows[0] and 0 not in rows[0] and b in rows[0]
    assert call(processor, [[a, b]], width) == [[2]]
    assert call(processor, [[a, b, 2]], width) == [[2]]
    with pytest.raises(ValueError, match="eos_token_id"):
        LogitsProcessor(constraint, eos_token_id=[width + 5])


def test_refused_continuation_becomes_a_dead_row(smollm2_vocab: Vocabulary) -> None:
    constraint = compile_regex(r"ab", smollm2_vocab)
    a, c = ids_of(smollm2_vocab, "ac")
    processor = LogitsProcessor(constraint)
    call(processor, [[], []], smollm2_vocab.size)
    rows = call(processor, [[a], [c]], smollm2_vocab.size)
    assert rows[1] == sorted(smollm2_vocab.eos_token_ids)
    assert processor.stats["dead_rows"] == 1
    assert processor.last_batch is not None and processor.last_batch[1].dead


def test_missing_parent_is_replayed_and_new_prompt_restarts(smollm2_vocab: Vocabulary) -> None:
    first = compile_regex(r"ab|ba", smollm2_vocab)
    second = compile_regex(r"ab|bb", smollm2_vocab)
    a, b = ids_of(smollm2_vocab, "ab")
    processor = LogitsProcessor([first, second])  # one constraint per row
    width = smollm2_vocab.size
    call(processor, [[], []], width)
    call(processor, [[a], [b]], width)
    # The rows swapped: row 1 now continues "a", which its own constraint never saw.
    rows = call(processor, [[b, a], [a, b]], width)
    assert rows == [expected_allowed(first, [b, a]), expected_allowed(second, [a, b])]
    assert processor.stats["replays"] == 2
    # A different prompt starts a new generation with fresh matchers.
    other = allowed(processor(torch.tensor([[7, 8], [7, 8]]), torch.zeros(2, width)))
    assert other == [expected_allowed(first, []), expected_allowed(second, [])]
    assert processor.stats["calls"] == 1


# ---------------------------------------------------------------------------------------------
# With the default model and transformers' generate


PATTERNS = [r"\d{3}-\d{4}", r"(yes|no|maybe)", r"[A-Z][a-z]{3}", r"(red|green|blue) (cat|dog)"]
PROMPTS = ["Give me a phone number", "Is the sky blue?", "Name a person", "Describe a pet"]


@pytest.fixture(scope="module")
def batch_inputs(default_model):
    _, tokenizer, vocab = default_model
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
    return encoded, constraints


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        {"do_sample": False},
        {"do_sample": True, "temperature": 1.0, "top_k": 0},
        {"num_beams": 3, "do_sample": False},
        {"num_beams": 2, "num_return_sequences": 2, "do_sample": False},
    ],
    ids=["greedy", "sampling", "beam3", "beam2x2"],
)
def test_model_generate_batch_of_four_regexes(default_model, batch_inputs, mode) -> None:
    model, tokenizer, vocab = default_model
    encoded, constraints = batch_inputs
    processor = LogitsProcessor(
        constraints, pad_token_id=tokenizer.pad_token_id, eos_token_id=model.generation_config.eos_token_id
    )
    torch.manual_seed(0)
    out = model.generate(**encoded, logits_processor=[processor], max_new_tokens=16, **mode)
    generated = out[:, encoded["input_ids"].shape[1] :].tolist()
    per_prompt = len(generated) // len(PATTERNS)
    assert per_prompt == mode.get("num_return_sequences", 1)
    for row, ids in enumerate(generated):
        pattern = PATTERNS[row // per_prompt]
        text = vocab.decode(ids).decode("utf-8")
        assert re.fullmatch(pattern, text), (mode, pattern, text)
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert processor.stats["calls"] >= 3
    # Every row is finished long before the limit, and generate stops once all rows ended.
    assert processor.stats["calls"] < 16


def test_extra_steps_run_before_the_mask_and_see_row_text(smollm2_vocab: Vocabulary) -> None:
    from structgen.pipeline import ConstraintMaskStep, DecodingBatch, Step

    constraint = compile_regex(r"ab|ac", smollm2_vocab)
    a, b, c = ids_of(smollm2_vocab, "abc")
    seen: list[tuple[int, list[str]]] = []

    class BanB(Step):
        def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
            seen.append((batch.step, [row.text for row in batch]))
            scores[:, b] = float("-inf")
            return scores

    processor = LogitsProcessor(constraint, steps=[BanB()])
    assert isinstance(processor.pipeline.steps[-1], ConstraintMaskStep)
    call(processor, [[]], smollm2_vocab.size)
    assert call(processor, [[a]], smollm2_vocab.size) == [[c]]
    assert seen == [(0, [""]), (1, ["a"])]


def test_max_new_tokens_makes_the_budget_part_of_the_constraint(smollm2_vocab: Vocabulary) -> None:
    constraint = compile_regex(r"a+b", smollm2_vocab)
    processor = LogitsProcessor(constraint, max_new_tokens=3)
    a, b = ids_of(smollm2_vocab, "ab")
    width = smollm2_vocab.size
    assert call(processor, [[]], width)[0] == expected_allowed(constraint, [])  # far from the end
    # After two tokens one is left: only tokens that end the output ("b", "ab", ...) remain.
    call(processor, [[a]], width)
    last = call(processor, [[a, a]], width)[0]
    assert b in last and a not in last
    for token in last:
        text = smollm2_vocab.token_bytes[token]
        assert re.fullmatch(rb"a*b", text), text
    assert processor.stats["budget_steps"] >= 1
    with pytest.raises(ValueError, match="max_new_tokens"):
        LogitsProcessor(constraint, max_new_tokens=0)
