"""API access by role (DRF): the base views the apps' admin-only endpoints derive from."""

from __future__ import annotations

from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.views import APIView


class IsAdminRole(BasePermission):
    message = "Model operations are for administrators."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.role == "admin")


class AdminApi(APIView):
    permission_classes = [IsAuthenticated, IsAdminRole]
