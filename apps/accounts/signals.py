"""Account events other apps act on, without accounts importing them."""

from __future__ import annotations

from django.dispatch import Signal

# "Delete my account and data", before the user row goes (kwargs: user, ip_address). Each app
# deletes the user's data through its own rules and returns audit details as a dict
# (apps.studies: every study through delete_study -> {"studies_deleted": n}).
account_deleting = Signal()
