from django.apps import AppConfig


class LedgersConfig(AppConfig):
    name = "ledgers"
    verbose_name = "台账"

    def ready(self) -> None:
        from ledgers import (
            jobs,  # noqa: F401 - registers the ledger export tasks (issue 11)
            receivers,  # noqa: F401 - connects the statistics refresh receiver
        )
