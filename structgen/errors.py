"""Exceptions raised by structgen. Every compile-time problem is a ``ConstraintError`` subclass."""

from __future__ import annotations


class StructgenError(Exception):
    """Base class of every error structgen raises on purpose."""


class ConstraintError(StructgenError, ValueError):
    """A constraint could not be compiled: the message names the offending construct."""


class RegexError(ConstraintError):
    """Invalid or unsupported regular expression syntax."""


class GrammarError(ConstraintError):
    """Invalid or unsupported grammar (syntax error, undefined rule, unsupported terminal, ...)."""


class SchemaError(ConstraintError):
    """Invalid or unsupported JSON Schema; the message gives the keyword and its JSON pointer."""


class EmptyLanguageError(ConstraintError):
    """The constraint accepts no output at all (over this vocabulary)."""


class ResourceLimitError(ConstraintError):
    """Compiling the constraint would exceed a size or time limit."""


class TokenRefusedError(StructgenError, ValueError):
    """``Matcher.advance`` was given a token the constraint does not allow."""


class IncompleteOutputError(StructgenError, ValueError):
    """Generation stopped (token limit) before the output was a complete match."""


class NoAllowedTokenError(StructgenError, ValueError):
    """The constraint allows no token with a finite logit, so nothing can be sampled."""
