from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import Consent, User


@admin.register(User)
class DeepMedUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "is_active", "date_joined")
    list_filter = ("role", "is_active")
    fieldsets = UserAdmin.fieldsets + (("DeepMed", {"fields": ("role",)}),)


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ("user", "disclaimer_version", "research_use", "accepted_at", "ip_address")
    readonly_fields = ("user", "disclaimer_version", "research_use", "accepted_at", "ip_address")

    def has_add_permission(self, request):
        return False
