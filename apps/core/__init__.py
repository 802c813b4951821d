"""Shared domain conventions (no models): the one application error type services raise
(errors), and the one door to the Celery workers (tasks.enqueue)."""
