"""`ftkit export`: a run's model as a standard transformers folder (merged) or a PEFT adapter folder, with a
model card. See `ftkit.export.export.export_run`."""
