from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "visits"
    verbose_name = "家访"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from visits.notify import notify_account_locked

        user_locked_out.connect(notify_account_locked, dispatch_uid="notify_account_locked")
