"""The import travels through the real broker to a real worker (the production path).

Runs when CELERY_BROKER_URL is set; the embedded run has no broker and skips it, but CI's second
run sets HOMEVISIT_REQUIRE_SERVICES=1, where a missing broker or database is a failure."""

import time

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from schools.models import ImportJob
from students.models import Student
from tests.conftest import REQUIRE_SERVICES
from tests.xlsx import roster_workbook_bytes


def _require_broker() -> None:
    if settings.CELERY_BROKER_URL:
        return
    if REQUIRE_SERVICES:
        pytest.fail("HOMEVISIT_REQUIRE_SERVICES=1 but CELERY_BROKER_URL is not set")
    pytest.skip("no Celery broker configured: the embedded run executes tasks in-process")


def test_the_service_run_uses_postgresql_and_redis():
    if not REQUIRE_SERVICES:
        pytest.skip("only meaningful in the services run")
    assert connection.vendor == "postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")


def _wait_for(job: ImportJob, status: str, seconds: float = 30) -> ImportJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == status:
            return job
        if job.status == ImportJob.Status.FAILED:
            pytest.fail(f"import failed: {job.error}")
        time.sleep(0.1)
    pytest.fail(f"job stayed {job.status!r}, expected {status!r}")


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_validates_and_applies_a_roster_upload_from_redis(world, login):
    _require_broker()
    from celery.contrib.testing.worker import start_worker

    from homevisit.celery import app

    app.conf.task_always_eager = False
    app.control.purge()
    rows = [
        ["吴小雨", "女", "G110105201601010021", "三年级", "2班"],
        ["郑小川", "男", "G110105201602020031", "三年级", "2班"],
    ]
    upload = SimpleUploadedFile("名册.xlsx", roster_workbook_bytes(["姓名", "性别", "学籍号", "年级", "班级"], rows))
    client = login(world.school_admin)
    with start_worker(app, perform_ping_check=False, shutdown_timeout=10):
        response = client.post("/roster/import/", {"file": upload})
        assert response.status_code == 302
        job = ImportJob.objects.get(school=world.school, kind=ImportJob.Kind.ROSTER)
        job = _wait_for(job, ImportJob.Status.VALIDATED)
        assert job.valid_rows == 2 and job.invalid_rows == 0
        client.post(f"/roster/import/{job.public_id}/confirm/")
        _wait_for(job, ImportJob.Status.DONE)
    names = set(Student.objects.filter(school_class=world.school_class).values_list("name", flat=True))
    assert {"吴小雨", "郑小川"} <= names
