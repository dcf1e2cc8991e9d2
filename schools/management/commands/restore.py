"""Restore an archive of ``manage.py backup``: ``python manage.py restore --input FILE``.

Into a new, empty database only (the one DATABASE_URL names, or the embedded SQLite file) and an
empty PRIVATE_FILES_ROOT: a restore never overwrites data that is already there. PostgreSQL is
restored with ``pg_restore --no-owner --no-privileges --single-transaction --exit-on-error`` (all
or nothing, owned by the role that restores), SQLite with its online backup API. Afterwards every
table's row count is compared with the counts the backup recorded, and the files with theirs.
Run ``manage.py migrate`` after it when the code is newer than the backup.
"""

import json
import sqlite3
import tarfile
import tempfile
from contextlib import closing
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from schools.management.commands.backup import (
    FORMAT,
    MANIFEST,
    PRIVATE,
    engine,
    libpq_command,
    postgresql_contents,
    private_files,
    run_program,
    sqlite_contents,
)


class Command(BaseCommand):
    help = "从 backup 命令生成的归档恢复数据库和私有文件（只恢复到新建的空数据库）。"
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--input", required=True, help="backup 命令生成的归档文件")

    def handle(self, *args, input: str, **options) -> None:
        source = Path(input)
        if not source.is_file():
            raise CommandError(f"找不到备份文件 {source}。")
        kind = engine()
        root = Path(settings.PRIVATE_FILES_ROOT)
        with tarfile.open(source, "r") as archive:
            manifest = _manifest(archive)
            if manifest["engine"] != kind:
                raise CommandError(
                    f"这是 {manifest['engine']} 数据库的备份，不能恢复到 {kind} 数据库；请使用同类数据库。"
                )
            private = _private_members(archive, root)
            self._check_empty(root)
            with tempfile.TemporaryDirectory(prefix=".homevisit-restore-") as work:
                database = Path(work) / manifest["database"]
                _extract(archive, manifest["database"], database)
                if kind == "postgresql":
                    self._restore_postgresql(database)
                else:
                    self._restore_sqlite(database)
            root.mkdir(parents=True, exist_ok=True)
            archive.extractall(root, members=private, filter="data")
        files = len(private)
        self._verify(manifest, files)
        tables = manifest["tables"]
        self.stdout.write(
            self.style.SUCCESS(
                f"恢复完成：{len(tables)} 张表共 {sum(tables.values())} 行，私有文件 {files} 个，"
                f"与 {manifest['created_at'][:19].replace('T', ' ')} 的备份一致。"
                "如果程序比备份新，请接着运行 python manage.py migrate。"
            )
        )

    def _check_empty(self, root: Path) -> None:
        tables = connection.introspection.table_names()
        if tables:
            raise CommandError(
                f"目标数据库 {connection.settings_dict['NAME']} 不是空的（已有 {len(tables)} 张表）。"
                "恢复只写入新建的空数据库，以免覆盖现有数据；请先新建数据库（见 README「备份与恢复」）。"
            )
        if any(private_files(root)):
            raise CommandError(f"私有文件目录 {root} 不是空的：请换一个空目录，或先把它移走。")

    def _restore_postgresql(self, dump: Path) -> None:
        arguments, environment = libpq_command("pg_restore", connection.settings_dict)
        run_program(
            [
                *arguments,
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--no-password",
                str(dump),
            ],
            environment,
        )

    def _restore_sqlite(self, copy: Path) -> None:
        connection.ensure_connection()
        with closing(sqlite3.connect(copy)) as source:
            source.backup(connection.connection)

    def _verify(self, manifest: dict, files: int) -> None:
        connection.close()  # a fresh connection sees the restored schema
        if engine() == "postgresql":
            with connection.cursor() as cursor:
                counts, _migrations = postgresql_contents(cursor)
        else:
            counts, _migrations = sqlite_contents(Path(connection.settings_dict["NAME"]))
        different = {
            table: (expected, counts.get(table))
            for table, expected in manifest["tables"].items()
            if counts.get(table) != expected
        }
        if different:
            listed = "，".join(f"{table} 应为 {want} 行、实为 {got}" for table, (want, got) in different.items())
            raise CommandError(f"恢复后的行数与备份不符：{listed}。")
        if files != manifest["private_files"]:
            raise CommandError(f"恢复了 {files} 个私有文件，备份中记录的是 {manifest['private_files']} 个。")


def _manifest(archive: tarfile.TarFile) -> dict:
    try:
        member = archive.extractfile(MANIFEST)
    except KeyError:
        member = None
    if member is None:
        raise CommandError("这不是 backup 命令生成的备份文件（缺少 manifest.json）。")
    manifest = json.loads(member.read().decode("utf-8"))
    if manifest.get("format") != FORMAT:
        raise CommandError(f"不认识的备份格式 {manifest.get('format')!r}：请用生成它的版本恢复。")
    return manifest


def _extract(archive: tarfile.TarFile, name: str, target: Path) -> None:
    member = archive.extractfile(name)
    if member is None:
        raise CommandError(f"备份文件中缺少 {name}。")
    with target.open("wb") as out:
        while chunk := member.read(1024 * 1024):
            out.write(chunk)


def _private_members(archive: tarfile.TarFile, root: Path) -> list[tarfile.TarInfo]:
    """The archive's private files, renamed to their place under ``root``. Checked before anything
    is restored: the ``data`` filter refuses absolute paths, ``..``, links and devices, so a
    tampered archive writes nothing outside ``root`` — nor anything at all."""
    prefix = PRIVATE + "/"
    members = []
    for member in archive.getmembers():
        if not member.name.startswith(prefix):
            continue
        if not member.isfile():
            raise CommandError(f"备份文件中的 {member.name} 不是普通文件，拒绝恢复。")
        member.name = member.name[len(prefix) :]
        try:
            tarfile.data_filter(member, str(root))
        except tarfile.FilterError as exc:
            raise CommandError(f"备份文件中的 {prefix}{member.name} 指向私有文件目录之外，拒绝恢复：{exc}") from None
        members.append(member)
    return members
