"""AWRS inside transformers' ``model.generate``: ``LogitsProcessor(..., steps=[RejectionSamplingStep()])``.

A batch of four prompts, each with its own regex, decoded by the default model twice: once with the
processor's full-mask step (transformers then samples among the allowed tokens) and once with the
:class:`~structgen.sampling.step.RejectionSamplingStep`, which picks each token by adaptive
weighted rejection sampling (a few single-token checks instead of a mask over all 49,152 ids) and
leaves only that token a finite score, so ``generate`` emits it whatever its decoding mode.
Prints the outputs, the time spent in the processor per call and AWRS's checks per token.

Run from the repository root: ``python examples/awrs_logits_processor.py``
"""

from __future__ import annotations

import re

import torch

from structgen.compilers.regex import compile_regex
from structgen.models import resolve_model
from structgen.processor import LogitsProcessor
from structgen.sampling.base import SamplingParams
from structgen.sampling.step import RejectionSamplingStep

BATCH = [
    ("Give me a phone number.", r"\d{3}-\d{4}"),
    ("Is the sky blue? Answer yes or no.", r"(yes|no)"),
    ("Write an email address for Ada Lovelace.", r"[a-z0-9._]{1,20}@[a-z0-9]{1,15}\.(com|org|net)"),
    ("How old is the universe, in billions of years?", r"1[0-9]\.[0-9] billion years"),
]


def main() -> None:
    """Decode the batch with the mask step and with the AWRS step; check every row."""
    loaded = resolve_model()  # the default model: (model, tokenizer, vocab)
    model, tokenizer = loaded.model, loaded.tokenizer
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
        )
        for p, _ in BATCH
    ]
    tokenizer.padding_side = "left"  # decoder-only models need left padding in a batch
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    constraints = [compile_regex(pattern, loaded.vocab) for _, pattern in BATCH]
    end = model.generation_config.eos_token_id  # the id generate() stops on

    # The AWRS step samples with its own parameters (temperature 0.8 here); generate's own
    # temperature/top-k would only see one finite score, so greedy decoding is the natural mode.
    awrs = RejectionSamplingStep(SamplingParams(temperature=0.8), seed=0)
    runs = {
        "full mask + transformers sampling": (LogitsProcessor(constraints, eos_token_id=end), True),
        "AWRS step": (LogitsProcessor(constraints, steps=[awrs], eos_token_id=end), False),
    }
    torch.manual_seed(0)
    for name, (processor, do_sample) in runs.items():
        options = {"do_sample": True, "temperature": 0.8} if do_sample else {"do_sample": False}
        output = model.generate(
            **inputs,
            logits_processor=[processor],
            max_new_tokens=32,
            pad_token_id=tokenizer.pad_token_id,
            **options,
        )
        calls = processor.stats["calls"]
        per_call = 1000 * processor.stats["constraint_seconds"] / max(calls, 1)
        # The pipeline's share: the mask step, or the AWRS step (the rest is row tracking).
        in_steps = 1000 * processor.pipeline.total_seconds / max(calls, 1)
        print(
            f"== {name}: {calls} calls; per call (batch of {len(BATCH)}) {per_call:.2f} ms in the "
            f"processor, of which {in_steps:.2f} ms in its pipeline step"
        )
        for (prompt, pattern), row in zip(BATCH, output[:, inputs["input_ids"].shape[1] :], strict=True):
            text = tokenizer.decode(row, skip_special_tokens=True)
            assert re.fullmatch(pattern, text), (pattern, text)
            print(f"  {prompt!r} ~ /{pattern}/ -> {text!r}")
    checks = awrs.checks_per_token
    print(
        f"AWRS: {awrs.sampled_tokens} sampled tokens, {sum(checks) / len(checks):.2f} checks per token "
        f"(max {max(checks)}), {awrs.fallbacks} mask fallbacks"
    )
    for (_, pattern), stats in zip(BATCH, awrs.rows, strict=True):
        # exp(log_weight) estimates (unbiasedly) how much of the model's tempered probability
        # respected the constraint along the row.
        print(
            f"  /{pattern}/: {stats.tokens} tokens, {stats.checks} checks, log weight {stats.log_weight:.2f}"
        )


if __name__ == "__main__":
    main()
