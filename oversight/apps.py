from django.apps import AppConfig


class OversightConfig(AppConfig):
    """督查考核 (issue 12): review of records, back-checks, quality flags, inspections."""

    name = "oversight"
    verbose_name = "督查考核"

    def ready(self) -> None:
        from oversight import receivers  # noqa: F401 - connects the review counts receiver
