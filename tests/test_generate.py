"""structgen.generate: the decode loop on the default model, forced tokens, stop reasons, errors."""

from __future__ import annotations

import re

import pytest
import torch

from structgen.errors import IncompleteOutputError, RegexError
from structgen.generate import GenerationResult, generate
from structgen.pipeline import DecodingBatch, Step

PHONE = r"\d{3}-\d{4}"


# ---------------------------------------------------------------------------------------------
# Argument errors: raised before any model is loaded


def test_invalid_regex_is_reported_before_loading_a_model() -> None:
    with pytest.raises(RegexError, match="invalid regex"):
        generate(prompt="anything", regex="(ab", model="/nonexistent/model.gguf")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"regex": "a", "grammar": "start: 'a'"}, "at most one"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"sampler": "beam"}, "unknown sampler"),
        ({"sampler": "smc"}, "needs a constraint"),
    ],
)
def test_invalid_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        generate(prompt="anything", model="/nonexistent/model.gguf", **kwargs)


def test_missing_prompt_and_missing_model_path() -> None:
    with pytest.raises(TypeError, match="needs a prompt"):
        generate()
    with pytest.raises(FileNotFoundError, match="no model at"):
        generate("/nonexistent/model.gguf", "prompt")


def test_incomplete_result_value_raises() -> None:
    result = GenerationResult("12", [1, 2], {"stopped": "length"}, "regex", complete=False)
    with pytest.raises(IncompleteOutputError, match=r"incomplete.*max_new_tokens"):
        _ = result.value
    assert GenerationResult('{"a": 1}', [], {}, "schema").value == {"a": 1}
    assert GenerationResult("abc", [], {}, "regex").value == "abc"


# ---------------------------------------------------------------------------------------------
# With the default model


@pytest.mark.slow
def test_greedy_regex_fullmatch_and_stats(default_model) -> None:
    result = generate("Give me a phone number", regex=PHONE, temperature=0)
    assert re.fullmatch(PHONE, result.text)
    assert result.complete and result.value == result.text
    stats = result.stats
    assert stats["tokens"] == len(result.token_ids) > 0
    assert stats["stopped"] == "finished"
    for key in ("seconds", "model_seconds", "constraint_seconds", "compile_seconds"):
        assert stats[key] >= 0
    assert stats["model_seconds"] + stats["constraint_seconds"] <= stats["seconds"]
    assert stats["forward_passes"] == stats["sampled_tokens"]
    # Greedy decoding is deterministic.
    assert generate("Give me a phone number", regex=PHONE, temperature=0).token_ids == result.token_ids


@pytest.mark.slow
@pytest.mark.parametrize("sampler", [None, "mask", "awrs"])
def test_sampling_regex_fullmatch_and_seed(default_model, sampler) -> None:
    pattern = r"\(\d{3}\) \d{3}-\d{4}|[A-Z][a-z]{1,8} [A-Z][a-z]{1,8}"
    results = [
        generate(
            "Give me a phone number or a name", regex=pattern, seed=seed, sampler=sampler, max_new_tokens=40
        )
        for seed in (1, 2, 1)
    ]
    for result in results:
        assert re.fullmatch(pattern, result.text), result.text
        assert result.complete
    assert results[0].token_ids == results[2].token_ids


@pytest.mark.slow
def test_smc_sampler(default_model) -> None:
    result = generate("Give me a phone number", regex=PHONE, sampler="smc", particles=3, seed=0)
    assert re.fullmatch(PHONE, result.text)
    smc = result.stats["smc"]
    assert smc["particles"] == 3 and len(smc["texts"]) == 3
    for text in smc["texts"]:
        assert re.fullmatch(PHONE, text)
    assert smc["texts"][smc["chosen"]] == result.text


@pytest.mark.slow
def test_forced_tokens_are_appended_without_sampling(default_model) -> None:
    _, tokenizer, vocab = default_model
    pattern = r"The answer is: (yes|no)\."
    result = generate("Is water wet?", regex=pattern, temperature=0)
    assert re.fullmatch(pattern, result.text)
    assert result.stats["forced_tokens"] >= 3
    assert result.stats["sampled_tokens"] + result.stats["forced_tokens"] == result.stats["tokens"]
    # The forced prefix uses the tokenizer's canonical tokens.
    prefix_ids = tokenizer("The answer is:", add_special_tokens=False)["input_ids"]
    assert result.token_ids[: len(prefix_ids) - 1] == prefix_ids[:-1]
    # A constraint that fixes the whole output needs no forward pass at all.
    fixed = generate("Say hello", regex=r"Hello, world!")
    assert fixed.text == "Hello, world!"
    assert fixed.stats["forward_passes"] == 0 and fixed.stats["sampled_tokens"] == 0
    assert fixed.stats["stopped"] == "finished"
    assert vocab.decode(fixed.token_ids) == b"Hello, world!"


@pytest.mark.slow
def test_token_limit_gives_an_incomplete_result(default_model) -> None:
    result = generate("Count", regex=r"\d{30}", max_new_tokens=3, temperature=0)
    assert result.stats["stopped"] == "length"
    assert len(result.token_ids) == 3
    assert not result.complete
    with pytest.raises(IncompleteOutputError):
        _ = result.value
    # A complete match that could go on is complete even when cut by the limit.
    open_ended = generate("Count", regex=r"\d+", max_new_tokens=3, temperature=0)
    assert open_ended.complete or open_ended.stats["stopped"] != "length"
    assert re.fullmatch(r"\d+", open_ended.text)


@pytest.mark.slow
def test_unconstrained_generation_and_raw_prompt(default_model) -> None:
    result = generate("Say hi", max_new_tokens=5, temperature=0)
    assert result.kind is None
    assert 0 < len(result.token_ids) <= 5
    assert result.stats["stopped"] in ("eos", "length")
    raw = generate("The capital of France is", max_new_tokens=3, temperature=0, chat_template=False)
    assert len(raw.token_ids) == 3


@pytest.mark.slow
def test_extra_step_sees_rows_and_changes_scores(default_model) -> None:
    _, _, vocab = default_model
    banned = [i for i, b in enumerate(vocab.token_bytes) if b is not None and b"5" in b]
    seen: list[tuple[int, str]] = []

    class BanFives(Step):
        def __call__(self, batch: DecodingBatch, scores: torch.Tensor) -> torch.Tensor:
            row = batch[0]
            assert row.matcher is not None and not row.matcher.is_finished()
            seen.append((len(row.token_ids), row.text))
            scores[:, banned] = float("-inf")
            return scores

    result = generate(
        "Give me a phone number with many fives", regex=PHONE, temperature=0, steps=[BanFives()]
    )
    assert re.fullmatch(PHONE, result.text) and "5" not in result.text
    lengths = [n for n, _ in seen]
    assert lengths[0] == 0 and lengths == sorted(set(lengths))
    assert seen[-1][1] == result.text[: len(seen[-1][1])]
    assert result.stats["steps_seconds"] > 0


@pytest.mark.slow
def test_model_object_and_path_arguments(default_model) -> None:
    from structgen.models import default_model_path, resolve_model

    model, tokenizer, vocab = default_model
    with pytest.raises(ValueError, match="tokenizer="):
        generate(model, "hi", regex=PHONE)
    with pytest.raises(ValueError, match="without model="):
        resolve_model(None, tokenizer)
    result = generate(model, "Give me a phone number", tokenizer=tokenizer, regex=PHONE, temperature=0)
    assert re.fullmatch(PHONE, result.text)
    loaded = resolve_model(default_model_path())
    assert loaded.model is model  # cached: the GGUF file is read once per process
    assert loaded.vocab.size == vocab.size


@pytest.mark.slow
def test_constraint_for_another_vocabulary_is_refused(default_model) -> None:
    from structgen.compilers.regex import compile_regex
    from structgen.vocabulary import Vocabulary

    digits = Vocabulary.from_token_bytes(
        [None, *(str(d).encode() for d in range(10)), b"-"], [0], name="digits"
    )
    with pytest.raises(ValueError, match="compiled for vocabulary 'digits'"):
        generate("hi", constraint=compile_regex(PHONE, digits))


@pytest.mark.slow
def test_precompiled_constraint(default_model, smollm2_vocab) -> None:
    from structgen.compilers.regex import compile_regex

    result = generate("Give me a phone number", constraint=compile_regex(PHONE, smollm2_vocab), temperature=0)
    assert re.fullmatch(PHONE, result.text) and result.kind == "constraint"


@pytest.mark.slow
def test_schema_value_and_grammar(default_model) -> None:
    import jsonschema

    schema = {
        "type": "object",
        "properties": {"answer": {"type": "boolean"}, "confidence": {"type": "integer", "minimum": 0}},
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    }
    result = generate("Is water wet? Answer in JSON.", schema=schema, temperature=0, max_new_tokens=80)
    assert result.kind == "schema"
    jsonschema.validate(result.value, schema)
    answer = generate("Is the sky blue?", grammar='start: "yes" | "no"', temperature=0)
    assert answer.text in ("yes", "no") and answer.kind == "grammar"


@pytest.mark.slow
def test_kv_cache_reorder_for_smc(default_model) -> None:
    import numpy as np

    from structgen.generate import _CachedModel

    model, tokenizer, vocab = default_model
    first = tokenizer("The cat sat on", add_special_tokens=False)["input_ids"]
    second = tokenizer("A dog ran to", add_special_tokens=False)["input_ids"]
    assert len(first) == len(second)
    lm = _CachedModel(model, vocab.size)
    lm.forward([first, second])
    lm.reorder([1, 1])
    both = lm.forward([[7], [7]])
    alone = _CachedModel(model, vocab.size).forward([[*second, 7]])
    np.testing.assert_allclose(both[0], alone[0], atol=1e-3)
    np.testing.assert_allclose(both[1], alone[0], atol=1e-3)
    result = generate(
        "Give me a phone number", regex=PHONE, sampler="smc", particles=4, ess_threshold=1.0, seed=3
    )
    assert result.stats["smc"]["resamples"] > 0
    assert re.fullmatch(PHONE, result.text)


@pytest.mark.slow
def test_token_budget_makes_tight_outputs_complete(default_model) -> None:
    import json

    import jsonschema

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["name", "tags"],
    }
    prompt = "Describe a cat as JSON with a long name and many tags."
    for seed in (0, 1):
        result = generate(prompt, schema=schema, max_new_tokens=24, seed=seed)
        assert result.complete, result.text
        assert len(result.token_ids) <= 24
        jsonschema.validate(json.loads(result.text), schema)
        assert result.stats["budget_steps"] > 0
    free = generate(prompt, regex=r"[a-z ]+\.", max_new_tokens=6, seed=0)
    assert free.complete and re.fullmatch(r"[a-z ]+\.", free.text)
    off = generate(prompt, regex=r"[a-z ]+\.", max_new_tokens=6, seed=0, token_budget=False)
    assert off.stats["budget_steps"] == 0
