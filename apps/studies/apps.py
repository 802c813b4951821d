from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "apps.studies"
    label = "studies"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from apps.accounts.signals import account_deleting
        from apps.studies import notifications, receivers

        account_deleting.connect(receivers.account_deleting, dispatch_uid="studies.account_deleting")
        # The review app stays unaware of e-mail: a saved review notifies its patient from here
        # (the sender by label, so studies does not import review).
        post_save.connect(notifications.review_saved, sender="review.Review", dispatch_uid="studies.review_notice")
