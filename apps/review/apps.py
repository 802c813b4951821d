from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "apps.review"
    label = "review"

    def ready(self) -> None:
        from apps.review import receivers
        from apps.review.metrics import register_collector
        from apps.studies import signals

        register_collector()
        signals.identifying_text_flagged.connect(receivers.identifying_text_flagged, dispatch_uid="review.flagged")
        signals.study_deleting.connect(receivers.study_deleting, dispatch_uid="review.study_deleting")
