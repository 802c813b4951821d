from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "apps.studies"
    label = "studies"

    def ready(self) -> None:
        from apps.accounts.signals import account_deleting
        from apps.studies import receivers

        account_deleting.connect(receivers.account_deleting, dispatch_uid="studies.account_deleting")
