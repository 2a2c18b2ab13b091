"""Length-aware constraints: shortest completions, the budget matcher, AWRS under a budget."""

from __future__ import annotations

import functools
import itertools
import json
import re

import numpy as np
import pytest
from test_sampling_helpers import (
    assert_distribution,
    assert_mean,
    filtered_probs,
    toy_abc_constraint,
    toy_vocab,
)

from structgen.compilers.json_schema import compile_json_schema
from structgen.compilers.regex import compile_regex
from structgen.completion import (
    JSON_START,
    BudgetMatcher,
    JsonContext,
    ShortestCompletion,
    json_context,
    shortest_completion,
)
from structgen.errors import TokenRefusedError
from structgen.matcher import Matcher
from structgen.sampling.base import SamplingParams
from structgen.sampling.mask import MaskSampler
from structgen.sampling.rejection import RejectionSampler
from structgen.sampling.smc import SequentialMonteCarlo

VOCAB = toy_vocab()
ALPHABET = "abcxyz0123456789 "


@functools.cache
def _shortest_by_regex(pattern: str, prefix: str, longest: int = 4) -> int | None:
    """Independent oracle: the shortest ``w`` over the toy alphabet with ``prefix + w`` a full match."""
    for length in range(longest + 1):
        for combo in itertools.product(ALPHABET, repeat=length):
            if re.fullmatch(pattern, prefix + "".join(combo)):
                return length
    return None


def _toy_tokens(length: int | None) -> int | None:
    """Fewest toy tokens that write ``length`` bytes (every 1- and 2-byte string of its alphabet is one)."""
    return None if length is None else -(-length // 2)


def _state_after(constraint, text: str):
    matcher = constraint.matcher()
    for ch in text:
        matcher.advance(VOCAB.token_bytes.index(ch.encode()))
    return matcher.state


@pytest.mark.parametrize(
    ("pattern", "prefixes"),
    [
        (r"a+b", ["", "a", "aaa", "aab"]),
        (r"(ab|c)*x{2,3}", ["", "a", "ab", "c", "abx", "xx"]),
        (r"[0-9]{3} ?z", ["", "1", "12", "123", "123 "]),
        (r"(a|bc){2}y|z", ["", "a", "b", "bc", "bca"]),
    ],
)
def test_distance_is_the_brute_force_shortest_completion(pattern: str, prefixes: list[str]) -> None:
    constraint = compile_regex(pattern, VOCAB)
    search = ShortestCompletion(constraint.automaton)
    for prefix in prefixes:
        state = _state_after(constraint, prefix)
        expected = _shortest_by_regex(pattern, prefix)
        assert search.distance(state) == _toy_tokens(expected), (pattern, prefix)
        assert search.lower_bound(state) == _toy_tokens(expected)
        completion = search.completion(state)
        assert completion is not None and len(completion) == expected
        assert re.fullmatch(pattern, prefix + completion.decode())


def test_hand_written_automaton_distances() -> None:
    # [ab]*c from a hand-written DFA, independent of the regex compiler.
    constraint = toy_abc_constraint(VOCAB)
    search = shortest_completion(constraint.automaton)
    assert search is shortest_completion(constraint.automaton)
    assert search.distance(0) == 1 and search.completion(0) == b"c"
    assert search.distance(1) == 0


def test_node_budget_bounds_the_search() -> None:
    constraint = compile_regex(r"[abcxyz]{5}0", VOCAB)
    search = ShortestCompletion(constraint.automaton, node_budget=2)
    # Five letters then a digit: the search needs more than two expansions.
    assert search.distance(constraint.automaton.initial_state()) is None
    assert search.stats["exhausted"] == 1
    with pytest.raises(ValueError):
        ShortestCompletion(constraint.automaton, node_budget=0)


def _logits_preferring(token: bytes, strength: float = 8.0) -> np.ndarray:
    logits = np.zeros(VOCAB.size, dtype=np.float32)
    logits[VOCAB.token_bytes.index(token)] = strength
    return logits


def _run(matcher: Matcher, logits: np.ndarray, steps: int, seed: int, sampler=None) -> tuple[str, bool]:
    sampler = sampler or RejectionSampler(max_checks=8)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        if matcher.is_finished():
            break
        token = sampler.sample(logits, matcher, rng).token_id
        if token in VOCAB.eos_token_ids:
            matcher.advance(token)
            break
        matcher.advance(token)
        out.append(VOCAB.token_bytes[token].decode())
    return "".join(out), matcher.is_accepting()


@pytest.mark.parametrize("sampler", [RejectionSampler(max_checks=8), MaskSampler()])
def test_a_model_that_never_stops_completes_within_the_budget(sampler) -> None:
    constraint = compile_regex(r"a+b", VOCAB)
    logits = _logits_preferring(b"aa")
    for seed in range(5):
        text, complete = _run(constraint.matcher(), logits, 12, seed, sampler)
        assert not complete and len(text) == 24  # unconstrained by length, it keeps writing a's
        budget = BudgetMatcher(constraint.automaton, 12)
        text, complete = _run(budget, logits, 12, seed, sampler)
        assert complete and re.fullmatch(r"a+b", text), text
        assert budget.num_tokens <= 12


def test_budget_mask_matches_an_independent_oracle() -> None:
    pattern = r"(ab|c)*x{2,3}"
    constraint = compile_regex(pattern, VOCAB)
    for prefix, max_tokens in [("", 3), ("ab", 3), ("c", 2), ("", 1), ("abab", 4)]:
        matcher = BudgetMatcher(constraint.automaton, max_tokens + len(prefix))
        base = constraint.matcher()
        for ch in prefix:
            base.advance(VOCAB.token_bytes.index(ch.encode()))
            matcher.advance(VOCAB.token_bytes.index(ch.encode()))
        remaining = matcher.remaining
        current = _toy_tokens(_shortest_by_regex(pattern, prefix))
        limit = max(remaining, current) - 1
        mask = matcher.mask()
        for token_id in range(VOCAB.size):
            data = VOCAB.token_bytes[token_id]
            if token_id in VOCAB.eos_token_ids:
                expected = re.fullmatch(pattern, prefix) is not None
            elif not base.accepts(token_id):
                expected = False
            else:
                after = _toy_tokens(_shortest_by_regex(pattern, prefix + data.decode()))
                expected = after is not None and after <= limit
            assert mask[token_id] == expected, (prefix, max_tokens, data)
            assert matcher.accepts(token_id) == expected


def test_awrs_is_exact_for_the_tightened_constraint() -> None:
    constraint = compile_regex(r"(ab|c)*x{2,3}", VOCAB)
    matcher = BudgetMatcher(constraint.automaton, 3)
    matcher.advance(VOCAB.token_bytes.index(b"ab"))
    assert matcher.budget_active()
    allowed = matcher.mask()
    assert 0 < allowed.sum() < constraint.matcher().mask().sum()
    rng = np.random.default_rng(3)
    logits = rng.normal(size=VOCAB.size).astype(np.float32)
    # Favour what the budget refuses, so runs see refusals and the fallback.
    logits[constraint.matcher().mask() & ~allowed] += 2.0
    params = SamplingParams(temperature=0.9)
    proposal = filtered_probs(logits, params.temperature, params.top_k, params.top_p)
    target = np.where(allowed, proposal, 0.0)
    mass = target.sum()
    sampler = RejectionSampler(params, max_checks=6)
    draws = [sampler.sample(logits, matcher, rng) for _ in range(4000)]
    assert_distribution(np.array([d.token_id for d in draws]), target / mass)
    assert_mean(np.exp([d.log_weight for d in draws]), mass / proposal.sum())


def test_far_from_the_budget_nothing_changes() -> None:
    constraint = compile_regex(r"a+b", VOCAB)
    matcher = BudgetMatcher(constraint.automaton, 100, window=20)
    search = matcher.completions
    asked = []
    search.lower_bound = lambda *args: asked.append(args) or ShortestCompletion.lower_bound(search, *args)
    plain = constraint.matcher()
    a_token = VOCAB.token_bytes.index(b"a")
    for _ in range(60):
        assert not matcher.budget_active()
        assert np.array_equal(matcher.mask(), plain.mask())
        matcher.advance(a_token)
        plain.advance(a_token)
    # Asked at the start, then after half the slack each time: a few times, not at every position.
    assert 2 <= len(asked) <= 6


def test_advance_refuses_what_the_budget_refuses_and_rollback_restores() -> None:
    constraint = compile_regex(r"a+b", VOCAB)
    matcher = BudgetMatcher(constraint.automaton, 2)
    a_token = VOCAB.token_bytes.index(b"a")
    matcher.advance(a_token)
    with pytest.raises(TokenRefusedError):
        matcher.advance(a_token)  # "aa" would need a third token, "b"
    matcher.rollback()
    assert matcher.num_tokens == 0 and matcher.remaining == 2
    copy = matcher.copy()
    assert isinstance(copy, BudgetMatcher) and copy.completions is matcher.completions


def test_finished_when_the_budget_is_spent_on_a_complete_output() -> None:
    constraint = compile_regex(r"a+b?", VOCAB)
    matcher = BudgetMatcher(constraint.automaton, 1)
    matcher.advance(VOCAB.token_bytes.index(b"aa"))
    assert matcher.is_finished()
    assert matcher.mask().nonzero()[0].tolist() == list(VOCAB.eos_token_ids)


def test_smc_particles_complete_within_the_budget() -> None:
    constraint = compile_regex(r"a+b", VOCAB)
    logits = _logits_preferring(b"aa")

    def next_logits(token_ids, parents):
        return np.tile(logits, (len(token_ids), 1))

    start = BudgetMatcher(constraint.automaton, 6)
    result = SequentialMonteCarlo(start, next_logits, n_particles=4, max_tokens=7).run(
        np.random.default_rng(0)
    )
    assert result.finished.all()
    assert result.budget_steps > 0
    for ids in result.token_ids:
        text = VOCAB.decode([t for t in ids if t not in VOCAB.eos_token_ids]).decode()
        assert re.fullmatch(r"a+b", text) and len(ids) <= 7


def test_json_context_follows_the_structure() -> None:
    ctx = json_context(JSON_START, b'{"a": [1, "x\\"')
    assert ctx == JsonContext(("o", "a"), "string")
    assert json_context(ctx, b'y"], "b"') == JsonContext(("o",), "colon")
    assert json_context(JSON_START, b"{}") == JsonContext((), "after")
    assert json_context(JSON_START, b"]") is None
    assert json_context(JsonContext(("o",), "after"), b",") == JsonContext(("o",), "next_key")


def test_json_proposal_writes_required_properties(smollm2_vocab, smollm2_tokenizer) -> None:
    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "meta": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
        },
        "required": ["tags", "meta"],
    }
    constraint = compile_json_schema(schema, smollm2_vocab)
    prefix = '{"extra": {"deep": ["free text that goes on and on'
    matcher = BudgetMatcher(constraint.automaton, 10_000)
    matcher.consume(smollm2_tokenizer(prefix, add_special_tokens=False)["input_ids"])
    search = matcher.completions
    context = json_context(JSON_START, prefix.encode())
    distance = search.distance(matcher.state, lambda: context)
    assert distance is not None and search.stats["proposals_found"] >= 1
    completion = search.completion(matcher.state)
    document = json.loads(prefix.encode() + completion)
    jsonschema.validate(document, schema)
    completion_ids = smollm2_tokenizer(completion.decode(), add_special_tokens=False)["input_ids"]
    # The distance counts the fewest tokens that spell the completion.
    assert distance <= len(completion_ids) < len(completion)
    check = constraint.matcher()
    check.consume(smollm2_tokenizer(prefix, add_special_tokens=False)["input_ids"])
    check.consume(completion_ids)
    assert check.is_accepting()


def test_budget_closes_json_near_the_end(smollm2_vocab, smollm2_tokenizer) -> None:
    import jsonschema

    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    constraint = compile_json_schema(schema, smollm2_vocab)
    prefix_ids = smollm2_tokenizer('{"a": "once upon a time', add_special_tokens=False)["input_ids"]
    matcher = BudgetMatcher(constraint.automaton, len(prefix_ids) + 3)
    matcher.consume(prefix_ids)
    # A model that only wants to write " there" keeps the string open; the budget closes it.
    logits = np.zeros(smollm2_vocab.size, dtype=np.float32)
    logits[smollm2_tokenizer(" there", add_special_tokens=False)["input_ids"][0]] = 12.0
    rng = np.random.default_rng(0)
    sampler = RejectionSampler(max_checks=16)
    generated = []
    while not matcher.is_finished() and matcher.remaining > 0:
        token = sampler.sample(logits, matcher, rng).token_id
        if token in smollm2_vocab.eos_token_ids:
            break
        matcher.advance(token)
        generated.append(token)
    assert matcher.is_accepting() and len(generated) <= 3
    text = smollm2_vocab.decode([*prefix_ids, *generated]).decode()
    jsonschema.validate(json.loads(text), schema)


def test_a_long_shortest_completion_is_started_early_enough(smollm2_vocab, smollm2_tokenizer) -> None:
    import jsonschema

    item = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "id": {"type": "integer"}},
        "required": ["name", "id"],
        "additionalProperties": False,
    }
    schema = {"type": "array", "items": item, "minItems": 10}
    constraint = compile_json_schema(schema, smollm2_vocab)
    needed = shortest_completion(constraint.automaton).distance(
        constraint.automaton.initial_state(), lambda: JSON_START
    )
    window = 64
    # Longer than the window: checked only inside it, the budget would be lost when it opened.
    assert needed is not None and needed > window
    max_tokens = needed + 30
    matcher = BudgetMatcher(constraint.automaton, max_tokens, window=window)
    # A model that never stops: it fills every string with " there", and knows the structure.
    encode = functools.partial(smollm2_tokenizer, add_special_tokens=False)
    logits = np.zeros(smollm2_vocab.size, dtype=np.float32)
    logits[encode('[{"name":"","id":12},{"name":"x","id":3}]')["input_ids"]] = 12.0
    logits[encode(" there")["input_ids"][0]] = 14.0
    rng = np.random.default_rng(0)
    sampler = RejectionSampler(max_checks=32, estimate_weight=False)
    generated, first_active = [], None
    while not matcher.is_finished() and matcher.remaining > 0:
        if first_active is None and matcher.budget_active():
            first_active = matcher.remaining
        token = sampler.sample(logits, matcher, rng).token_id
        if token in smollm2_vocab.eos_token_ids:
            break
        matcher.advance(token)
        generated.append(token)
    assert first_active is not None and first_active > window
    assert matcher.is_accepting() and len(generated) <= max_tokens
    text = smollm2_vocab.decode(generated).decode()
    assert " there" in text  # the model had its way before the budget took over
    jsonschema.validate(json.loads(text), schema)
