from celery import shared_task

from schools.services import import_job_apply, import_job_validate
from students.roster_import import RosterImporter


@shared_task(acks_late=True)
def roster_import_validate(job_id: int) -> None:
    import_job_validate(job_id=job_id, importer=RosterImporter())


@shared_task(acks_late=True)
def roster_import_apply(job_id: int) -> None:
    import_job_apply(job_id=job_id, importer=RosterImporter())
