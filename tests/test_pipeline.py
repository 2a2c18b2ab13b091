"""The logits pipeline: step order, the step contract and ConstraintMaskStep's bitmask application."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from structgen.bitmask import set_token_bit
from structgen.matcher import Automaton, Constraint
from structgen.pipeline import ConstraintMaskStep, DecodingBatch, DecodingRow, LogitsPipeline, Step
from structgen.vocabulary import Vocabulary

# A toy vocabulary: id 0 is EOS, id 5 an unused special id.
TOY_VOCAB = Vocabulary.from_token_bytes([None, b"a", b"b", b"ab", b"c", None], [0], name="toy")


class WordsAutomaton(Automaton):
    """Test double: the output must be one of a finite set of byte strings (states are prefixes)."""

    def __init__(self, vocab: Vocabulary, words: set[bytes]) -> None:
        self.vocab = vocab
        self.words = words

    def initial_state(self) -> bytes:
        return b""

    def next_state(self, state: bytes, token_id: int) -> bytes | None:
        text = state + self.vocab.token_bytes[token_id]
        return text if any(w.startswith(text) for w in self.words) else None

    def fill_token_bitmask(self, state: bytes, row: np.ndarray) -> None:
        for token_id in range(self.vocab.size):
            if self.vocab.is_text_token(token_id) and self.next_state(state, token_id) is not None:
                set_token_bit(row, token_id)

    def is_accepting(self, state: bytes) -> bool:
        return state in self.words

    def can_continue(self, state: bytes) -> bool:
        return any(len(w) > len(state) and w.startswith(state) for w in self.words)


def toy_constraint(*words: bytes) -> Constraint:
    return Constraint(WordsAutomaton(TOY_VOCAB, set(words)))


def allowed_columns(scores: torch.Tensor) -> list[list[int]]:
    return [torch.nonzero(torch.isfinite(row)).flatten().tolist() for row in scores]


class Record(Step):
    """Appends its label to a shared log, and adds ``delta`` to every score."""

    def __init__(self, label: str, log: list[str], delta: float = 0.0) -> None:
        self.label = label
        self.log = log
        self.delta = delta
        self.resets = 0

    @property
    def name(self) -> str:
        return self.label

    def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
        self.log.append(self.label)
        return scores + self.delta

    def reset(self) -> None:
        self.resets += 1


def test_steps_run_in_order_and_see_previous_scores() -> None:
    log: list[str] = []
    seen: list[float] = []

    class Probe(Step):
        def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
            log.append("probe")
            seen.append(float(scores[0, 0]))
            return scores

    first, second = Record("first", log, delta=1.0), Record("second", log, delta=10.0)
    pipeline = LogitsPipeline([first, Probe(), second])
    batch = DecodingBatch([DecodingRow(None, [], TOY_VOCAB)])
    out = pipeline(batch, torch.zeros(1, 6))
    assert log == ["first", "probe", "second"]
    assert seen == [1.0]
    assert float(out[0, 0]) == 11.0
    assert set(pipeline.seconds) == {"first", "Probe", "second"}
    pipeline.reset()
    assert first.resets == second.resets == 1
    assert pipeline.seconds == {}


def test_pipeline_rejects_bad_steps_and_shapes() -> None:
    with pytest.raises(TypeError, match="Step"):
        LogitsPipeline([lambda batch, scores: scores])  # type: ignore[list-item]

    class Shrink(Step):
        def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
            return scores[:, :3]

    batch = DecodingBatch([DecodingRow(None, [], TOY_VOCAB)])
    with pytest.raises(ValueError, match="Shrink returned"):
        LogitsPipeline([Shrink()])(batch, torch.zeros(1, 6))
    with pytest.raises(ValueError, match="shape"):
        LogitsPipeline([])(batch, torch.zeros(2, 6))


def test_steps_can_read_rows_text_ids_and_matcher() -> None:
    constraint = toy_constraint(b"abc", b"abab")
    matcher = constraint.matcher()
    matcher.consume([1, 2])
    seen = {}

    class Inspect(Step):
        def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
            row = batch[0]
            seen["text"] = row.text
            seen["ids"] = list(row.token_ids)
            seen["mask"] = row.matcher.mask().nonzero()[0].tolist()
            seen["step"] = batch.step
            return scores

    row = DecodingRow(matcher, [1, 2], TOY_VOCAB)
    LogitsPipeline([Inspect()])(DecodingBatch([row], step=7), torch.zeros(1, 6))
    assert seen == {"text": "ab", "ids": [1, 2], "mask": [1, 3, 4], "step": 7}


def test_mask_step_matches_matcher_masks_and_forbids_padded_columns() -> None:
    constraint = toy_constraint(b"abc", b"b")
    rows = []
    for prefix in ([], [1], [3], [2]):
        matcher = constraint.matcher()
        matcher.consume(prefix)
        rows.append(DecodingRow(matcher, prefix, TOY_VOCAB))
    width = 40  # the model's logits are wider than the 6-token vocabulary
    scores = torch.arange(4 * width, dtype=torch.float32).reshape(4, width)
    original = scores.clone()
    out = ConstraintMaskStep()(DecodingBatch(rows), scores)
    got = allowed_columns(out)
    expected = [np.flatnonzero(row.matcher.mask()).tolist() for row in rows]
    assert got == expected
    # [] -> a, ab, b ; [a] -> b ; [ab] -> c ; [b] -> EOS only (complete, nothing may follow)
    assert got == [[1, 2, 3], [2], [4], [0]]
    finite = torch.isfinite(out)
    assert torch.equal(out[finite], original[finite])
    assert not finite[:, TOY_VOCAB.size :].any()


def test_mask_step_ignores_unconstrained_rows_and_handles_finished_dead_and_pad() -> None:
    constraint = toy_constraint(b"ab")
    done = constraint.matcher()
    done.consume([3])  # "ab": complete, nothing may follow
    live = constraint.matcher()
    rows = [
        DecodingRow(None, [4, 4], TOY_VOCAB),
        DecodingRow(done, [3], TOY_VOCAB, extra_end_ids=(5,)),
        DecodingRow(None, [2], TOY_VOCAB, dead=True),
        DecodingRow(live, [], TOY_VOCAB, extra_end_ids=(5,)),
    ]
    scores = torch.zeros(4, 8)
    out = ConstraintMaskStep()(DecodingBatch(rows), scores)
    assert allowed_columns(out) == [list(range(8)), [0, 5], [0], [1, 3]]


def test_mask_step_rejects_a_vocabulary_wider_than_the_scores() -> None:
    row = DecodingRow(toy_constraint(b"a").matcher(), [], TOY_VOCAB)
    with pytest.raises(ValueError, match="compiled for another model"):
        ConstraintMaskStep()(DecodingBatch([row]), torch.zeros(1, 4))


def test_mask_step_on_a_real_vocabulary_with_padded_logits(smollm2_vocab: Vocabulary) -> None:
    from structgen.compilers.regex import compile_regex

    constraint = compile_regex(r"\d{3}-\d{4}", smollm2_vocab)
    matchers = [constraint.matcher() for _ in range(3)]
    matchers[1].consume(smollm2_vocab_ids(smollm2_vocab, [b"1", b"2"]))
    matchers[2].consume(smollm2_vocab_ids(smollm2_vocab, [b"1", b"2", b"3"]))
    rows = [DecodingRow(m, [], smollm2_vocab) for m in matchers]
    width = smollm2_vocab.size + 64
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(3, width, generator=generator)
    original = scores.clone()
    out = ConstraintMaskStep()(DecodingBatch(rows), scores)
    for row, matcher in enumerate(matchers):
        expected = np.zeros(width, dtype=bool)
        expected[: smollm2_vocab.size] = matcher.mask()
        assert torch.equal(torch.isfinite(out[row]), torch.from_numpy(expected))
        assert torch.equal(out[row][torch.from_numpy(expected)], original[row][torch.from_numpy(expected)])
    assert math.isinf(float(out[:, smollm2_vocab.size :].max()))


def smollm2_vocab_ids(vocab: Vocabulary, pieces: list[bytes]) -> list[int]:
    index = {b: i for i, b in enumerate(vocab.token_bytes) if b is not None}
    return [index[p] for p in pieces]


def test_mask_step_replaces_eos_ids_where_ending_is_allowed() -> None:
    constraint = toy_constraint(b"a", b"ab", b"abc")
    rows = []
    for prefix in ([], [1], [3, 4]):  # "" (cannot end), "a" (may end or go on), "abc" (finished)
        matcher = constraint.matcher()
        matcher.consume(prefix)
        rows.append(DecodingRow(matcher, prefix, TOY_VOCAB, eos_ids=(5,)))
    rows.append(DecodingRow(None, [4], TOY_VOCAB, dead=True, eos_ids=(5,)))
    out = ConstraintMaskStep()(DecodingBatch(rows), torch.zeros(4, 6))
    assert allowed_columns(out) == [[1, 3], [2, 5], [5], [5]]
