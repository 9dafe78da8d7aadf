"""What a review says: findings, each with its evidence and a ready command, or one line for a healthy run.

Stored as the run's `review.json` (`Review.to_dict`) and read back with `Review.from_dict`; no heavy import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

REVIEW_FORMAT = 1
SEVERITIES = (
    "high",
    "medium",
    "low",
)  # high: the run did not work; medium: worth a rerun; low: worth knowing


@dataclass
class Finding:
    """One thing the review found. `evidence` holds numbers from the run's own history and metrics; `command` is
    a complete command that acts on it (None when no rerun can, e.g. add data), `action` says what it does."""

    id: str
    severity: str
    title: str
    evidence: str
    action: str
    command: str | None = None


@dataclass
class Review:
    """The review of one run: its findings (most severe first), `summary` (one line; for a healthy run the
    only output) and `skipped` (check id -> why it could not run on this run, e.g. no eval data)."""

    run_id: str
    status: str
    findings: list[Finding] = field(default_factory=list)
    summary: str = ""
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """True when the run succeeded and no check found anything."""
        return self.status == "succeeded" and not self.findings

    def to_dict(self) -> dict[str, Any]:
        """The `review.json` document."""
        return {
            "format": REVIEW_FORMAT,
            "run_id": self.run_id,
            "status": self.status,
            "healthy": self.healthy,
            "summary": self.summary,
            "findings": [asdict(finding) for finding in self.findings],
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Review:
        """A Review from its `review.json` document (unknown keys ignored, so newer files still read)."""
        names = set(Finding.__dataclass_fields__)
        findings = [
            Finding(**{key: value for key, value in item.items() if key in names})
            for item in document.get("findings") or []
        ]
        return cls(
            run_id=str(document.get("run_id", "")),
            status=str(document.get("status", "")),
            findings=findings,
            summary=str(document.get("summary", "")),
            skipped=dict(document.get("skipped") or {}),
        )
