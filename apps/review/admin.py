from django.contrib import admin

from apps.review.models import LabeledSample, Review, ReviewClaim


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("study", "physician", "decision", "final_label", "version", "created_at")


@admin.register(LabeledSample)
class LabeledSampleAdmin(admin.ModelAdmin):
    list_display = ("id", "label", "source", "model_agreed", "excluded", "created_at")
    list_filter = ("source", "label", "excluded")


@admin.register(ReviewClaim)
class ReviewClaimAdmin(admin.ModelAdmin):
    list_display = ("study", "physician", "claimed_at", "expires_at")
