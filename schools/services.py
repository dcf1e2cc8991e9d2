"""Writes for the organisation: audit rows, accounts, classes."""

import hashlib
import logging
from contextvars import ContextVar, Token

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from schools.importing import SheetError, check_upload, read_sheet
from schools.models import AuditEvent, ImportJob, School, SchoolClass, SchoolYear, TeachingAssignment, User
from schools.signals import statistics_refresh_wanted

logger = logging.getLogger("homevisit.imports")


def client_ip(request: HttpRequest | None) -> str | None:
    """The address a request came from, for the audit log and the login lockout.

    ``REMOTE_ADDR`` is what the server saw. Behind a reverse proxy that is the proxy, so when the
    connection comes from one of ``TRUSTED_PROXIES`` the address is read from ``X-Forwarded-For``:
    the right-most entry that is not itself a trusted proxy (entries to its left were written by
    the client and can be forged). A client talking to the server directly cannot change its
    address with the header."""
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = settings.TRUSTED_PROXIES
    if not remote or remote not in trusted:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if address not in trusted:
            return address[:45]
    return remote


# The request being served, so that a service writing an audit row for the signed-in user (a
# visit saved, a report filed) records where it came from without taking the request as an
# argument. Set by schools.middleware.AuditRequestMiddleware; empty in tasks and commands.
_request_in_progress: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


def audit_request_bind(request: HttpRequest | None) -> Token:
    """Make ``request`` the one audit rows of its user are written from, until ``audit_request_unbind``."""
    return _request_in_progress.set(request)


def audit_request_unbind(token: Token) -> None:
    _request_in_progress.reset(token)


def _request_of(user: User) -> HttpRequest | None:
    """The request in progress if it is ``user``'s own (never lend one user's address to another's row)."""
    request = _request_in_progress.get()
    if request is None:
        return None
    signed_in = getattr(request, "user", None)
    if signed_in is None or not signed_in.is_authenticated or signed_in.pk != user.pk:
        return None
    return request


def audit_event_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    user: User | None = None,
    object_type: str = "",
    object_id: str = "",
    detail: dict | None = None,
    username: str = "",
) -> AuditEvent:
    """Append one audit row. With ``audit_event_build``, the only code that writes ``AuditEvent``;
    nothing updates or deletes it. Without ``request``, a row for the signed-in user of the request
    in progress takes its address."""
    event = audit_event_build(
        action=action,
        request=request,
        user=user,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
        username=username,
    )
    event.save()
    return event


def audit_event_build(
    *,
    action: str,
    request: HttpRequest | None = None,
    user: User | None = None,
    object_type: str = "",
    object_id: str = "",
    detail: dict | None = None,
    username: str = "",
) -> AuditEvent:
    """The audit row ``audit_event_record`` appends, unsaved: for a writer that appends many rows at
    once (the demo data's feedback items, ``visits.feedback_demo``) with the same fields."""
    if user is None and request is not None and request.user.is_authenticated:
        user = request.user
    if request is None and user is not None:
        request = _request_of(user)
    return AuditEvent(
        action=action,
        user=user,
        username=user.username if user else username[:150],
        object_type=object_type,
        object_id=str(object_id)[:64],
        ip=client_ip(request),
        path=request.path[:300] if request is not None else "",
        detail=detail or {},
    )


# --- import jobs -------------------------------------------------------------------------------
# An importer (students.roster_import.RosterImporter, schools.staff_import.StaffImporter) checks
# the rows of a sheet and applies the valid ones; these functions run the job around it.


def import_job_create(*, kind: str, school: School, uploaded_by: User, upload: UploadedFile) -> ImportJob:
    """Store an uploaded file privately and open a job for it; the caller queues validation."""
    if upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
        limit = settings.IMPORT_MAX_UPLOAD_BYTES // (1024 * 1024)
        raise SheetError(
            f"文件大小为 {upload.size / 1024 / 1024:.1f} MB，超过 {limit} MB 的上限。"
            "这类名单一般不超过 2 MB，请检查是否选错了文件。"
        )
    job = ImportJob(kind=kind, school=school, uploaded_by=uploaded_by, file_name=upload.name[:200], sha256="")
    job.file_path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(job.file_path, "wb") as handle:
        for chunk in upload.chunks():
            digest.update(chunk)
            handle.write(chunk)
    try:
        check_upload(job.file_path)
    except SheetError:
        job.file_path.unlink(missing_ok=True)
        raise
    job.sha256 = digest.hexdigest()
    job.full_clean()
    job.save()
    audit_event_record(
        action=AuditEvent.Action.IMPORT,
        user=uploaded_by,
        object_type="schools.ImportJob",
        object_id=str(job.public_id),
        detail={"kind": kind, "file": job.file_name, "stage": "upload"},
    )
    return job


def import_job_validate(*, job_id: int, importer) -> ImportJob:
    """Read and check every row; store the problems and a preview of what importing would do."""
    job = ImportJob.objects.select_related("school").get(pk=job_id)
    if job.status != ImportJob.Status.VALIDATING:
        return job

    def progress(done: int) -> None:
        ImportJob.objects.filter(pk=job.pk).update(processed_rows=done)

    try:
        sheet = read_sheet(job.file_path, importer.columns)
        total = len(sheet.rows)
        ImportJob.objects.filter(pk=job.pk).update(total_rows=total, processed_rows=0)
        checked = importer.check(sheet=sheet, school=job.school, progress=progress)  # consumes sheet.rows
    except SheetError as exc:
        return _import_job_fail(job, str(exc))
    except Exception:
        # A page polling this job must not wait for ever on a job that died.
        logger.exception("import job %s failed while validating", job.pk)
        _import_job_fail(job, "校验时发生系统错误，没有导入任何数据。请稍后重试或联系管理员。")
        raise
    job.total_rows = total
    job.processed_rows = total
    job.valid_rows = len(checked.valid)
    job.invalid_rows = len(checked.invalid_rows)
    job.problems = [problem.as_dict() for problem in checked.problems]
    job.preview = checked.preview
    job.status = ImportJob.Status.VALIDATED
    job.save()
    return job


def import_job_confirm(*, job: ImportJob, acting_user: User, skip_invalid: bool) -> bool:
    """Claim a validated job for applying. False when it was already claimed or cannot be applied."""
    if job.invalid_rows and not skip_invalid:
        return False
    if not job.valid_rows:
        return False
    claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.VALIDATED).update(
        status=ImportJob.Status.IMPORTING, processed_rows=0, result={"skip_invalid": skip_invalid}
    )
    return claimed == 1


def import_job_cancel(*, job: ImportJob, acting_user: User) -> bool:
    cancelled = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.VALIDATED).update(
        status=ImportJob.Status.CANCELLED, finished_at=timezone.now()
    )
    if cancelled:
        job.file_path.unlink(missing_ok=True)
    return cancelled == 1


def import_job_apply(*, job_id: int, importer) -> ImportJob:
    """Check the file again (the database may have changed since the preview) and apply the valid
    rows in one transaction: either every valid row is stored, or nothing is."""
    job = ImportJob.objects.select_related("school", "uploaded_by").get(pk=job_id)
    if job.status != ImportJob.Status.IMPORTING:
        return job
    skip_invalid = bool(job.result.get("skip_invalid"))
    try:
        sheet = read_sheet(job.file_path, importer.columns)
        checked = importer.check(sheet=sheet, school=job.school, progress=lambda done: None)
        if checked.invalid_rows and not skip_invalid:
            return _import_job_fail(
                job, "确认导入前数据已发生变化，文件中出现了新的错误行，未导入任何数据。请重新上传。"
            )
        with transaction.atomic():
            # Claim the job under a row lock: a task delivered twice applies the file once.
            if not ImportJob.objects.select_for_update().filter(pk=job.pk, status=ImportJob.Status.IMPORTING).exists():
                return job
            result = importer.apply(checked=checked, school=job.school, acting_user=job.uploaded_by)
            statistics_refresh_request(school_id=job.school_id)
            job.result = {**result, "skip_invalid": skip_invalid, "skipped_rows": len(checked.invalid_rows)}
            job.status = ImportJob.Status.DONE
            job.processed_rows = job.total_rows
            job.finished_at = timezone.now()
            job.save()
            audit_event_record(
                action=AuditEvent.Action.IMPORT,
                user=job.uploaded_by,
                object_type="schools.ImportJob",
                object_id=str(job.public_id),
                detail={"kind": job.kind, "file": job.file_name, "stage": "applied", **_counts(result)},
            )
    except SheetError as exc:
        return _import_job_fail(job, str(exc))
    except Exception:
        logger.exception("import job %s failed", job.pk)
        _import_job_fail(job, "导入时发生系统错误，未导入任何数据。请稍后重试或联系管理员。")
        raise
    job.file_path.unlink(missing_ok=True)
    return job


def _counts(result: dict) -> dict:
    return {key: value for key, value in result.items() if isinstance(value, int)}


def _import_job_fail(job: ImportJob, message: str) -> ImportJob:
    job.status = ImportJob.Status.FAILED
    job.error = message
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    job.file_path.unlink(missing_ok=True)
    return job


def school_classes_create(*, school: School, grade: int, numbers: list[int], acting_user: User) -> list[SchoolClass]:
    """Create the classes of a grade for the current school year; existing ones are left as they are."""
    year = SchoolYear.current()
    if year is None:
        raise ValidationError("尚未设置当前学年，请联系教育局管理员。")
    with transaction.atomic():
        existing = set(
            SchoolClass.objects.filter(school=school, school_year=year, grade=grade).values_list("number", flat=True)
        )
        created = []
        for number in numbers:
            if number in existing:
                continue
            school_class = SchoolClass(school=school, school_year=year, grade=grade, number=number)
            school_class.full_clean()
            school_class.save()
            created.append(school_class)
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="schools.SchoolClass",
            object_id=str(school.pk),
            detail={"created_classes": [c.name for c in created]},
        )
    return created


def account_school_change(*, user: User, school: School | None, acting_user: User) -> User:
    """Move a member of staff to another school (or to none). Their head-teacher and teaching
    assignments at the old school end with the move — the old classes stop counting them in their
    staff and their participation (DESIGN §7) — and both schools' statistics are asked for. One
    transaction, with the audit row. Raises ``ValidationError`` (nothing changed) when the account
    is not valid afterwards."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        old_school_id = user.school_id
        if old_school_id == (school.pk if school else None):
            return user
        user.school = school
        user.full_clean()
        user.save(update_fields=["school"])
        headed = SchoolClass.objects.filter(head_teacher=user).exclude(school=school)
        ended_heads = [c.name for c in headed]
        headed.update(head_teacher=None)
        taught = TeachingAssignment.objects.filter(teacher=user).exclude(school_class__school=school)
        ended_assignments = taught.count()
        taught.delete()
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="schools.User",
            object_id=str(user.pk),
            detail={
                "school": [old_school_id, user.school_id],
                "head_teacher_ended": ended_heads,
                "teaching_assignments_ended": ended_assignments,
            },
        )
        for school_id in {old_school_id, user.school_id} - {None}:
            statistics_refresh_request(school_id=school_id)
    return user


def statistics_refresh_request(*, school_id: int) -> None:
    """Mark the school's statistics stale inside the caller's transaction and, once it commits, ask
    for a refresh. The mark is a row, not a message: if the broker is down the request is not lost,
    the periodic sweep finds the mark. A rolled-back change leaves no mark and asks for nothing."""
    # A value from Python, not the database's clock: the refresh compares it back exactly.
    School.objects.filter(pk=school_id).update(statistics_stale_since=timezone.now())
    transaction.on_commit(
        lambda: statistics_refresh_wanted.send(sender=School, school_id=school_id),
        robust=True,
    )


def import_job_passwords_take(*, job: ImportJob) -> list[dict]:
    """The new accounts of a finished staff import with their one-time passwords, handed out once:
    the passwords are removed from the stored result in the same step (under a row lock, so two
    tabs cannot both get them), and later views list the accounts without them."""
    if job.status != ImportJob.Status.DONE or not job.result.get("accounts"):
        return []
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        accounts = list(locked.result.get("accounts", []))
        if any(account.get("password") for account in accounts):
            locked.result = {
                **locked.result,
                "accounts": [{**account, "password": ""} for account in accounts],
                "passwords_shown_at": timezone.now().isoformat(),
            }
            locked.save(update_fields=["result"])
    job.result = locked.result
    return accounts
