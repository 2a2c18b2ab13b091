"""Sequential Monte Carlo with AWRS weights on the default model.

Eight particles write a date in ISO format for a prompt, as one batch through the KV-cached model;
each token comes from the adaptive weighted rejection sampler, whose weight estimate is the
particle's incremental importance weight. When the effective sample size drops below half the
particles, they are resampled and the model's cache rows are reordered to follow (``parents``).
Prints every particle with its normalized weight and the log marginal-likelihood estimate
(the log probability, under the model, that its output satisfies the constraint).

Run from the repository root: ``python examples/smc.py``
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from structgen.compilers.regex import compile_regex
from structgen.generate import encode_prompt
from structgen.models import resolve_model
from structgen.sampling.smc import SequentialMonteCarlo

PATTERN = r"(19|20)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
PROMPT = "On what date did Apollo 11 land on the moon? Answer with the date only."
PARTICLES = 8


class BatchedModel:
    """The ``next_logits`` callback: one forward pass for all particles, KV cache kept and reordered."""

    def __init__(self, model, prompt_ids: list[int]) -> None:
        self.model = model
        self.prompt_ids = prompt_ids
        self.cache = None
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    @torch.inference_mode()
    def __call__(self, token_ids: list[list[int]], parents: np.ndarray | None) -> np.ndarray:
        if self.cache is None:
            batch = [self.prompt_ids] * len(token_ids)
        else:
            if parents is not None:
                self.cache.reorder_cache(torch.as_tensor(parents, dtype=torch.long))
            # Each row appends its newest token (a finished particle repeats EOS; SMC ignores it).
            batch = [[ids[-1]] for ids in token_ids]
        out = self.model(input_ids=torch.tensor(batch), use_cache=True, **{self.cache_arg: self.cache})
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return out.logits[:, -1].float().numpy()


def main() -> None:
    """Run SMC once and print the particles."""
    loaded = resolve_model(None)
    vocab = loaded.vocab
    constraint = compile_regex(PATTERN, vocab)
    model = BatchedModel(loaded.model, encode_prompt(loaded.tokenizer, PROMPT, True))
    smc = SequentialMonteCarlo(constraint, model, n_particles=PARTICLES, ess_threshold=0.5, max_tokens=16)
    result = smc.run(np.random.default_rng(0))
    print(f"{result.steps} steps, {result.n_resamples} resamplings, {result.checks} constraint checks")
    for tokens, weight, finished in zip(result.token_ids, result.weights, result.finished, strict=True):
        text = vocab.decode(tokens).decode("utf-8", errors="replace")
        print(f"  weight {weight:.3f}  {'done' if finished else 'cut '}  {text!r}")
    print(f"log marginal likelihood estimate: {result.log_marginal_likelihood:.3f}")
    print(f"highest-weight output: {vocab.decode(result.best()).decode('utf-8')!r}")


if __name__ == "__main__":
    main()
