from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import Consent, ResearchConsent, User
from apps.audit.admin import AuditedAdminMixin, PatientDataAdmin


@admin.register(User)
class DeepMedUserAdmin(AuditedAdminMixin, UserAdmin):
    """Accounts stay manageable here (roles, resets, deactivation), but patients' names and
    e-mail addresses are patient data: every page is audited."""

    list_display = ("username", "email", "role", "is_active", "date_joined")
    list_filter = ("role", "is_active")
    fieldsets = UserAdmin.fieldsets + (("DeepMed", {"fields": ("role",)}),)


class ReadOnlyRecordAdmin(PatientDataAdmin):
    """Consent records are evidence: admins may read them (audited), never add, edit or delete them."""


@admin.register(Consent)
class ConsentAdmin(ReadOnlyRecordAdmin):
    list_display = ("user", "disclaimer_version", "accepted_at", "ip_address")


@admin.register(ResearchConsent)
class ResearchConsentAdmin(ReadOnlyRecordAdmin):
    list_display = ("user", "version", "granted", "decided_at", "ip_address")
    list_filter = ("granted", "version")
