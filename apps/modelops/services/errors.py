"""Errors of model operations: each a refusal with a stable code (apps.core.errors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core.errors import ApplicationError

if TYPE_CHECKING:
    from apps.modelops.services.gates import GateResult


class ModelOpsError(ApplicationError):
    code = "modelops_error"
    http_status = 409  # most refusals conflict with the registry's current state


class GatesFailed(ModelOpsError):
    code = "gates_failed"

    def __init__(self, failed: list[GateResult]):
        super().__init__(
            "the version fails quality gates: " + ", ".join(g.name for g in failed),
            details={"failed_gates": [g.to_dict() for g in failed]},
        )
        self.failed = failed


class NothingToRollBack(ModelOpsError):
    code = "nothing_to_roll_back"


class SameVersion(ModelOpsError):
    code = "same_version"
    http_status = 400


class NoHoldout(ModelOpsError):
    """A version cannot be evaluated for promotion: the held-out set (or a file the evaluation
    reads) is missing."""

    code = "no_holdout"


class InvalidJobParameters(ModelOpsError, ValueError):
    """Training or augmentation parameters refused per field (`details.fields`). Still a
    ValueError for callers (commands, tests) that catch that."""

    code = "invalid_request"
    http_status = 400

    def __init__(self, fields: dict[str, str]):
        super().__init__("The request is not valid.", details={"fields": fields})
        self.fields = fields


class TrainingCancelled(Exception):
    """The run stopped because an admin cancelled it."""
