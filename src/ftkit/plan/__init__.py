"""`ftkit plan`: memory and time estimates before training, from an analytic model and a measured probe.

`probe.probe_training_step` (a few real optimizer steps, timed, with their peak memory) also serves the `auto`
batch-size and time-budget rules. Heavy libraries are imported inside functions only.
"""
