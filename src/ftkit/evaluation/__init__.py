"""Evaluation: loss, perplexity, accuracy and exact match, for the base and the tuned model alike."""
