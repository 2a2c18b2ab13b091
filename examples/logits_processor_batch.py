"""Constrain transformers' own ``model.generate`` with ``structgen.LogitsProcessor``.

A batch of four prompts, each with its own regex, decoded greedily, by sampling and by beam search.
Run: python examples/logits_processor_batch.py
"""

from __future__ import annotations

import re

import torch

from structgen.compilers.regex import compile_regex
from structgen.models import resolve_model
from structgen.processor import LogitsProcessor

BATCH = [
    ("Give me a phone number.", r"\d{3}-\d{4}"),
    ("Is the sky blue? Answer yes or no.", r"(yes|no)"),
    ("Name a colour and an animal.", r"(red|green|blue) (cat|dog|fish)"),
    ("How old is the universe, in billions of years?", r"1[0-9]\.[0-9] billion years"),
]


def main() -> None:
    """Run the batch under three decoding modes and check every row against its regex."""
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
    # One constraint per prompt; with beam search all beams of a prompt share it.
    constraints = [compile_regex(pattern, loaded.vocab) for _, pattern in BATCH]
    modes = {
        "greedy": {"do_sample": False},
        "sampling": {"do_sample": True, "temperature": 0.8},
        "beam search (4 beams)": {"num_beams": 4, "do_sample": False},
    }
    torch.manual_seed(0)
    for name, options in modes.items():
        # eos_token_id: end rows with the id generate() stops on (SmolLM2's vocabulary has two).
        processor = LogitsProcessor(
            constraints,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=model.generation_config.eos_token_id,
        )
        output = model.generate(**inputs, logits_processor=[processor], max_new_tokens=24, **options)
        print(f"== {name}: {processor.stats['constraint_seconds'] * 1000:.1f} ms in the processor")
        for (prompt, pattern), row in zip(BATCH, output[:, inputs["input_ids"].shape[1] :], strict=True):
            text = tokenizer.decode(row, skip_special_tokens=True)
            assert re.fullmatch(pattern, text), (pattern, text)
            print(f"  {prompt!r} ~ /{pattern}/ -> {text!r}")


if __name__ == "__main__":
    main()
