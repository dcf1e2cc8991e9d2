from celery import shared_task

from schools.services import import_job_apply, import_job_validate


@shared_task(acks_late=True)
def staff_import_validate(job_id: int) -> None:
    from schools.staff_import import StaffImporter

    import_job_validate(job_id=job_id, importer=StaffImporter())


@shared_task(acks_late=True)
def staff_import_apply(job_id: int) -> None:
    from schools.staff_import import StaffImporter

    import_job_apply(job_id=job_id, importer=StaffImporter())
