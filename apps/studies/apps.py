from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "apps.studies"
    label = "studies"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from apps.review.models import Review
        from apps.studies import notifications

        # The review app stays unaware of e-mail: a saved review notifies its patient from here.
        post_save.connect(notifications.review_saved, sender=Review, dispatch_uid="studies.review_notice")
