"""Role checks for web views: anonymous visitors go to the log-in page, other roles get 403."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from apps.accounts.models import Role


def role_required(allowed: Callable[[object], bool], message: str):
    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not allowed(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


admin_required = role_required(lambda user: user.role == Role.ADMIN, "Model operations are for administrators.")
clinical_staff_required = role_required(
    lambda user: user.is_clinical_staff, "Only physicians and administrators review studies."
)
