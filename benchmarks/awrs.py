"""AWRS on the default model: checks per token and per-token sampling cost vs full mask vs unconstrained.

The issue-5 benchmark. The default model (SmolLM2-135M-Instruct, float32, CPU, KV cache) generates
COMPLETE outputs for ``--schemas N`` JSON Schemas (default 50) drawn deterministically from the shared
JSONSchemaBench/MaskBench set (``<repo>/../shared/data/jsonschemabench/*.jsonl.gz``), spread across its
groups: each round visits every group in a seeded order and takes that group's next schema of a seeded
permutation, among the schemas with at least one valid test instance (proof that the schema can be met).
The prompt (chat template, user turn) asks for JSON matching the schema and includes the schema text
(compact, cut at ``--schema-chars``). Decoding stops at EOS, when the constraint allows nothing more, or
after the token limit (``--max-new-tokens``, raised for a schema whose smallest valid test instance needs
more: 1.5x its tokens), which is part of the constraint (every constrained sampler's matcher is a
:class:`~structgen.completion.BudgetMatcher`: near the end of the budget only tokens after which the
output can still be completed in time are allowed; ``--no-token-budget`` turns that off; the table counts
the tokens decided under that test). Every complete output is parsed and validated with ``jsonschema``
(the validator of the schema's ``$schema``, Draft 2020-12 when absent, with format checking, since
structgen asserts formats). Schemas whose compile raises a structgen ``ConstraintError`` are skipped and
counted (so are other compile exceptions, listed separately).

At every decoding step all samplers run on the *same* logits and the same decoding state:

- ``uncon``: unconstrained sampling with the samplers' own kernels (temperature/top-k/top-p, inverse CDF);
- ``mask``: :class:`MaskSampler`: the full bitmask, then sampling among the allowed tokens;
- ``awrs``: :class:`RejectionSampler` with the weight estimate (generate's default, and what SMC uses);
- ``awrs-nw``: :class:`RejectionSampler` without the weight run (enough for plain generation).

The sequence advances with the ``awrs`` token (distributed exactly as the mask sampler's). Each
constrained sampler has its own compiled constraint and matcher, advanced in lockstep, so the caches
it fills (masks per state, transitions) are its own: every call costs what it would in a standalone
decode of that sequence, and no sampler runs on caches another one warmed. For the same reason each
call is timed once by default (``--repeats``: a repeat on the same state hits the caches the first
call filled, so medians of repeats understate). Each sampler has its own random generator, so the
output depends only on ``--seed``; the call order of the four samplers rotates every step, so none
always runs first after the forward pass (on colder CPU caches: that cost AWRS ~100 us per token
when it always ran first). Every token is sampled (no forced-token shortcut), so the numbers
are per sampled token. The forward time per token is that of the decode steps (the prompt's prefill
is reported apart). Torch's intra-op threads are pinned with ``torch.set_num_threads(--threads)``,
1 by default: on the shared 2-core development machine two threads fought the other load and made
the forward pass about 5x slower (which would flatter the samplers' share); the samplers are
single-threaded.

    python benchmarks/awrs.py                        # the issue-5 run: 50 schemas, complete outputs
    python benchmarks/awrs.py --schemas 3            # a quick check
    python benchmarks/awrs.py --schemas 0 --regex    # the regex cases only
    python benchmarks/awrs.py --schemas Github_easy:2,Kubernetes:1   # given groups, first N each

Prints one summary table (and a line per case as it goes) and writes the raw per-token numbers to
``benchmarks/out/awrs.json``.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from structgen.completion import budgeted_matcher  # noqa: E402
from structgen.errors import ConstraintError  # noqa: E402
from structgen.generate import build_constraint, encode_prompt  # noqa: E402
from structgen.sampling import kernels  # noqa: E402
from structgen.sampling.base import SamplingParams, TokenSampler  # noqa: E402
from structgen.sampling.mask import MaskSampler, check_logits, filtered_scores  # noqa: E402
from structgen.sampling.rejection import RejectionSampler  # noqa: E402

SHARED = REPO / ".." / "shared"
BENCH = SHARED / "data" / "jsonschemabench"
SAMPLERS = ("uncon", "mask", "awrs", "awrs-nw")
LABELS = {
    "uncon": "unconstrained",
    "mask": "full mask",
    "awrs": "AWRS (weights)",
    "awrs-nw": "AWRS (no weights)",
}


@dataclass(frozen=True)
class Case:
    """One constraint to benchmark: ``kind`` is a keyword of ``build_constraint`` (regex/schema/grammar)."""

    name: str
    kind: str
    source: Any
    prompt: str
    # Compact text of the schema's shortest valid test instance: the token limit must hold it.
    smallest_instance: str = ""


REGEX_CASES = [
    Case("date", "regex", r"\d{4}-\d{2}-\d{2}", "What is the date of the first moon landing? ISO format."),
    Case("phone", "regex", r"\(\d{3}\) \d{3}-\d{4}", "Give a US phone number."),
    Case(
        "email", "regex", r"[a-z0-9._]{1,20}@[a-z0-9]{1,15}\.(com|org|net)", "Write an email address for Ada."
    ),
    Case(
        "person-json",
        "regex",
        r'\{"name": "[A-Z][a-z]{1,15} [A-Z][a-z]{1,15}", "age": [1-9][0-9]?, "city": "[A-Za-z ]{2,20}"\}',
        "Describe a famous scientist as JSON with name, age and city.",
    ),
    Case("sentence", "regex", r"[A-Z][a-z]+( [a-z]+){5,20}\.", "Describe the sea in one sentence."),
    Case("digits-free", "regex", r"[^0-9]{20,200}", "Tell me a short story about a robot."),
]


# --- schema cases ---------------------------------------------------------------------------------


def schema_prompt(schema: Any, max_chars: int) -> str:
    """The user turn asking for JSON that matches ``schema`` (its compact text, cut at ``max_chars``)."""
    text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    if len(text) > max_chars:
        text = text[:max_chars] + " ... (schema truncated)"
    return (
        "Reply with only a JSON value (no prose, no code fence) that is valid against this JSON Schema, "
        f"with realistic values:\n{text}"
    )


def schema_case(group: str, index: int, record: dict[str, Any], max_chars: int) -> Case:
    """A case for schema ``index`` of ``group``."""
    name = f"{group}/{record.get('id', index)}"
    valid = [
        json.dumps(t["data"], separators=(",", ":"), ensure_ascii=False)
        for t in record.get("tests", ())
        if t.get("valid")
    ]
    smallest = min(valid, key=len, default="")
    return Case(name, "schema", record["schema"], schema_prompt(record["schema"], max_chars), smallest)


def token_limit(case: Case, tokenizer: Any, args: argparse.Namespace) -> int:
    """``--max-new-tokens``, raised to 1.5x the tokens of the case's smallest known valid instance.

    Some schemas' smallest instances are longer than the default limit (many required
    properties); with a limit that no valid output fits, "every output validates" cannot be met
    by any sampler.
    """
    if not case.smallest_instance:
        return args.max_new_tokens
    needed = len(tokenizer.encode(case.smallest_instance, add_special_tokens=False))
    return max(args.max_new_tokens, -(-3 * needed // 2))


def read_group(group: str) -> list[dict[str, Any]]:
    """Every record of one JSONSchemaBench group file."""
    path = BENCH / f"{group}.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no JSONSchemaBench group {group!r} ({path})")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def draw_schemas(n: int, seed: int, max_chars: int) -> list[Case]:
    """``n`` schemas spread across the groups, deterministically for ``seed``.

    Each group gets a seeded permutation of its schemas that have a valid test instance; each round
    visits the groups in a seeded order and takes every group's next schema, until ``n`` are drawn
    (groups that run out are skipped), so the groups contribute as evenly as ``n`` allows.
    """
    groups = sorted(p.name.removesuffix(".jsonl.gz") for p in BENCH.glob("*.jsonl.gz"))
    if not groups:
        raise FileNotFoundError(f"no *.jsonl.gz in {BENCH}")
    records = {g: read_group(g) for g in groups}
    rng = np.random.default_rng(seed)
    # Only schemas with a valid test instance: it shows the schema is satisfiable and sizes the token
    # limit (see token_limit); a schema without one may have no valid output of any practical length.
    order = {
        g: [i for i in rng.permutation(len(records[g])).tolist() if _has_valid_instance(records[g][i])]
        for g in groups
    }
    cases: list[Case] = []
    round_ = 0
    while len(cases) < n and any(round_ < len(order[g]) for g in groups):
        for k in rng.permutation(len(groups)).tolist():
            group = groups[k]
            if round_ < len(order[group]) and len(cases) < n:
                index = order[group][round_]
                cases.append(schema_case(group, index, records[group][index], max_chars))
        round_ += 1
    return cases


def _has_valid_instance(record: dict[str, Any]) -> bool:
    return any(t.get("valid") for t in record.get("tests", ()))


def parse_schema_spec(spec: str, seed: int, max_chars: int) -> list[Case]:
    """``N`` -> :func:`draw_schemas`; ``GROUP:N,GROUP:N`` -> the first N schemas of each group."""
    spec = spec.strip()
    if not spec:
        return []
    if spec.isdigit():
        return draw_schemas(int(spec), seed, max_chars) if int(spec) else []
    cases = []
    for part in filter(None, spec.split(",")):
        group, _, count = part.partition(":")
        records = read_group(group)
        cases.extend(
            schema_case(group, i, records[i], max_chars) for i in range(min(int(count or 1), len(records)))
        )
    return cases


def validate(schema: Any, text: str) -> tuple[str, str]:
    """``("valid" | "invalid" | "unparsable" | "validator_error", message)`` for one output."""
    import jsonschema
    from jsonschema import validators

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return "unparsable", str(exc)
    try:
        cls = validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except Exception as exc:  # unresolvable $ref, bad schema: not the output's fault, reported apart
        return "validator_error", f"{type(exc).__name__}: {exc}"
    if error is None:
        return "valid", ""
    return "invalid", f"{error.message} at {list(error.absolute_path)}"


# --- decoding ---------------------------------------------------------------------------------------


class CachedLM:
    """Minimal KV-cached forward over one sequence."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: Any = None
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keep_last = "logits_to_keep" in params

    @torch.inference_mode()
    def forward(self, ids: list[int]) -> np.ndarray:
        kwargs: dict[str, Any] = {self.cache_arg: self.cache, "use_cache": True}
        if self.keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=torch.tensor([ids], dtype=torch.long), **kwargs)
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return out.logits[0, -1, :].float().numpy()


def sample_unconstrained(
    logits: np.ndarray, size: int, params: SamplingParams, rng: np.random.Generator
) -> int:
    """The unconstrained baseline with the samplers' own kernels: same proposal, inverse CDF."""
    logits = check_logits(logits)
    if params.greedy:
        return int(np.argmax(logits[:size]))
    scores = filtered_scores(logits, size, params)
    everything = _ALL.get(size)
    if everything is None:
        everything = _ALL[size] = np.ones(size, dtype=np.bool_)
    ids = np.empty(size, dtype=np.int64)
    values, weights, cumulative = (np.empty(size) for _ in range(3))
    m, _, _ = kernels.support_cumulative(scores, everything, ids, values, weights, cumulative)
    return int(ids[kernels.pick_cumulative(cumulative, m, rng.random())])


_ALL: dict[int, np.ndarray] = {}


def repetition_penalized(logits: np.ndarray, generated: list[int], penalty: float) -> np.ndarray:
    """CTRL-style repetition penalty over the generated tokens (as transformers applies it).

    The logits of tokens already generated are divided by ``penalty`` when positive and multiplied
    by it when negative; every sampler then sees the same penalized logits.
    """
    out = logits.copy()
    ids = np.unique(np.asarray(generated, dtype=np.int64))
    ids = ids[ids < out.shape[0]]
    values = out[ids]
    out[ids] = np.where(values > 0, values / penalty, values * penalty)
    return out


def timed(repeats: int, fn: Any, *fn_args: Any) -> tuple[float, list[Any]]:
    """Median seconds of ``repeats`` calls ``fn(*fn_args)`` and their results."""
    seconds, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        results.append(fn(*fn_args))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), results


def p99(values: list[float]) -> float:
    """99th percentile (nan when empty)."""
    return float(np.percentile(values, 99)) if len(values) else float("nan")


def compile_case(case: Case, vocab: Any) -> tuple[Any, float]:
    """``(constraint, seconds)`` for one case."""
    start = time.perf_counter()
    constraint, _ = build_constraint(vocab, **{case.kind: case.source})
    return constraint, time.perf_counter() - start


def run_case(case: Case, loaded: Any, params: SamplingParams, args: argparse.Namespace) -> dict[str, Any]:
    """Decode one case to completion (or the token limit), timing every sampler at every step."""
    vocab = loaded.vocab
    result: dict[str, Any] = {"case": case.name, "kind": case.kind, "status": "ok", "error": ""}
    try:
        constraint, result["compile_s"] = compile_case(case, vocab)
        # One constraint per constrained sampler: their caches must not help each other.
        constraints = {"awrs": constraint, "awrs-nw": compile_case(case, vocab)[0]}
        if not args.skip_mask:
            constraints["mask"] = compile_case(case, vocab)[0]
    except ConstraintError as exc:
        result.update(status="compile_error", error=f"{type(exc).__name__}: {exc}")
        return result
    except Exception as exc:  # a compiler bug: reported in the table, the other cases still run
        result.update(status="compile_crash", error=f"{type(exc).__name__}: {exc}")
        return result
    limit = token_limit(case, loaded.tokenizer, args)
    result["max_new_tokens"] = limit
    budget = None if args.no_token_budget else limit
    matchers = {name: budgeted_matcher(c, budget) for name, c in constraints.items()}
    samplers: dict[str, TokenSampler] = {
        "awrs": RejectionSampler(params, max_checks=args.max_checks),
        "awrs-nw": RejectionSampler(params, max_checks=args.max_checks, estimate_weight=False),
        "mask": MaskSampler(params),
    }
    running = [name for name in SAMPLERS if name != "mask" or not args.skip_mask]
    rngs = {name: np.random.default_rng([args.seed, k]) for k, name in enumerate(SAMPLERS)}
    lm = CachedLM(loaded.model)
    pending = encode_prompt(loaded.tokenizer, case.prompt, True)
    result["prompt_tokens"] = len(pending)
    times: dict[str, list[float]] = {name: [] for name in SAMPLERS}
    forward: list[float] = []
    checks: list[int] = []
    checks_nw: list[int] = []
    fallbacks = 0
    budget_steps = 0
    generated: list[int] = []
    stopped = "length"
    try:
        for step in range(limit):
            start = time.perf_counter()
            logits = lm.forward(pending)
            if step == 0:
                result["prefill_s"] = time.perf_counter() - start
            else:
                forward.append(time.perf_counter() - start)
            if args.repetition_penalty != 1.0 and generated:
                logits = repetition_penalized(logits, generated, args.repetition_penalty)
            # Rotate the call order every step: the first sampler after the forward pass finds
            # colder CPU caches, and no sampler should always pay for that.
            token = -1
            for k in range(len(running)):
                name = running[(step + k) % len(running)]
                if name == "uncon":
                    seconds, _ = timed(
                        args.repeats, sample_unconstrained, logits, vocab.size, params, rngs[name]
                    )
                else:
                    seconds, results = timed(
                        args.repeats, samplers[name].sample, logits, matchers[name], rngs[name]
                    )
                    if name == "awrs":
                        checks.extend(r.checks for r in results)
                        fallbacks += sum(r.mask_fallback for r in results)
                        token = results[0].token_id
                    elif name == "awrs-nw":
                        checks_nw.extend(r.checks for r in results)
                times[name].append(seconds)
            # Asked after sampling, so the distance work stays inside the timed sampler calls.
            budget_steps += int(budget is not None and matchers["awrs"].budget_active())
            if token in vocab.eos_token_ids:
                stopped = "eos"
                break
            for name, matcher in matchers.items():
                if budget is None or name == "awrs":
                    matcher.advance(token)
                else:
                    # Another compile's searches may have found other completions: follow AWRS.
                    matcher.advance(token, check_budget=False)
            generated.append(token)
            pending = [token]
            if matchers["awrs"].is_finished():
                stopped = "finished"
                break
    except Exception as exc:  # reported per case (with the partial numbers), the run goes on
        stopped = "error"
        result.update(status="decode_error", error=f"{type(exc).__name__}: {exc}")
    text = vocab.decode(generated).decode("utf-8", errors="replace")
    result.update(
        stopped=stopped,
        complete=stopped in ("eos", "finished"),
        tokens=len(generated),
        sampled=len(times["awrs"]),
        text=text,
        forward_s=forward,
        times_s=times,
        checks=checks,
        checks_nw=checks_nw,
        fallbacks=fallbacks,
        budget_steps=budget_steps,
    )
    if case.kind == "schema" and result["complete"]:
        result["validation"], result["validation_error"] = validate(case.source, text)
    return result


# --- report -----------------------------------------------------------------------------------------


def summary(results: list[dict[str, Any]], vocab_size: int, args: argparse.Namespace, header: str) -> str:
    """The one table of the run."""
    ran = [r for r in results if r["status"] in ("ok", "decode_error")]
    compile_errors = [r for r in results if r["status"] == "compile_error"]
    compile_crashes = [r for r in results if r["status"] == "compile_crash"]
    decode_errors = [r for r in results if r["status"] == "decode_error"]
    complete = [r for r in ran if r["complete"]]
    truncated = [r for r in ran if r["stopped"] == "length"]
    schema_complete = [r for r in complete if r["kind"] == "schema"]
    valid = [r for r in schema_complete if r["validation"] == "valid"]
    invalid = [r for r in schema_complete if r["validation"] in ("invalid", "unparsable")]
    validator_errors = [r for r in schema_complete if r["validation"] == "validator_error"]
    checks = [c for r in ran for c in r["checks"]]
    checks_nw = [c for r in ran for c in r["checks_nw"]]
    forward = [f for r in ran for f in r["forward_s"]]
    prefill = [r["prefill_s"] for r in ran if "prefill_s" in r]
    fallbacks = sum(r["fallbacks"] for r in ran)
    fwd_mean = float(np.mean(forward)) if forward else float("nan")

    def ids(rows: list[dict[str, Any]]) -> str:
        return ", ".join(r["case"] for r in rows) if rows else "-"

    lines = [header]
    width = 104
    lines.append("=" * width)

    def row(label: str, value: str) -> None:
        lines.append(f"{label:<50}{value}")

    row("cases drawn", f"{len(results)}")
    row("compile errors (structgen ConstraintError)", f"{len(compile_errors)}   {ids(compile_errors)}")
    if compile_crashes:
        row("compile crashes (other exceptions)", f"{len(compile_crashes)}   {ids(compile_crashes)}")
    row("cases run", f"{len(ran)}")
    row("decode errors", f"{len(decode_errors)}   {ids(decode_errors)}")
    row("outputs complete (EOS / nothing may follow)", f"{len(complete)}")
    raised = [r for r in ran if r.get("max_new_tokens", args.max_new_tokens) > args.max_new_tokens]
    limits = ", ".join(f"{r['case']}: {r['max_new_tokens']}" for r in raised) or "-"
    row(f"token limit raised above {args.max_new_tokens}", f"{len(raised)}   {limits}")
    row("outputs cut at their token limit", f"{len(truncated)}   {ids(truncated)}")
    row("schema outputs valid (jsonschema)", f"{len(valid)} of {len(schema_complete)} complete")
    row("schema outputs invalid", f"{len(invalid)}   {ids(invalid)}")
    if validator_errors:
        row("validator could not run (schema problem)", f"{len(validator_errors)}   {ids(validator_errors)}")
    row("sampled tokens", f"{sum(r['sampled'] for r in ran)}")
    if checks:
        row(
            "AWRS checks per token: mean / p99 / max",
            f"{np.mean(checks):.2f} / {p99(checks):.1f} / {max(checks)}   "
            f"= {100 * np.mean(checks) / vocab_size:.4f}% / {100 * p99(checks) / vocab_size:.4f}% of "
            f"{vocab_size} ids",
        )
        row(
            "AWRS (no weights) checks per token: mean / p99",
            f"{np.mean(checks_nw):.2f} / {p99(checks_nw):.1f}",
        )
        row("AWRS mask fallbacks (check budget spent)", f"{100 * fallbacks / len(checks):.2f}% of tokens")
        budget_steps = sum(r["budget_steps"] for r in ran)
        row(
            "tokens decided under the token-budget test",
            f"{budget_steps} ({100 * budget_steps / len(checks):.2f}% of tokens, "
            f"{sum(1 for r in ran if r['budget_steps'])} outputs)"
            if not args.no_token_budget
            else "- (--no-token-budget)",
        )
    row(
        "forward per token (decode steps): mean / median",
        f"{1e3 * fwd_mean:.2f} ms / {1e3 * statistics.median(forward):.2f} ms"
        + (f"   (prefill: median {1e3 * statistics.median(prefill):.0f} ms)" if prefill else "")
        if forward
        else "-",
    )
    lines.append("-" * width)
    lines.append(
        f"{'sampler, per sampled token':<28}{'mean us':>10}{'median us':>11}{'p99 us':>10}"
        f"{'mean % fwd':>12}{'excess over uncon':>19}{'excess % fwd':>14}"
    )
    pooled = {name: [t for r in ran for t in r["times_s"][name]] for name in SAMPLERS}
    uncon_mean = float(np.mean(pooled["uncon"])) if pooled["uncon"] else float("nan")
    for name in SAMPLERS:
        values = pooled[name]
        if not values:
            continue
        mean = float(np.mean(values))
        lines.append(
            f"{LABELS[name]:<28}{1e6 * mean:>10.0f}{1e6 * statistics.median(values):>11.0f}"
            f"{1e6 * p99(values):>10.0f}{100 * mean / fwd_mean:>11.2f}%"
            f"{1e6 * (mean - uncon_mean):>16.0f} us{100 * (mean - uncon_mean) / fwd_mean:>13.2f}%"
        )
    lines.append("-" * width)
    if checks and pooled["awrs"]:
        awrs_pct = 100 * float(np.mean(pooled["awrs"])) / fwd_mean
        checks_pct = 100 * float(np.mean(checks)) / vocab_size
        schema_ran = [r for r in ran if r["kind"] == "schema"]
        all_valid = bool(schema_ran) and len(valid) == len(schema_ran)
        verdict = {True: "met", False: "NOT met"}
        row(
            "target: mean checks per token <= 1% of vocab",
            f"{verdict[checks_pct <= 1.0]} ({checks_pct:.4f}%)",
        )
        row(
            "target: AWRS time per token <= 10% of forward",
            f"{verdict[awrs_pct <= 10.0]} ({awrs_pct:.2f}% whole sampler, mean over tokens)",
        )
        if schema_ran:
            row(
                "target: every output validates",
                f"{verdict[all_valid]} ({len(valid)} valid of {len(schema_ran)} run; incomplete = failure; "
                f"{len(valid)} valid of {len(schema_complete)} complete)",
            )
        else:
            row("target: every output validates", "n/a (no schema cases)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--schemas",
        default="50",
        help="N: N schemas drawn across the groups (0: none); or GROUP:N,GROUP:N: the first N of each group",
    )
    parser.add_argument("--schema-seed", type=int, default=0, help="seed of the schema draw")
    parser.add_argument("--schema-chars", type=int, default=1500, help="schema text kept in the prompt")
    parser.add_argument("--regex", action="store_true", help="also run the regex cases")
    parser.add_argument("--max-new-tokens", type=int, default=384, help="token limit per output")
    parser.add_argument(
        "--no-token-budget",
        action="store_true",
        help="do not make the token limit part of the constraint (structgen.completion.BudgetMatcher)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per sampler per step (median)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared 2-core CPU 2 threads slowed the forward 5x)",
    )
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-checks", type=int, default=32, help="AWRS check budget")
    parser.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="CTRL-style penalty on generated tokens, applied to the logits every sampler sees (1 = off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument(
        "--skip-mask",
        action="store_true",
        help="do not run the full-mask sampler (its budget-filtered masks are slow near the end)",
    )
    parser.add_argument("--only", default="", help="comma-separated case names to run")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "out" / "awrs.json")
    args = parser.parse_args()
    if args.repeats < 1 or args.max_new_tokens < 1 or args.threads < 1:
        parser.error("--repeats, --max-new-tokens and --threads must be >= 1")
    if args.repetition_penalty <= 0:
        parser.error("--repetition-penalty must be > 0")

    torch.set_num_threads(args.threads)
    cases: list[Case] = list(REGEX_CASES) if args.regex else []
    if args.schemas.strip() not in ("", "0"):
        if not BENCH.is_dir():
            parser.error(f"JSON Schema cases need the shared data folder {BENCH.resolve()}")
        cases += parse_schema_spec(args.schemas, args.schema_seed, args.schema_chars)
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c.name in wanted]
    if not cases:
        parser.error("no cases to run (give --schemas N and/or --regex)")

    from structgen.models import resolve_model

    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    start = time.perf_counter()
    loaded = resolve_model(None)
    print(
        f"model loaded in {time.perf_counter() - start:.1f}s; vocabulary {loaded.vocab.size} ids; {params}; "
        f"torch threads pinned to {torch.get_num_threads()} (torch.set_num_threads)",
        flush=True,
    )
    # Warm numba and the model so the first case does not pay for compilation.
    warm = argparse.Namespace(**{**vars(args), "max_new_tokens": 3, "repeats": 1})
    run_case(Case("warmup", "regex", r"[a-z]{1,4}", "Say hi."), loaded, params, warm)
    if any(c.kind == "schema" for c in cases):
        run_case(
            Case("warmup", "schema", {"type": "object", "properties": {"a": {"type": "integer"}}}, "JSON?"),
            loaded,
            params,
            warm,
        )

    results = []
    started = time.perf_counter()
    for n, case in enumerate(cases, 1):
        r = run_case(case, loaded, params, args)
        results.append(r)
        if r["status"] in ("compile_error", "compile_crash"):
            print(f"[{n}/{len(cases)}] {r['case']}: {r['status']}: {r['error'][:150]}", flush=True)
            continue
        fwd = 1e3 * statistics.median(r["forward_s"]) if r["forward_s"] else float("nan")
        med = {k: 1e6 * statistics.median(v) if v else float("nan") for k, v in r["times_s"].items()}
        verdict = r.get("validation", r["stopped"])
        print(
            f"[{n}/{len(cases)}] {r['case'][:60]}: {r['tokens']} tok, {r['stopped']}, {verdict}; "
            f"chk {np.mean(r['checks']) if r['checks'] else float('nan'):.2f}; fwd {fwd:.1f} ms; "
            f"us uncon {med['uncon']:.0f} mask {med['mask']:.0f} awrs {med['awrs']:.0f}; {r['text'][:60]!r}"
            + (f"; {r['error'][:120]}" if r["error"] else "")
            + (f"; {r['validation_error'][:120]}" if r.get("validation_error") else ""),
            flush=True,
        )
    header = (
        f"\nAWRS vs full mask vs unconstrained: {len(cases)} cases ({args.schemas!r} schemas, seed "
        f"{args.schema_seed}{', regex cases' if args.regex else ''}); SmolLM2-135M-Instruct float32 on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs), torch threads "
        f"{torch.get_num_threads()}; {params}; repetition penalty {args.repetition_penalty}; max_checks "
        f"{args.max_checks}; token budget {'off' if args.no_token_budget else 'on'}; "
        f"{args.repeats} timed call(s) "
        f"per sampler per step; run took {time.perf_counter() - started:.0f}s"
    )
    print(summary(results, loaded.vocab.size, args, header))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"params": vars(args) | {"json": str(args.json)}, "results": results}))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
