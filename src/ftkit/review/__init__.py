"""Reviews of finished runs: findings (divergence, overfitting, underfitting, no gain or a loss against the base
model, heavy truncation, eval rows repeating training rows, too few rows), each with its evidence and a ready
`ftkit rerun ... --set` command. Standard library only (plus rich when rendering), so `ftkit show` and
`ftkit review` start fast."""

from ftkit.review.model import Finding, Review
from ftkit.review.render import render_review, render_summary
from ftkit.review.review import review_run, run_of_record

__all__ = ["Finding", "Review", "render_review", "render_summary", "review_run", "run_of_record"]
