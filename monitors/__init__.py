"""Monitors: static analysis that steers decoding."""
