"""What happens to a study that other apps act on, without studies importing them: each app
connects its receiver in its AppConfig.ready and writes only its own tables.

All are sent inside the transaction of the change (a receiver's writes commit or roll back with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.dispatch import Signal

# The champion's prediction is stored and the study is `predicted` (kwargs: study).
# apps.explanations queues the explanation once it commits.
study_predicted = Signal()

# A physician saw identifying text in the study's image (kwargs: study). Receivers withdraw what
# they derived from it for training and return how many rows (apps.review: its samples).
identifying_text_flagged = Signal()

# The study is about to be deleted (kwargs: study, keep_for_research: the owner consents to
# research use). Receivers withdraw or detach their rows and return a `DerivedData`.
study_deleting = Signal()


@dataclass
class DerivedData:
    """A receiver's answer to `study_deleting`: what it did (audited with the deletion) and which
    stored files go with the study or must stay (kept for research)."""

    audit: dict[str, int] = field(default_factory=dict)
    remove_files: set[str] = field(default_factory=set)
    keep_files: set[str] = field(default_factory=set)


def responses(signal: Signal, **kwargs) -> list:
    """Send `signal` from the studies app and return the receivers' answers."""
    from apps.studies.models import Study

    return [response for _, response in signal.send(sender=Study, **kwargs)]
