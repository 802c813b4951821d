"""Two physicians claiming the same study at the same moment, on PostgreSQL (real row locks)."""

import threading

import pytest
from django.db import connection

from apps.review.models import ReviewClaim
from apps.review.services import ReviewError, claim_study

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_concurrent_claims_let_exactly_one_physician_win(pneumonia_study, physician, second_physician):
    assert connection.vendor == "postgresql"
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def attempt(user):
        from django.db import connections

        try:
            start.wait(timeout=10)
            claim_study(pneumonia_study.pk, physician=user)
            outcomes[user.username] = "claimed"
        except ReviewError as exc:
            outcomes[user.username] = exc.code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(u,)) for u in (physician, second_physician)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes.values()) == ["claimed", "study_claimed"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "claimed")
    assert ReviewClaim.objects.get().physician.username == winner
