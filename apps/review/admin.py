from django.contrib import admin

from apps.audit.admin import PatientDataAdmin
from apps.review.models import LabeledSample, Review, ReviewClaim

# Read-only and audited (apps.audit.admin.PatientDataAdmin): reviews, samples and claims change
# only through apps.review.services.


@admin.register(Review)
class ReviewAdmin(PatientDataAdmin):
    list_display = ("study", "physician", "decision", "final_label", "version", "created_at")


@admin.register(LabeledSample)
class LabeledSampleAdmin(PatientDataAdmin):
    list_display = ("id", "label", "source", "model_agreed", "excluded", "created_at")
    list_filter = ("source", "label", "excluded")
    exclude = ("image",)
    readonly_fields = ("stored_image",)

    @admin.display(description="image (stored file)")
    def stored_image(self, obj: LabeledSample) -> str:
        return obj.image.name or "-"  # a name only: images are served by the audited study views


@admin.register(ReviewClaim)
class ReviewClaimAdmin(PatientDataAdmin):
    list_display = ("study", "physician", "claimed_at", "expires_at")
