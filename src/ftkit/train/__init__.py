"""Training: load the model, build the trainer, run it with progress, evaluate and save."""
