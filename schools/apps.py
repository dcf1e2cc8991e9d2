from django.apps import AppConfig


class SchoolsConfig(AppConfig):
    name = "schools"
    verbose_name = "学校与组织"

    def ready(self) -> None:
        from django.contrib.auth import signals

        from schools import receivers

        signals.user_logged_in.connect(receivers.record_login, dispatch_uid="audit_login")
        signals.user_logged_out.connect(receivers.record_logout, dispatch_uid="audit_logout")
        signals.user_login_failed.connect(receivers.record_login_failed, dispatch_uid="audit_login_failed")
