from django.apps import AppConfig


class SchoolsConfig(AppConfig):
    name = "schools"
    verbose_name = "学校与组织"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth import signals
        from django.db.models.signals import post_save

        from schools import receivers

        signals.user_logged_in.connect(receivers.record_login, dispatch_uid="audit_login")
        signals.user_logged_out.connect(receivers.record_logout, dispatch_uid="audit_logout")
        signals.user_login_failed.connect(receivers.record_login_failed, dispatch_uid="audit_login_failed")
        # Accounts and sessions (等保 2.0): see schools.accounts.
        signals.user_logged_in.connect(receivers.start_session_clock, dispatch_uid="session_clock")
        user_locked_out.connect(receivers.record_lockout, dispatch_uid="audit_lockout")
        post_save.connect(
            receivers.end_sessions_of_disabled_user, sender=self.get_model("User"), dispatch_uid="end_disabled_sessions"
        )
