"""Constrained sampling with AWRS on the default model, token by token.

Decodes a US phone number with SmolLM2-135M-Instruct, choosing every token with the adaptive
weighted rejection sampler (a few ``matcher.accepts`` checks instead of a full mask), and prints
for each token the checks it took, whether it fell back to the full mask, and the weight estimate
(the allowed share of the model's probability). The same steps with :class:`MaskSampler` give the
exact weight for comparison.

Run from the repository root: ``python examples/awrs_sampling.py``
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from structgen.compilers.regex import compile_regex
from structgen.generate import encode_prompt
from structgen.models import resolve_model
from structgen.sampling.base import SamplingParams
from structgen.sampling.mask import MaskSampler
from structgen.sampling.rejection import RejectionSampler

PATTERN = r"\(\d{3}\) \d{3}-\d{4}"
PROMPT = "Give me a US phone number for a pizza place."


def main() -> None:
    """Decode one constrained output, printing AWRS's work per token."""
    loaded = resolve_model(None)
    vocab = loaded.vocab
    constraint = compile_regex(PATTERN, vocab)
    matcher = constraint.matcher()
    params = SamplingParams(temperature=0.8)
    awrs = RejectionSampler(params, max_checks=32)
    exact = MaskSampler(params)
    rng = np.random.default_rng(0)

    cache_arg = (
        "cache" if "cache" in inspect.signature(loaded.model.forward).parameters else "past_key_values"
    )
    cache = None
    pending = encode_prompt(loaded.tokenizer, PROMPT, True)
    generated: list[int] = []
    print(f"{'token':<10}{'checks':>7}{'mask?':>7}{'AWRS log w':>12}{'exact log Z':>13}")
    while not matcher.is_finished():
        with torch.inference_mode():
            out = loaded.model(input_ids=torch.tensor([pending]), use_cache=True, **{cache_arg: cache})
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        logits = out.logits[0, -1].float().numpy()
        choice = awrs.sample(logits, matcher, rng)
        log_z = exact.sample(logits, matcher, np.random.default_rng(1)).log_weight
        fallback = "yes" if choice.mask_fallback else ""
        print(
            f"{vocab.describe(choice.token_id):<10}{choice.checks:>7}{fallback:>7}"
            f"{choice.log_weight:>12.3f}{log_z:>13.3f}"
        )
        if choice.token_id in vocab.eos_token_ids:
            break
        matcher.advance(choice.token_id)
        generated.append(choice.token_id)
        pending = [choice.token_id]
    text = vocab.decode(generated).decode("utf-8")
    print(f"\noutput: {text!r}  (matches: {matcher.is_accepting()})")


if __name__ == "__main__":
    main()
