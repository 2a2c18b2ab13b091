"""``structgen.generate``: constrained generation with structgen's own decode loop.

The loop keeps the model's KV cache (``past_key_values``) and runs one forward pass per step:
logits -> pipeline steps (optional, e.g. penalties) -> token sampler (which enforces the
constraint) -> ``Matcher.advance``. Where the constraint leaves no choice, the forced continuation
(``Matcher.forced_tokens``, tokenized canonically by the model's tokenizer) is appended without
sampling and fed to the model in the same forward pass as the sampled token before it.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from structgen.completion import BudgetMatcher, budgeted_matcher
from structgen.errors import IncompleteOutputError
from structgen.matcher import Constraint, Matcher
from structgen.models import LoadedModel, resolve_model
from structgen.pipeline import DecodingBatch, DecodingRow, LogitsPipeline, Step
from structgen.sampling.base import SamplingParams, TokenSampler
from structgen.vocabulary import Vocabulary

#: Sampler used when ``sampler=None``.
DEFAULT_SAMPLER = "awrs"
SAMPLER_NAMES = ("mask", "awrs", "smc")


@dataclass
class GenerationResult:
    """What :func:`generate` returns.

    ``text`` is the exact generated text (from the tokens' bytes; EOS is not included),
    ``token_ids`` the generated ids (EOS excluded), ``kind`` the constraint type (``"regex"``,
    ``"schema"``, ``"grammar"``, ``"constraint"`` or ``None``), ``complete`` whether the output is a
    full match of the constraint (unconstrained: whether the model ended it). ``stats`` has
    ``tokens``, ``sampled_tokens``, ``forced_tokens``, ``prompt_tokens``, ``forward_passes``,
    ``seconds`` (the whole call, model loading excluded), ``model_seconds`` (forward passes),
    ``constraint_seconds`` (sampler + matcher work: masks, checks, forced tokens),
    ``steps_seconds`` (extra pipeline steps), ``compile_seconds``, ``budget_steps`` (tokens decided
    under the token-budget test), ``stopped`` (``"eos"``,
    ``"finished"``: the constraint allowed nothing more, or ``"length"``) and ``sampler``.
    """

    text: str
    token_ids: list[int]
    stats: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None
    complete: bool = True

    @property
    def value(self) -> Any:
        """The parsed JSON for a schema, else the text; raises if the output is incomplete."""
        if not self.complete:
            raise IncompleteOutputError(
                f"the output is incomplete: generation stopped ({self.stats.get('stopped')}) after "
                f"{len(self.token_ids)} tokens before the {self.kind or 'output'} was complete; "
                f"raise max_new_tokens. Partial text: {self.text[:200]!r}"
            )
        if self.kind == "schema":
            return json.loads(self.text)
        return self.text


def build_constraint(
    vocab: Vocabulary,
    *,
    regex: str | None = None,
    schema: Any = None,
    grammar: str | None = None,
    constraint: Constraint | None = None,
) -> tuple[Constraint | None, str | None]:
    """Compile the one constraint given (or none) for ``vocab``; returns ``(constraint, kind)``.

    ``schema`` is a dict, a JSON string or a pydantic model class; ``grammar`` is Lark grammar
    text; ``constraint`` is an already compiled constraint, which must be for the same vocabulary.
    """
    given = {
        name: value
        for name, value in (
            ("regex", regex),
            ("schema", schema),
            ("grammar", grammar),
            ("constraint", constraint),
        )
        if value is not None
    }
    if len(given) > 1:
        raise ValueError(
            f"give at most one of regex=, schema=, grammar=, constraint= (got {', '.join(given)})"
        )
    if not given:
        return None, None
    kind, value = next(iter(given.items()))
    if kind == "regex":
        if not isinstance(value, str):
            raise TypeError(f"regex must be a string, got {type(value).__name__}")
        from structgen.compilers.regex import compile_regex

        return compile_regex(value, vocab), kind
    if kind == "schema":
        from structgen.compilers.json_schema import compile_json_schema

        return compile_json_schema(_schema_object(value), vocab), kind
    if kind == "grammar":
        if not isinstance(value, str):
            raise TypeError(f"grammar must be Lark grammar text, got {type(value).__name__}")
        from structgen.compilers.grammar import compile_grammar

        return compile_grammar(value, vocab), kind
    if not isinstance(value, Constraint):
        raise TypeError(f"constraint must be a structgen Constraint, got {type(value).__name__}")
    if value.vocab is not vocab and value.vocab != vocab:
        raise ValueError(
            f"the constraint was compiled for vocabulary {value.vocab.name!r} ({value.vocab.size} ids), "
            f"not for this model's {vocab.name!r} ({vocab.size} ids)"
        )
    return value, kind


def _schema_object(schema: Any) -> Any:
    """Accept a JSON Schema as a dict/bool, JSON text or a pydantic model class."""
    if isinstance(schema, (dict, bool)):
        return schema
    if isinstance(schema, str):
        try:
            return json.loads(schema)
        except json.JSONDecodeError as exc:
            from structgen.errors import SchemaError

            raise SchemaError(f"schema string is not valid JSON: {exc}") from exc
    to_schema = getattr(schema, "model_json_schema", None)
    if callable(to_schema):
        return to_schema()
    raise TypeError(
        f"schema must be a dict, JSON text or a pydantic model class, got {type(schema).__name__}"
    )


def make_sampler(sampler: str | TokenSampler | None, params: SamplingParams) -> TokenSampler:
    """The token sampler named ``sampler`` (``None`` = :data:`DEFAULT_SAMPLER`) with ``params``."""
    if isinstance(sampler, TokenSampler):
        return sampler
    name = DEFAULT_SAMPLER if sampler is None else sampler
    if name == "mask":
        from structgen.sampling.mask import MaskSampler

        return MaskSampler(params)
    if name == "awrs":
        from structgen.sampling.rejection import RejectionSampler

        return RejectionSampler(params)
    raise ValueError(
        f"unknown sampler {name!r}; choose one of {', '.join(SAMPLER_NAMES)} or pass a TokenSampler"
    )


def encode_prompt(tokenizer: Any, prompt: str | Sequence[dict[str, str]], chat_template: bool) -> list[int]:
    """Token ids of the prompt; with ``chat_template`` (and a tokenizer that has one) as a user turn.

    ``prompt`` may also be a list of chat messages (``{"role": ..., "content": ...}``), which
    requires a chat template.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if not isinstance(prompt, str):
        if not has_template or not chat_template:
            raise ValueError("a list of chat messages needs a tokenizer with a chat template")
        messages = list(prompt)
    elif chat_template and has_template:
        messages = [{"role": "user", "content": prompt}]
    else:
        return list(tokenizer(prompt)["input_ids"])
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class _CachedModel:
    """Forward passes of a causal LM over a growing sequence, keeping the KV cache."""

    def __init__(self, model: Any, width: int) -> None:
        self.model = model
        self.width = width
        self.cache: Any = None
        self.seconds = 0.0
        self.passes = 0
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache; older versions only know the old name.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # Only the last position's logits are needed: skip the output layer for the rest.
        self._keep_last = "logits_to_keep" in params

    @torch.inference_mode()
    def forward(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Feed ``token_ids`` ``[rows][n]`` after what was fed so far; float32 logits ``[rows, V']``."""
        start = time.perf_counter()
        kwargs: dict[str, Any] = {self._cache_arg: self.cache, "use_cache": True}
        if self._keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=torch.tensor(token_ids, dtype=torch.long), **kwargs)
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        logits = out.logits[:, -1, :].float().numpy()
        self.seconds += time.perf_counter() - start
        self.passes += 1
        return logits

    def reorder(self, parents: Sequence[int]) -> None:
        """Make row ``i`` of the cache a copy of row ``parents[i]`` (SMC resampling)."""
        if not hasattr(self.cache, "reorder_cache"):
            raise TypeError(f"cannot reorder a KV cache of type {type(self.cache).__name__}")
        self.cache.reorder_cache(torch.as_tensor(list(parents), dtype=torch.long))


def _sample_unconstrained(
    logits: np.ndarray, size: int, params: SamplingParams, rng: np.random.Generator
) -> int:
    """Sample from the proposal (temperature, top-k, top-p) over ids ``< size`` without a constraint."""
    from structgen.sampling.mask import check_logits, proposal_scores

    logits = check_logits(logits)
    if params.greedy:
        return int(np.argmax(logits[:size]))
    scores, log_total = proposal_scores(logits, size, params)
    if log_total == -math.inf:
        raise ValueError("every logit is -inf: nothing can be sampled")
    probs = np.exp(scores - log_total)
    cumulative = np.cumsum(probs)
    token = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(token, size - 1)


def generate(
    model: Any = None,
    prompt: str | Sequence[dict[str, str]] | None = None,
    *,
    tokenizer: Any = None,
    regex: str | None = None,
    schema: Any = None,
    grammar: str | None = None,
    constraint: Constraint | None = None,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    sampler: str | TokenSampler | None = None,
    particles: int = 8,
    ess_threshold: float = 0.5,
    chat_template: bool = True,
    steps: Sequence[Step] = (),
    token_budget: bool = True,
) -> GenerationResult:
    """Generate text for ``prompt``, constrained by one of ``regex``/``schema``/``grammar``/``constraint``.

    ``model`` is ``None`` (the default SmolLM2-135M-Instruct), a model path (folder or ``.gguf``
    file) or a loaded causal LM with ``tokenizer``. ``generate("prompt", regex=...)`` (one
    positional string) uses the default model. With ``chat_template`` the prompt is sent as a user
    turn through the tokenizer's chat template when it has one (``False`` sends the raw text).

    ``temperature=0`` is greedy decoding; ``top_k``/``top_p`` filter the distribution; ``seed``
    makes sampling reproducible. ``sampler`` is ``"mask"`` (full mask every step), ``"awrs"``
    (adaptive weighted rejection sampling), ``"smc"`` (sequential Monte Carlo over ``particles``
    sequences, resampling when the effective sample size falls under ``ess_threshold`` times the
    particle count) or a :class:`TokenSampler`. ``steps`` are extra pipeline steps run on the
    logits before the sampler.

    Generation stops at EOS, when the constraint allows nothing more (nothing is appended after),
    or after ``max_new_tokens`` tokens (``stats["stopped"] == "length"``; ``.value`` then raises
    unless the output is already a complete match).

    With ``token_budget`` (the default) the budget is part of the constraint: the output must be a
    complete match of at most ``max_new_tokens`` tokens, and near the end of the budget only
    tokens after which the output can still be completed in time are allowed
    (:class:`~structgen.completion.BudgetMatcher`; ``stats["budget_steps"]`` counts the tokens
    decided under that test). This needs the shortest completion of the current state to be
    found by a bounded search, which fails for far completions of constraints with free content
    (JSON missing several required keys): the test is then off and the output may still be cut.
    """
    if prompt is None:
        if isinstance(model, str) or (isinstance(model, list) and model and isinstance(model[0], dict)):
            model, prompt = None, model
        else:
            raise TypeError("generate() needs a prompt")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    if isinstance(sampler, str) and sampler not in SAMPLER_NAMES:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLER_NAMES)}")
    pipeline = LogitsPipeline(steps)
    pipeline.reset()  # the steps may have been used by an earlier generation
    n_given = sum(x is not None for x in (regex, schema, grammar, constraint))
    if n_given > 1:
        raise ValueError("give at most one of regex=, schema=, grammar=, constraint=")
    if sampler == "smc":
        if n_given == 0:
            raise ValueError("sampler='smc' needs a constraint (regex=, schema=, grammar= or constraint=)")
        if pipeline.steps:
            raise ValueError("extra pipeline steps are not supported with sampler='smc'")
    if isinstance(regex, str):
        # Reject a bad pattern before loading the model (the result is cached for the compile).
        from structgen.automata.regex import regex_to_byte_dfa

        regex_to_byte_dfa(regex)
    loaded = resolve_model(model, tokenizer)
    start = time.perf_counter()
    compiled, kind = build_constraint(
        loaded.vocab, regex=regex, schema=schema, grammar=grammar, constraint=constraint
    )
    compile_seconds = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    prompt_ids = encode_prompt(loaded.tokenizer, prompt, chat_template)
    if sampler == "smc":
        result = _decode_smc(
            loaded,
            prompt_ids,
            compiled,
            kind,
            params,
            particles,
            ess_threshold,
            max_new_tokens,
            rng,
            token_budget,
        )
    else:
        result = _decode(
            loaded, prompt_ids, compiled, kind, params, sampler, pipeline, max_new_tokens, rng, token_budget
        )
    result.stats["compile_seconds"] = compile_seconds
    result.stats["seconds"] = time.perf_counter() - start
    return result


def _decode(
    loaded: LoadedModel,
    prompt_ids: list[int],
    constraint: Constraint | None,
    kind: str | None,
    params: SamplingParams,
    sampler_arg: str | TokenSampler | None,
    pipeline: LogitsPipeline,
    max_new_tokens: int,
    rng: np.random.Generator,
    token_budget: bool,
) -> GenerationResult:
    """The single-sequence decode loop (greedy, sampling, mask or AWRS sampler)."""
    vocab = loaded.vocab
    tokenizer = loaded.tokenizer
    lm = _CachedModel(loaded.model, vocab.size)
    matcher: Matcher | None = None
    if constraint is not None:
        matcher = budgeted_matcher(constraint, max_new_tokens if token_budget else None)
    token_sampler = make_sampler(sampler_arg, params) if matcher is not None else None

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    generated: list[int] = []
    pending = list(prompt_ids)
    constraint_seconds = 0.0
    forced_count = 0
    sampled = 0
    checks = 0
    mask_fallbacks = 0
    budget_steps = 0
    log_weight = 0.0
    stopped = "length"
    while True:
        if matcher is not None and len(generated) < max_new_tokens:
            t0 = time.perf_counter()
            forced = matcher.forced_tokens(encode)[: max_new_tokens - len(generated)]
            for token in forced:
                matcher.advance(token)
            finished = matcher.is_finished()
            constraint_seconds += time.perf_counter() - t0
            generated.extend(forced)
            pending.extend(forced)
            forced_count += len(forced)
            if finished:
                stopped = "finished"
                break
        if len(generated) >= max_new_tokens:
            break
        logits = lm.forward([pending])[0]
        if pipeline.steps:
            batch = DecodingBatch([DecodingRow(matcher, generated, vocab)], step=sampled)
            scores = pipeline(batch, torch.from_numpy(logits).unsqueeze(0))
            logits = scores[0].float().numpy()
        t0 = time.perf_counter()
        if matcher is None:
            token = _sample_unconstrained(logits, vocab.size, params, rng)
        else:
            choice = token_sampler.sample(logits, matcher, rng)
            token = choice.token_id
            checks += choice.checks
            mask_fallbacks += int(choice.mask_fallback)
            log_weight += choice.log_weight
            budget_steps += int(isinstance(matcher, BudgetMatcher) and matcher.budget_active())
            if token not in vocab.eos_token_ids:
                matcher.advance(token)
        constraint_seconds += time.perf_counter() - t0
        sampled += 1
        if token in vocab.eos_token_ids:
            stopped = "eos"
            break
        generated.append(token)
        pending = [token]
        if matcher is not None and matcher.is_finished():
            stopped = "finished"
            break
    complete = matcher.is_accepting() if matcher is not None else stopped == "eos"
    text = vocab.decode(generated).decode("utf-8", errors="replace")
    stats: dict[str, Any] = {
        "tokens": len(generated),
        "sampled_tokens": sampled,
        "forced_tokens": forced_count,
        "prompt_tokens": len(prompt_ids),
        "forward_passes": lm.passes,
        "model_seconds": lm.seconds,
        "constraint_seconds": constraint_seconds,
        "steps_seconds": pipeline.total_seconds,
        "stopped": stopped,
        "sampler": _sampler_name(token_sampler),
        "checks": checks,
        "mask_fallbacks": mask_fallbacks,
        "budget_steps": budget_steps,
        "log_weight": log_weight,
    }
    return GenerationResult(text, generated, stats, kind, complete)


def _decode_smc(
    loaded: LoadedModel,
    prompt_ids: list[int],
    constraint: Constraint,
    kind: str | None,
    params: SamplingParams,
    particles: int,
    ess_threshold: float,
    max_new_tokens: int,
    rng: np.random.Generator,
    token_budget: bool,
) -> GenerationResult:
    """Sequential Monte Carlo over ``particles`` sequences sharing one batched, KV-cached model.

    The returned output is one particle drawn according to the final importance weights (a draw
    from the particle approximation of the constrained distribution); ``stats["smc"]`` has every
    particle's text and weight and the log marginal-likelihood estimate.
    """
    from structgen.sampling.rejection import RejectionSampler
    from structgen.sampling.smc import SequentialMonteCarlo

    if isinstance(particles, bool) or not isinstance(particles, int) or particles < 1:
        raise ValueError(f"particles must be a positive integer, got {particles!r}")
    vocab = loaded.vocab
    lm = _CachedModel(loaded.model, vocab.size)

    def next_logits(token_ids: list[list[int]], parents: np.ndarray | None) -> np.ndarray:
        if lm.cache is None:
            return lm.forward([prompt_ids] * len(token_ids))
        if parents is not None:
            lm.reorder(parents)
        # Every row gets one more token so the cache stays rectangular; a finished particle
        # repeats its EOS, whose logits SMC ignores.
        return lm.forward([[ids[-1]] for ids in token_ids])

    smc = SequentialMonteCarlo(
        budgeted_matcher(constraint, max_new_tokens if token_budget else None),
        next_logits,
        n_particles=particles,
        sampler=RejectionSampler(params),
        ess_threshold=ess_threshold,
        max_tokens=max_new_tokens,
    )
    start = time.perf_counter()
    run = smc.run(rng)
    seconds = time.perf_counter() - start
    total = run.weights.sum()
    # All weights zero means no particle stayed within the constraint's support; report particle 0.
    chosen = int(rng.choice(particles, p=run.weights / total)) if total > 0 else 0
    eos = set(vocab.eos_token_ids)
    outputs = [[t for t in ids if t not in eos] for ids in run.token_ids]
    texts = [vocab.decode(ids).decode("utf-8", errors="replace") for ids in outputs]
    generated = outputs[chosen]
    matcher = constraint.matcher()
    matcher.consume(generated)
    stopped = "eos" if run.finished[chosen] else "finished" if matcher.is_finished() else "length"
    stats: dict[str, Any] = {
        "tokens": len(generated),
        "sampled_tokens": len(run.token_ids[chosen]),
        "forced_tokens": 0,
        "prompt_tokens": len(prompt_ids),
        "forward_passes": lm.passes,
        "model_seconds": lm.seconds,
        # SMC interleaves sampling, checks and resampling: everything outside the model.
        "constraint_seconds": seconds - lm.seconds,
        "steps_seconds": 0.0,
        "stopped": stopped,
        "sampler": "smc",
        "checks": run.checks,
        "mask_fallbacks": run.mask_fallbacks,
        "budget_steps": run.budget_steps,
        "log_weight": float(run.log_weights[chosen]),
        "smc": {
            "particles": particles,
            "chosen": chosen,
            "texts": texts,
            "weights": run.weights.tolist(),
            "finished": run.finished.tolist(),
            "log_marginal_likelihood": run.log_marginal_likelihood,
            "resamples": run.n_resamples,
            "steps": run.steps,
        },
    }
    return GenerationResult(texts[chosen], generated, stats, kind, matcher.is_accepting())


def _sampler_name(sampler: TokenSampler | None) -> str | None:
    return None if sampler is None else type(sampler).__name__
