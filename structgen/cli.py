"""The ``structgen`` command line.

``structgen generate --regex PATTERN | --schema FILE | --grammar NAME_OR_FILE [options] "prompt"``
prints the generated text on stdout; progress and statistics go to stderr. Exit status: 0 on
success, 2 for invalid input (bad arguments, invalid or unsupported constraint, unreadable file),
1 when the generation ended before the output was complete (the partial text is still printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from structgen.errors import ConstraintError, StructgenError


class _UsageError(Exception):
    """Invalid user input discovered after argument parsing; reported with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``structgen`` command."""
    parser = argparse.ArgumentParser(
        prog="structgen",
        description="Constrained generation with language models (regex, grammar, JSON Schema).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser(
        "generate",
        help="generate text that matches a regex, a Lark grammar or a JSON Schema",
        description="Generate text for PROMPT; the result goes to stdout, progress and stats to stderr.",
    )
    which = gen.add_mutually_exclusive_group()
    which.add_argument(
        "--regex", metavar="PATTERN", help="the output must fully match this regular expression"
    )
    which.add_argument(
        "--schema", metavar="FILE", help="JSON Schema file the output must satisfy ('-' = stdin)"
    )
    which.add_argument(
        "--grammar", metavar="NAME_OR_FILE", help="Lark grammar file, or the name of a shipped grammar"
    )
    gen.add_argument("prompt", help="the prompt (sent as a user turn through the chat template)")
    gen.add_argument(
        "--model", metavar="PATH", help="model folder or .gguf file (default: SmolLM2-135M-Instruct)"
    )
    gen.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="token limit (default 256)")
    gen.add_argument("--temperature", type=float, default=1.0, metavar="T", help="0 = greedy (default 1.0)")
    gen.add_argument(
        "--top-k", type=int, default=0, metavar="K", help="keep the K most likely tokens (0 = off)"
    )
    gen.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling mass (1 = off)")
    gen.add_argument("--seed", type=int, default=None, metavar="S", help="random seed")
    gen.add_argument("--sampler", choices=("mask", "awrs", "smc"), default=None, help="token sampler")
    gen.add_argument("--particles", type=int, default=8, metavar="N", help="SMC particles (default 8)")
    gen.add_argument("--ess-threshold", type=float, default=0.5, metavar="F", help="SMC resampling threshold")
    gen.add_argument("--no-chat-template", action="store_true", help="send the prompt as raw text")
    gen.add_argument(
        "--no-token-budget",
        action="store_true",
        help="do not make --max-new-tokens part of the constraint (outputs may then be cut)",
    )
    gen.add_argument("--quiet", action="store_true", help="print no progress or statistics on stderr")
    return parser


def _read_schema(arg: str) -> Any:
    try:
        text = sys.stdin.read() if arg == "-" else Path(arg).read_text(encoding="utf-8")
    except OSError as exc:
        raise _UsageError(f"cannot read schema file {arg}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _UsageError(f"schema file {arg} is not valid JSON: {exc}") from exc


def _read_grammar(arg: str) -> str:
    path = Path(arg)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise _UsageError(f"cannot read grammar file {arg}: {exc.strerror or exc}") from exc
    import grammars

    if arg in grammars.names():
        return arg
    raise _UsageError(
        f"no grammar file {arg!r} and no shipped grammar of that name; shipped: {', '.join(grammars.names())}"
    )


def _format_stats(stats: dict[str, Any]) -> str:
    tokens = stats["tokens"]
    per_token = 1000.0 / max(tokens, 1)
    model, constraint = stats["model_seconds"], stats["constraint_seconds"]
    return (
        f"{tokens} tokens ({stats['forced_tokens']} forced), stopped: {stats['stopped']}, "
        f"{stats['seconds']:.2f} s total, model {model:.2f} s ({model * per_token:.1f} ms/token), "
        f"constraint {constraint:.3f} s ({constraint * per_token:.2f} ms/token), "
        f"compile {stats['compile_seconds']:.3f} s"
    )


def _generate(args: argparse.Namespace) -> int:
    from structgen.generate import generate

    kwargs: dict[str, Any] = {}
    if args.regex is not None:
        from structgen.automata.regex import regex_to_byte_dfa

        regex_to_byte_dfa(args.regex)  # a bad pattern fails here, before the model loads
        kwargs["regex"] = args.regex
    elif args.schema is not None:
        kwargs["schema"] = _read_schema(args.schema)
    elif args.grammar is not None:
        kwargs["grammar"] = _read_grammar(args.grammar)
    if args.max_new_tokens < 1:
        raise _UsageError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.particles < 1:
        raise _UsageError(f"--particles must be at least 1, got {args.particles}")
    log = (
        (lambda message: None)
        if args.quiet
        else (lambda message: print(message, file=sys.stderr, flush=True))
    )
    log(f"structgen: loading {args.model or 'the default model (SmolLM2-135M-Instruct)'} ...")
    start = time.perf_counter()
    from structgen.models import resolve_model

    resolve_model(args.model)
    log(f"structgen: model ready in {time.perf_counter() - start:.1f} s; generating ...")
    result = generate(
        args.model,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        sampler=args.sampler,
        particles=args.particles,
        ess_threshold=args.ess_threshold,
        chat_template=not args.no_chat_template,
        token_budget=not args.no_token_budget,
        **kwargs,
    )
    sys.stdout.write(result.text + "\n")
    sys.stdout.flush()
    log(f"structgen: {_format_stats(result.stats)}")
    if not result.complete:
        print(
            f"structgen: warning: the output is incomplete (stopped: {result.stats['stopped']}); "
            "raise --max-new-tokens",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``structgen`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            return _generate(args)
    except (_UsageError, ConstraintError, FileNotFoundError, ImportError) as exc:
        print(f"structgen: error: {exc}", file=sys.stderr)
        return 2
    except StructgenError as exc:
        # A failure during generation (e.g. no allowed token has a finite logit), not bad input.
        print(f"structgen: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        # Out-of-range options such as a negative temperature.
        print(f"structgen: error: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2
