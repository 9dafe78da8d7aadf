"""Data: reading files, detecting formats, validating rows, rendering with loss masks, fingerprints."""
