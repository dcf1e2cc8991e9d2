"""Large ledger exports as Celery tasks (issue 11): a zone's or the county's work ledger, tens of
thousands of rows. The task takes the job's id, checks the requester's scope again when it runs
(an account disabled or moved since the request gets nothing), writes the workbook with progress,
and leaves a file that expires after ``EXPORT_FILE_LIFETIME``; a beat job removes expired files."""

import datetime
import shutil

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from ledgers.models import LedgerExportJob, Level
from ledgers.work import campaign_phases, work_ledger_schools_sheets
from schools.exports import LedgerHeading, write_ledger_workbook
from schools.models import AuditEvent, Role, School
from schools.services import audit_event_record
from students.models import Student

EXPORT_FILE_LIFETIME = datetime.timedelta(days=1)
# Who may export a zone's or the county's ledger (DESIGN §2: zone admins their zone, the bureau all).
EXPORT_ROLES = {
    Level.ZONE: (Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN),
    Level.COUNTY: (Role.INSPECTOR, Role.BUREAU_ADMIN),
}
WORK_LEDGER_TITLE = "「万名教师大家访」工作台账"


def export_job_schools(job: LedgerExportJob):
    """The schools the job's requester may export now, or None when the unit is outside the scope."""
    user = job.user
    if not user.is_active or user.role not in EXPORT_ROLES.get(job.level, ()):
        return None
    schools = School.objects.visible_to(user)
    if job.level == Level.ZONE:
        schools = schools.filter(zone_id=job.unit_id)
        return schools if schools.exists() else None
    return schools


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def ledger_export_run(job_id: int) -> str:
    """Write the job's workbook. Claimed by a compare-and-swap from 排队中, so a redelivered message
    does not write it twice. Returns the final status."""
    claimed = LedgerExportJob.objects.filter(pk=job_id, status=LedgerExportJob.Status.QUEUED).update(
        status=LedgerExportJob.Status.RUNNING
    )
    if not claimed:
        return "skipped"
    job = LedgerExportJob.objects.select_related("user").get(pk=job_id)
    schools = export_job_schools(job)
    if schools is None:
        _fail(job, "导出范围已超出您的权限，未生成文件。")
        audit_event_record(
            action=AuditEvent.Action.DENIED,
            user=job.user,
            object_type="ledgers.LedgerExportJob",
            object_id=str(job.public_id),
        )
        return job.status
    try:
        phases = campaign_phases()
        total = Student.objects.filter(school__in=schools, status=Student.Status.ACTIVE).count()
        LedgerExportJob.objects.filter(pk=job.pk).update(total_rows=total)
        user = job.user
        export = write_ledger_workbook(
            work_ledger_schools_sheets(schools, phases),
            heading=LedgerHeading(
                title=WORK_LEDGER_TITLE, unit=job.unit_name, filled_by=user.display_name, phone=user.phone
            ),
            filename=job.file_name,
            progress=lambda done: LedgerExportJob.objects.filter(pk=job.pk).update(done_rows=done),
        )
        job.path.parent.mkdir(parents=True, exist_ok=True)
        with export.file as source, open(job.path, "wb") as target:
            source.seek(0)
            shutil.copyfileobj(source, target)
    except Exception as error:
        _fail(job, f"生成失败：{type(error).__name__}")
        raise
    now = timezone.now()
    LedgerExportJob.objects.filter(pk=job.pk).update(
        status=LedgerExportJob.Status.DONE,
        done_rows=export.rows,
        total_rows=export.rows,
        finished_at=now,
        expires_at=now + EXPORT_FILE_LIFETIME,
    )
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        user=job.user,
        object_type="ledgers.LedgerExportJob",
        object_id=str(job.public_id),
        detail={"kind": job.kind, "level": job.level, "unit": job.unit_id, "rows": export.rows, "format": "xlsx"},
    )
    return LedgerExportJob.Status.DONE


def _fail(job: LedgerExportJob, message: str) -> None:
    LedgerExportJob.objects.filter(pk=job.pk).update(
        status=LedgerExportJob.Status.FAILED, error=message[:300], finished_at=timezone.now()
    )
    job.status = LedgerExportJob.Status.FAILED


@shared_task(acks_late=True)
def ledger_exports_purge() -> int:
    """Beat job: delete the files of exports past their expiry; returns how many were removed."""
    removed = 0
    for job in LedgerExportJob.objects.filter(status=LedgerExportJob.Status.DONE, expires_at__lte=timezone.now()):
        if job.path.exists():
            job.path.unlink()
            removed += 1
    return removed
