import datetime

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from homevisit.celery import app
from schools.models import ImportJob
from schools.services import import_job_apply, import_job_validate


@shared_task(acks_late=True)
def staff_import_validate(job_id: int) -> None:
    from schools.staff_import import StaffImporter

    import_job_validate(job_id=job_id, importer=StaffImporter())


@shared_task(acks_late=True)
def staff_import_apply(job_id: int) -> None:
    from schools.staff_import import StaffImporter

    import_job_apply(job_id=job_id, importer=StaffImporter())


# The tasks of each kind of import, by name: the roster's live in the students app, which this app
# may not import; Celery's registry finds them once the workers have loaded every app.
IMPORT_TASKS = {
    "staff": ("schools.tasks.staff_import_validate", "schools.tasks.staff_import_apply"),
    "roster": ("students.tasks.roster_import_validate", "students.tasks.roster_import_apply"),
}
STUCK_AFTER = datetime.timedelta(minutes=5)


@shared_task(acks_late=True)
def import_jobs_stuck_requeue() -> list[int]:
    """Beat job (every 5 minutes): queue again the import jobs whose task never ran — queued while
    the broker was down, or lost with a worker. A job still waiting to be checked after five
    minutes, or claimed for importing and not finished, is queued again; both tasks are safe to
    receive twice (the check starts only from 正在校验, the import claims the job under a row lock)."""
    cutoff = timezone.now() - STUCK_AFTER
    stuck = ImportJob.objects.filter(created_at__lt=cutoff).filter(
        Q(status=ImportJob.Status.VALIDATING, processed_rows=0) | Q(status=ImportJob.Status.IMPORTING)
    )
    app.loader.import_default_modules()  # every app's tasks module, as a worker loads them at start
    queued = []
    for job_id, kind, status in stuck.values_list("pk", "kind", "status")[:100]:
        validate_name, apply_name = IMPORT_TASKS[kind]
        name = validate_name if status == ImportJob.Status.VALIDATING else apply_name
        app.tasks[name].delay(job_id)
        queued.append(job_id)
    return queued
