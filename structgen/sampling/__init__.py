"""Token samplers: pick the next token from model logits under a constraint."""
