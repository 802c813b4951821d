from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from apps.audit.admin import PatientDataAdmin
from apps.studies.models import Prediction, Study

# Read-only and audited (apps.audit.admin.PatientDataAdmin). Stored files are linked through the
# permission-checked, audited views: there is no media URL (the admin's file widget would need one).


@admin.register(Study)
class StudyAdmin(PatientDataAdmin):
    list_display = ("id", "owner", "status", "original_format", "identifying_text", "created_at")
    list_filter = ("status", "original_format", "identifying_text")
    exclude = ("image",)
    readonly_fields = ("image_link",)

    @admin.display(description="image")
    def image_link(self, obj: Study) -> str:
        return format_html('<a href="{}">image.png</a>', reverse("study-image", kwargs={"study_id": obj.pk}))


@admin.register(Prediction)
class PredictionAdmin(PatientDataAdmin):
    list_display = ("study", "role", "label", "confidence", "model_name", "model_version_label", "created_at")
    exclude = ("heatmap",)
    readonly_fields = ("heatmap_link",)

    @admin.display(description="heat-map")
    def heatmap_link(self, obj: Prediction) -> str:
        if not obj.heatmap:
            return "-"
        return format_html('<a href="{}">heatmap.png</a>', reverse("study-heatmap", kwargs={"study_id": obj.study_id}))
