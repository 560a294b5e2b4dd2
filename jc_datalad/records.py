"""The evaluation record: one submission head x one phase, as stored in the ledger."""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

RECORD_FORMAT = 1


class Status(enum.StrEnum):
    EVALUATED = "evaluated"  #: re-executed and scored
    FAILED = "failed"  #: the command failed, timed out, ran out of memory, or wrote invalid output
    REFUSED = "refused"  #: inspection or provenance checks refused it; nothing ran
    REJECTED = "rejected"  #: not admitted: unknown team, phase closed, quota
    ERROR = "error"  #: the runner itself failed; the message says where
    #: the platform failed (the sandbox could not start, another evaluation exhausted a shared
    #: resource): retried on later passes and never counted against a team's quota
    INFRASTRUCTURE = "infrastructure"


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def evaluation_id(team: str, commit: str, phase: str) -> str:
    return f"{team}--{commit[:12]}--{phase}"


@dataclass(frozen=True)
class Evaluation:
    """Everything the ledger keeps about one evaluation."""

    id: str
    challenge: dict[str, Any]  # id, title, commit
    team: str
    submission: dict[str, Any]  # repository, branches, commit, first_seen, commit_date
    phase: str
    split: str
    status: Status
    reason: str | None = None
    hidden: dict[str, Any] = field(default_factory=dict)  # inputs/labels: dataset_id, commit
    image: dict[str, Any] = field(default_factory=dict)  # name, key
    scorer: dict[str, Any] = field(default_factory=dict)  # name, version
    runner: dict[str, Any] = field(default_factory=dict)  # version, backend
    metrics: dict[str, Any] = field(default_factory=dict)  # all hidden items
    public: dict[str, Any] = field(default_factory=dict)  # the public part of the hidden split
    private: dict[str, Any] = field(default_factory=dict)  # the private part
    items: list[dict[str, Any]] = field(default_factory=list)  # per item: name, part, metrics, error
    steps: list[dict[str, Any]] = field(default_factory=list)  # command, resources, status (system facts only)
    stages: dict[str, float] = field(default_factory=dict)  # runner stage -> seconds
    started: str = ""
    finished: str = ""
    reproduce: list[str] = field(default_factory=list)  # commands that redo this evaluation
    #: results challenges with ``verify: rerun``: mode, reproduced, first_difference (relative path or
    #: None); empty for other evaluations and for records written before the field existed
    verification: dict[str, Any] = field(default_factory=dict)
    format: int = RECORD_FORMAT

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        known = _FIELDS
        missing = {"id", "challenge", "team", "submission", "phase", "split", "status"} - set(data)
        if missing:
            raise ValueError(f"record lacks {', '.join(sorted(missing))}")
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["status"] = Status(data["status"])
        return cls(**kwargs)


_FIELDS = frozenset(f.name for f in fields(Evaluation))
