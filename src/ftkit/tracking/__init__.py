"""Experiment trackers (MLflow, TensorBoard, Weights & Biases) fed by a run: see `ftkit.tracking.session`."""
