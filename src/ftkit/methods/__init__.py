"""Fine-tuning methods as plug-ins. See `registry` for lookup and `base` for the Method contract."""
