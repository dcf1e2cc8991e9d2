"""Backup and restore (README: 备份与恢复): an archive made while the system holds visits, photos
and statistics, restored into a new database and an empty files directory, gives back every row
of every table, unchanged, and every file, byte for byte.

The restore runs as an operator runs it, ``manage.py restore`` in a separate process pointed at the
new database; the comparison reads both databases directly (psycopg2 or sqlite3), not through the
models. On PostgreSQL the new database is made with ``createdb`` and dropped afterwards.
"""

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.test_statistics import NOW, build_county
from tests.test_visits import form_data, jpeg_with_gps
from visits.models import Attachment, Visit

pytestmark = pytest.mark.django_db(transaction=True)


def _pg_params(name: str) -> dict:
    params = connection.settings_dict
    return {
        "dbname": name,
        "user": params["USER"],
        "password": params["PASSWORD"],
        "host": params["HOST"],
        "port": params["PORT"],
    }


def _pg_url(name: str) -> str:
    params = connection.settings_dict
    credentials = quote(params["USER"] or "", safe="")
    if params["PASSWORD"]:
        credentials += ":" + quote(params["PASSWORD"], safe="")
    return f"postgres://{credentials}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{quote(name, safe='')}"


def _pg_client_env() -> dict:
    params = connection.settings_dict
    env = {**os.environ, "PGHOST": params["HOST"] or "127.0.0.1", "PGPORT": str(params["PORT"] or 5432)}
    env["PGUSER"] = params["USER"] or ""
    if params["PASSWORD"]:
        env["PGPASSWORD"] = params["PASSWORD"]
    return env


@contextmanager
def _fresh_database(tmp_path: Path) -> Iterator[tuple[str, callable]]:
    """(DATABASE_URL of a new, empty database, a function opening a DB-API connection to it)."""
    if connection.vendor == "postgresql":
        name = f"{connection.settings_dict['NAME']}_restored"
        env = _pg_client_env()
        subprocess.run(["dropdb", "--if-exists", "--force", name], env=env, check=True)  # noqa: S603, S607
        subprocess.run(["createdb", name], env=env, check=True)  # noqa: S603, S607 - the README's command
        try:
            yield _pg_url(name), lambda: psycopg2.connect(**_pg_params(name))
        finally:
            subprocess.run(["dropdb", "--if-exists", "--force", name], env=env, check=True)  # noqa: S603, S607
    else:
        path = tmp_path / "restored.sqlite3"
        yield f"sqlite:///{path}", lambda: _sqlite(path)


def _sqlite(path) -> sqlite3.Connection:
    # The converters Django registered for its own connections, so values compare alike.
    return sqlite3.connect(path, detect_types=sqlite3.PARSE_DECLTYPES | sqlite3.PARSE_COLNAMES)


@contextmanager
def _source_database() -> Iterator:
    """A plain DB-API connection to the database the test wrote (not Django's cursor wrapper)."""
    if connection.vendor == "postgresql":
        with closing(psycopg2.connect(**_pg_params(connection.settings_dict["NAME"]))) as db:
            yield db
    else:
        connection.ensure_connection()
        yield connection.connection  # the in-memory test database: reachable through this one only


def _tables(db) -> list[str]:
    cursor = db.cursor()
    if isinstance(db, sqlite3.Connection):
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    else:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return sorted(row[0] for row in cursor.fetchall())


def _contents(db) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order (the first column of every table here)."""
    cursor = db.cursor()
    contents = {}
    for table in _tables(db):
        cursor.execute(f'SELECT * FROM "{table}" ORDER BY 1')  # noqa: S608 - names from the catalogue
        contents[table] = [tuple(row) for row in cursor.fetchall()]
    return contents


def _restore(archive: Path, database_url: str, private_root: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PRIVATE_FILES_ROOT": str(private_root),
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "backup-test-secret-key-that-is-long-enough-0123",
    }
    env.pop("CELERY_BROKER_URL", None)
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "restore", "--input", str(archive)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def records(world, tmp_path) -> Attachment:
    """A submitted visit with a photo (through the form, as a teacher files it) and a county of
    schools, staff, students, visits and safety reports."""
    with time_machine.travel(NOW, tick=True):
        build_county(81, schools=2)
        client = Client()
        client.force_login(world.teacher)
        photo = SimpleUploadedFile("家访照片.jpg", jpeg_with_gps(), content_type="image/jpeg")
        response = client.post(reverse("visit_create"), {**form_data(world), "photos": [photo]}, secure=True)
    assert response.status_code == 302
    return Attachment.objects.get()


def test_a_backup_restored_into_a_new_database_has_every_row_and_every_file(records, tmp_path):
    archive = tmp_path / "backups" / "homevisit.tar"
    archive.parent.mkdir()
    call_command("backup", output=str(archive), stdout=io.StringIO())
    assert archive.stat().st_mode & 0o777 == 0o600  # minors' personal information: its owner only
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["private_files"] == 1 and manifest["tables"]["visits_visit"] == Visit.objects.count()

    restored_files = tmp_path / "restored-private"
    with _fresh_database(tmp_path) as (database_url, connect):
        result = _restore(archive, database_url, restored_files)
        assert result.returncode == 0, result.stderr
        assert "恢复完成" in result.stdout
        with _source_database() as source, closing(connect()) as restored:
            before, after = _contents(source), _contents(restored)

    assert list(after) == list(before)
    for table, rows in before.items():
        assert len(after[table]) == len(rows), table
        assert after[table] == rows, table  # field by field
    assert len(before["visits_visit"]) > 5 and len(before["students_student"]) > 10
    photo = restored_files / "attachments" / records.path.name
    assert photo.read_bytes() == records.path.read_bytes()
    visit = records.visit
    row = next(r for r in after["visits_visit"] if r[0] == visit.pk)
    assert visit.situation in row and visit.measures in row  # the Chinese text, intact


def test_the_sqlite_copy_in_the_archive_opens_as_it_is(records, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the embedded default's archive; PostgreSQL's is restored above")
    archive = tmp_path / "homevisit.tar"
    call_command("backup", output=str(archive), stdout=io.StringIO())
    with tarfile.open(archive) as tar:
        tar.extract("database.sqlite3", tmp_path, filter="data")
    with closing(_sqlite(tmp_path / "database.sqlite3")) as copy:
        assert copy.execute("SELECT COUNT(*) FROM visits_visit").fetchone()[0] == Visit.objects.count()
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_restore_never_writes_over_a_database_that_has_data(records, tmp_path, settings):
    archive = tmp_path / "homevisit.tar"
    call_command("backup", output=str(archive), stdout=io.StringIO())
    visits = Visit.objects.count()
    settings.PRIVATE_FILES_ROOT = tmp_path / "empty"

    with pytest.raises(CommandError, match="不是空的"):
        call_command("restore", input=str(archive), stdout=io.StringIO())

    assert Visit.objects.count() == visits


def test_a_backup_does_not_overwrite_an_existing_file(tmp_path):
    archive = tmp_path / "homevisit.tar"
    archive.write_bytes(b"yesterday's backup")

    with pytest.raises(CommandError, match="已存在"):
        call_command("backup", output=str(archive), stdout=io.StringIO())

    assert archive.read_bytes() == b"yesterday's backup"


def test_a_tampered_archive_with_a_path_outside_the_files_directory_is_refused(records, tmp_path, settings):
    archive = tmp_path / "homevisit.tar"
    call_command("backup", output=str(archive), stdout=io.StringIO())
    with tarfile.open(archive, "a") as tar:
        evil = tarfile.TarInfo("private/../../escaped.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    settings.PRIVATE_FILES_ROOT = tmp_path / "restored" / "private"

    with pytest.raises(CommandError, match="私有文件目录之外"):
        call_command("restore", input=str(archive), stdout=io.StringIO())

    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "restored").exists()
