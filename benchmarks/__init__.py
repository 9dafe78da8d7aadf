"""ftkit benchmarks: side-by-side measurements against plain TRL/transformers (`python -m benchmarks`)."""
