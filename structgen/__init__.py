"""structgen: constrained and structured generation for language models.

Regexes, Lark grammars and JSON Schemas compile to token-level automata over a model's vocabulary
(:class:`Constraint`); a :class:`Matcher` per sequence gives next-token masks and single-token
checks; samplers, a transformers :class:`LogitsProcessor` and :func:`generate` use them.
"""

from structgen.compilers.grammar import compile_grammar
from structgen.compilers.json_schema import compile_json_schema
from structgen.compilers.regex import RegexCompiler, compile_regex
from structgen.errors import (
    ConstraintError,
    EmptyLanguageError,
    GrammarError,
    IncompleteOutputError,
    NoAllowedTokenError,
    RegexError,
    ResourceLimitError,
    SchemaError,
    StructgenError,
    TokenRefusedError,
)
from structgen.generate import GenerationResult, generate
from structgen.matcher import Automaton, Constraint, Matcher
from structgen.models import load_default_model
from structgen.pipeline import ConstraintMaskStep, DecodingBatch, DecodingRow, LogitsPipeline, Step
from structgen.processor import LogitsProcessor
from structgen.sampling.base import SampledToken, SamplingParams, TokenSampler
from structgen.sampling.mask import MaskSampler
from structgen.sampling.rejection import RejectionSampler
from structgen.sampling.smc import SequentialMonteCarlo, SMCResult
from structgen.sampling.step import RejectionSamplingStep
from structgen.vocabulary import Vocabulary

__all__ = [
    "Automaton",
    "Constraint",
    "ConstraintError",
    "ConstraintMaskStep",
    "DecodingBatch",
    "DecodingRow",
    "EmptyLanguageError",
    "GenerationResult",
    "GrammarError",
    "IncompleteOutputError",
    "LogitsPipeline",
    "LogitsProcessor",
    "MaskSampler",
    "Matcher",
    "NoAllowedTokenError",
    "RegexCompiler",
    "RegexError",
    "RejectionSampler",
    "RejectionSamplingStep",
    "ResourceLimitError",
    "SMCResult",
    "SampledToken",
    "SamplingParams",
    "SchemaError",
    "SequentialMonteCarlo",
    "Step",
    "StructgenError",
    "TokenRefusedError",
    "TokenSampler",
    "Vocabulary",
    "compile_grammar",
    "compile_json_schema",
    "compile_regex",
    "generate",
    "load_default_model",
]
