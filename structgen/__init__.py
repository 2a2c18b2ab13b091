"""structgen: constrained and structured generation for language models."""
