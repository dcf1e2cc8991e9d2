"""Back up everything the system keeps: ``python manage.py backup --output FILE``.

FILE is one tar archive (uncompressed: the PostgreSQL dump is compressed already, and photos and
scans do not compress), readable by its owner only — it holds minors' personal information:

    manifest.json      format, time, database engine, migrations applied, rows per table, files
    database.pgdump    PostgreSQL: ``pg_dump --format=custom``
    database.sqlite3   SQLite (the embedded default): a copy made with SQLite's online backup API
    private/...        PRIVATE_FILES_ROOT: visit attachments and roster uploads not yet imported

The database copy is consistent while the system runs: pg_dump reads one snapshot, and the row
counts of the manifest are taken in that same snapshot (SQLite's are counted in the copy). The
files are copied after the database, so every attachment row in the copy has its file; one added
meanwhile leaves an unreferenced file, one deleted meanwhile is missing, as it would be anyway.
The archive is written under a temporary name beside FILE and renamed once complete, so FILE is
never half-written. ``python manage.py restore --input FILE`` puts it back (README: 备份与恢复).
"""

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

FORMAT = 1
MANIFEST = "manifest.json"
PGDUMP = "database.pgdump"
SQLITE = "database.sqlite3"
PRIVATE = "private"
# libpq connection parameters that Django's OPTIONS may carry and pg_dump/pg_restore understand.
LIBPQ_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "options",
    "application_name",
    "target_session_attrs",
    "service",
    "passfile",
)


def engine() -> str:
    """``postgresql`` or ``sqlite`` (the two back ends the system runs on)."""
    if connection.vendor not in ("postgresql", "sqlite"):
        raise CommandError(f"不支持的数据库类型：{connection.vendor}。")
    return connection.vendor


def libpq_command(program: str, settings_dict: dict) -> tuple[list[str], dict[str, str]]:
    """``program`` (pg_dump, pg_restore) with the connection of ``settings_dict`` as a conninfo
    string, and the environment to run it in: the password goes in PGPASSWORD, never on the
    command line (where every user of the machine could read it)."""
    executable = shutil.which(program)
    if executable is None:
        raise CommandError(
            f"找不到 {program}：请安装与数据库服务器同一大版本或更新的 PostgreSQL 客户端"
            "（Debian：apt-get install postgresql-client）。"
        )
    parameters = {
        "dbname": settings_dict["NAME"],
        "host": settings_dict.get("HOST") or "",
        "port": str(settings_dict.get("PORT") or ""),
        "user": settings_dict.get("USER") or "",
    }
    options = settings_dict.get("OPTIONS") or {}
    parameters.update({key: str(options[key]) for key in LIBPQ_OPTIONS if key in options})
    conninfo = " ".join(f"{key}='{_libpq_quote(value)}'" for key, value in parameters.items() if value)
    environment = {**os.environ}
    if settings_dict.get("PASSWORD"):
        environment["PGPASSWORD"] = settings_dict["PASSWORD"]
    return [executable, f"--dbname={conninfo}"], environment


def _libpq_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def run_program(arguments: list[str], environment: dict[str, str]) -> None:
    """Run a PostgreSQL client program; its own error message becomes the command's."""
    result = subprocess.run(arguments, env=environment, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        name = Path(arguments[0]).name
        raise CommandError(f"{name} 失败（退出码 {result.returncode}）：{result.stderr.strip()[-2000:]}")


def sqlite_contents(database: Path) -> tuple[dict[str, int], list[str]]:
    """Rows per table, and the migrations applied, of an SQLite database file."""
    with closing(sqlite3.connect(database)) as db:
        return _contents(
            db.cursor(), "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )


def postgresql_contents(cursor) -> tuple[dict[str, int], list[str]]:
    """Rows per table of the current schema, and the migrations applied, in the cursor's transaction."""
    return _contents(cursor, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")


def _contents(cursor, tables_sql: str) -> tuple[dict[str, int], list[str]]:
    cursor.execute(tables_sql)
    counts = {}
    for table in sorted(row[0] for row in cursor.fetchall()):
        cursor.execute(f"SELECT COUNT(*) FROM {_quote(table)}")  # noqa: S608 - a name read from the catalogue
        counts[table] = cursor.fetchone()[0]
    migrations = []
    if "django_migrations" in counts:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
        migrations = [f"{app}.{name}" for app, name in cursor.fetchall()]
    return counts, migrations


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def private_files(root: Path) -> Iterator[Path]:
    """The regular files under ``root``, in a stable order."""
    if root.is_dir():
        yield from sorted(path for path in root.rglob("*") if path.is_file() and not path.is_symlink())


class Command(BaseCommand):
    help = "备份数据库和附件等私有文件到一个归档文件（恢复见 restore 命令）。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", required=True, help="归档文件路径，例如 /backup/homevisit-2026-06-30.tar")

    def handle(self, *args, output: str, **options) -> None:
        target = Path(output).resolve()
        if target.exists():
            raise CommandError(f"{target} 已存在：备份不覆盖已有文件，请换一个文件名。")
        if not target.parent.is_dir():
            raise CommandError(f"目录 {target.parent} 不存在。")
        kind = engine()
        started = timezone.now()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".homevisit-backup-") as work:
            work_dir = Path(work)
            if kind == "postgresql":
                database, (counts, migrations) = self._dump_postgresql(work_dir)
            else:
                database, (counts, migrations) = self._copy_sqlite(work_dir)
            partial = work_dir / "archive.tar"
            manifest = {
                "format": FORMAT,
                "created_at": timezone.localtime(started).isoformat(),
                "engine": kind,
                "database": database.name,
                "migrations": migrations,
                "tables": counts,
            }
            files = self._write_archive(partial, database, manifest)
            partial.chmod(0o600)
            os.replace(partial, target)
        size_mb = target.stat().st_size / 1024 / 1024
        self.stdout.write(
            self.style.SUCCESS(
                f"备份完成：{target}（{size_mb:.1f} MB）。数据库 {len(counts)} 张表共 {sum(counts.values())} 行，"
                f"私有文件 {files} 个。恢复方法见 README「备份与恢复」。"
            )
        )

    def _dump_postgresql(self, work_dir: Path) -> tuple[Path, tuple[dict[str, int], list[str]]]:
        """pg_dump in a snapshot exported by a transaction of our own, which counts the rows in it."""
        dump = work_dir / PGDUMP
        arguments, environment = libpq_command("pg_dump", connection.settings_dict)
        raw = connection.get_new_connection(connection.get_connection_params())
        try:
            raw.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with raw.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot()")
                snapshot = cursor.fetchone()[0]
                contents = postgresql_contents(cursor)
                # The snapshot lives as long as this transaction: pg_dump runs while it is open.
                run_program(
                    [*arguments, "--format=custom", "--no-password", f"--snapshot={snapshot}", f"--file={dump}"],
                    environment,
                )
            raw.rollback()
        finally:
            raw.close()
        return dump, contents

    def _copy_sqlite(self, work_dir: Path) -> tuple[Path, tuple[dict[str, int], list[str]]]:
        """SQLite's online backup API, from the live connection: a consistent copy even while
        others write (a raw file copy could catch a page half-written)."""
        copy = work_dir / SQLITE
        connection.ensure_connection()
        with closing(sqlite3.connect(copy)) as target:
            connection.connection.backup(target)
        return copy, sqlite_contents(copy)

    def _write_archive(self, path: Path, database: Path, manifest: dict) -> int:
        """The database copy, the private files, and last the manifest (which counts the files).
        Returns the number of files."""
        root = Path(settings.PRIVATE_FILES_ROOT)
        database.chmod(0o600)  # also when someone unpacks the archive by hand
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
            archive.add(database, arcname=database.name)
            files = 0
            for file in private_files(root):
                archive.add(file, arcname=f"{PRIVATE}/{file.relative_to(root).as_posix()}", recursive=False)
                files += 1
            body = json.dumps({**manifest, "private_files": files}, ensure_ascii=False, indent=2).encode("utf-8")
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
            archive.addfile(info, fileobj=io.BytesIO(body))
        return files
