"""`manage.py serve`: several web processes only in services mode (embedded mode's worker and
channel layer live in the one web process). Served for real: test_serve_services.py."""

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def embedded(settings):
    settings.EMBEDDED_MODE = True
    settings.DEEPMED_WEB_PROCESSES = 1
    return settings


def test_embedded_mode_refuses_more_than_one_web_process(embedded):
    with pytest.raises(CommandError, match="needs services mode"):
        call_command("serve", "--processes", "2", "--port", "1")


def test_embedded_mode_refuses_more_than_one_web_process_from_the_environment(embedded):
    embedded.DEEPMED_WEB_PROCESSES = 3  # DEEPMED_WEB_PROCESSES=3: the default of --processes
    with pytest.raises(CommandError, match="--processes 3 .*needs services mode"):
        call_command("serve", "--port", "1")


def test_fewer_than_one_web_process_is_refused(settings):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("serve", "--processes", "0", "--port", "1")
