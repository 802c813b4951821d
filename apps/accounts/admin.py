from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import Consent, ResearchConsent, User


@admin.register(User)
class DeepMedUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "is_active", "date_joined")
    list_filter = ("role", "is_active")
    fieldsets = UserAdmin.fieldsets + (("DeepMed", {"fields": ("role",)}),)


class ReadOnlyRecordAdmin(admin.ModelAdmin):
    """Consent records are evidence: admins may read them, never add or edit them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Consent)
class ConsentAdmin(ReadOnlyRecordAdmin):
    list_display = ("user", "disclaimer_version", "accepted_at", "ip_address")


@admin.register(ResearchConsent)
class ResearchConsentAdmin(ReadOnlyRecordAdmin):
    list_display = ("user", "version", "granted", "decided_at", "ip_address")
    list_filter = ("granted", "version")
