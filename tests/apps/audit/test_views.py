"""The audit trail page for administrators: filters, pages, CSV export; itself audited."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent, Outcome
from apps.audit.services import record_event

pytestmark = pytest.mark.django_db

URL = "/audit/"
CSV_URL = "/audit/export.csv"


@pytest.fixture
def trail(patient, other_patient, physician):
    """Events of two patients' data by two actors, one of them 40 days old (and nothing else: the
    accounts' own creation events are cleared in SQL, as the ORM refuses)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table}")
    events = [
        record_event(actor=patient, action="study.read", object_type="studies.study", object_id="s1", patient=patient),
        record_event(
            actor=physician, action="review.read", object_type="studies.study", object_id="s1", patient=patient
        ),
        record_event(
            actor=other_patient,
            action="study.image",
            object_type="studies.study",
            object_id="s1",
            patient=patient,
            outcome=Outcome.DENIED,
        ),
        record_event(
            actor=other_patient, action="study.read", object_type="studies.study", object_id="s2", patient=other_patient
        ),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET at = %s WHERE id = %s",
            [timezone.now() - timezone.timedelta(days=40), events[3].pk],
        )
    return events


@pytest.fixture
def admin_web(client, admin_user):
    client.force_login(admin_user)
    return client


def _rows(page) -> list[int]:
    return [e.pk for e in page.context["page"].object_list]


def test_patients_and_physicians_get_403_and_anonymous_the_log_in_page(client, patient, physician):
    for user in (patient, physician):
        client.force_login(user)
        assert client.get(URL).status_code == 403
        assert client.get(CSV_URL).status_code == 403
    client.logout()
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    refusals = AuditEvent.objects.filter(action="audit.read", outcome=Outcome.DENIED)
    assert refusals.count() == 3  # the page itself is audited, refusals included


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"patient": "alice"}, [0, 1, 2]),
        ({"patient": "bob"}, [3]),
        ({"actor": "bob"}, [2, 3]),
        ({"actor": "dr-house", "patient": "alice"}, [1]),
        ({"action": "study.read"}, [0, 3]),
        ({"action": "study."}, [0, 2, 3]),  # a prefix finds the family
        ({"outcome": "denied"}, [2]),
        ({"date_to": (timezone.now() - timezone.timedelta(days=30)).date().isoformat()}, [3]),
        ({"date_from": (timezone.now() - timezone.timedelta(days=1)).date().isoformat(), "patient": "bob"}, []),
    ],
)
def test_filters(admin_web, trail, query, expected):
    page = admin_web.get(URL, query)
    assert page.status_code == 200
    assert sorted(_rows(page)) == sorted(trail[i].pk for i in expected)


def test_the_page_is_paginated_and_audited(admin_web, admin_user, patient):
    for i in range(60):
        record_event(actor=patient, action="study.read", object_id=str(i), patient=patient)
    query = {"patient": "alice", "action": "study.read"}
    first = admin_web.get(URL, query)
    second = admin_web.get(URL, {**query, "page": 2})
    assert len(_rows(first)) == 50 and len(_rows(second)) == 10
    assert "page=2" in first.content.decode() and "patient=alice" in first.content.decode()
    read = AuditEvent.objects.filter(action="audit.read", actor=admin_user).latest("id")
    assert read.outcome == Outcome.ALLOWED
    assert read.detail["filters"] == query and read.detail["page"] == 2 and read.detail["shown"] == 10


def test_csv_export_streams_the_filtered_rows_and_is_audited(admin_web, admin_user, trail):
    response = admin_web.get(CSV_URL, {"patient": "alice", "outcome": "allowed"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r["actor"] for r in rows) == ["alice", "dr-house"]
    assert {r["patient"] for r in rows} == {"alice"} and {r["outcome"] for r in rows} == {"allowed"}
    exported = AuditEvent.objects.get(action="audit.export", actor=admin_user)
    assert exported.detail["filters"] == {"patient": "alice", "outcome": "allowed"} and exported.detail["rows"] == 2


def test_csv_cells_cannot_become_formulas(admin_web, patient):
    record_event(actor=patient, action="study.read", object_id='=HYPERLINK("http://x")', patient=patient)
    body = b"".join(admin_web.get(CSV_URL).streaming_content).decode()
    assert "'=HYPERLINK" in body


def test_invalid_filters_are_reported_not_ignored(admin_web, trail):
    page = admin_web.get(URL, {"outcome": "maybe", "date_from": "yesterday"})
    assert page.status_code == 400 and page.context["page"] is None


def test_admins_find_the_page_in_the_top_bar(admin_web):
    assert 'href="/audit/"' in admin_web.get("/modelops/").content.decode()
