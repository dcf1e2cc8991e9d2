"""Retention of the audit log: ``python manage.py audit_purge --before YYYY-MM-DD``.

Rows older than the given day are deleted in batches; a day less than ``AUDIT_RETENTION_DAYS``
(180) days ago is refused, so that no one can empty the recent log. The purge writes its own audit
row, which says who ran it (the operating-system account), up to which day and how many rows went.
"""

import datetime
import getpass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from schools.models import AuditEvent
from schools.services import audit_event_record

DEFAULT_BATCH_SIZE = 5000


def _day(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"日期「{value}」格式不对，应为 YYYY-MM-DD，例如 2026-01-31。") from None


class Command(BaseCommand):
    help = "删除某日之前的审计日志（只能删除保留期以前的记录），并记录这次清理。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, help="删除这一天（不含）之前的记录，格式 YYYY-MM-DD")
        parser.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"每批删除的行数（默认 {DEFAULT_BATCH_SIZE}）"
        )

    def handle(self, *args, before: str, batch_size: int, **options) -> None:
        day = _day(before)
        if batch_size < 1:
            raise CommandError("--batch-size 必须是正整数。")
        retention = settings.AUDIT_RETENTION_DAYS
        today = timezone.localdate()
        latest = today - datetime.timedelta(days=retention)
        if day > latest:
            raise CommandError(
                f"审计日志至少保留 {retention} 天：--before 不能晚于 {latest:%Y-%m-%d}（今天是 {today:%Y-%m-%d}），"
                f"您给的是 {day:%Y-%m-%d}，没有删除任何记录。"
            )
        moment = timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
        deleted = AuditEvent.objects.purge_before(moment, batch_size=batch_size)
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            username=f"audit_purge:{_operator()}",
            object_type="schools.AuditEvent",
            object_id=f"before:{day:%Y-%m-%d}",
            detail={"event": "purge", "before": day.isoformat(), "deleted": deleted, "retention_days": retention},
        )
        self.stdout.write(self.style.SUCCESS(f"已删除 {day:%Y-%m-%d} 之前的审计日志 {deleted} 条。"))


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
