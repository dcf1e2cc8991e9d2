"""``python manage.py export_statistics --output sheet.xlsx [--zone CODE | --school CODE] [--period CODE]
[--schools]``: the bureau's statistics sheet (「万名教师大家访」活动情况统计表) written to a file, by the
same writer as the download. The whole county by default, its zones listed (``--schools``: every
school); ``--zone`` lists a zone's schools, ``--school`` a school's classes."""

import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ledgers.models import Level, UnitStatistics
from ledgers.selectors import campaign_periods, statistics_campaign
from ledgers.sheet import sheet_contact, statistics_sheet_export
from schools.models import AuditEvent, School, Zone
from schools.services import audit_event_record


class Command(BaseCommand):
    help = "导出「万名教师大家访」活动情况统计表（XLSX）：默认为全县（列出各片区），也可指定片区或学校。"

    def add_arguments(self, parser: CommandParser) -> None:
        """--output, one of --zone / --school, --period and --schools."""
        parser.add_argument("--output", required=True, help="输出文件路径，如 统计表.xlsx")
        unit = parser.add_mutually_exclusive_group()
        unit.add_argument("--zone", metavar="CODE", help="片区代码：导出该片区的统计表（列出其各学校）")
        unit.add_argument("--school", metavar="CODE", help="学校代码：导出该学校的统计表（列出其各班级）")
        parser.add_argument(
            "--period",
            metavar="CODE",
            default=None,
            help="统计期间：campaign（全年，默认）或阶段代码，如 full_round、revisit",
        )
        parser.add_argument("--schools", action="store_true", help="全县统计表逐校列出（默认按片区列出）")

    def handle(
        self,
        *args,
        output: str,
        zone: str | None,
        school: str | None,
        period: str | None,
        schools: bool,
        **options,
    ) -> None:
        """Find the unit's stored row, write its sheet to ``output`` and record the export."""
        campaign = statistics_campaign()
        if campaign is None:
            raise CommandError("还没有家访活动，无法导出统计表。请先在管理后台创建本年度的家访活动。")
        periods = campaign_periods(campaign)
        chosen = periods[0] if period is None else next((p for p in periods if p.code == period), None)
        if chosen is None:
            known = "、".join(f"{p.code}（{p.label}）" for p in periods)
            raise CommandError(f"没有统计期间“{period}”。可选：{known}。")
        if schools and (zone or school):
            raise CommandError("--schools 只用于全县统计表，不能与 --zone 或 --school 同时使用。")

        if zone is not None:
            found = Zone.objects.filter(code=zone).first()
            if found is None:
                raise CommandError(f"没有代码为“{zone}”的片区。")
            level, unit_id = Level.ZONE, found.pk
        elif school is not None:
            found = School.objects.filter(code=school).first()
            if found is None:
                raise CommandError(f"没有代码为“{school}”的学校。")
            level, unit_id = Level.SCHOOL, found.pk
        else:
            found, level, unit_id = None, Level.COUNTY, 0

        unit = (
            UnitStatistics.objects.select_related("school")
            .filter(campaign=campaign, period=chosen.code, level=level, unit_id=unit_id)
            .first()
        )
        if unit is None:
            name = found.name if found is not None else "全县"
            raise CommandError(
                f"{name}在“{campaign.name}”{chosen.label}的统计数据尚未计算。请等夜间统计完成，或先运行统计计算后再导出。"
            )

        target = Path(output)
        if not target.parent.is_dir():
            raise CommandError(f"输出目录“{target.parent}”不存在。")
        export = statistics_sheet_export(
            rows=UnitStatistics.objects.all(),
            unit=unit,
            campaign=campaign,
            period=chosen,
            all_schools=schools,
            contact=sheet_contact(unit),
            day=timezone.localdate(),
        )
        with export.file, open(target, "wb") as handle:
            export.file.seek(0)
            shutil.copyfileobj(export.file, handle)
        audit_event_record(
            action=AuditEvent.Action.EXPORT,
            username="manage.py export_statistics",
            object_type="ledgers.UnitStatistics",
            object_id=f"{unit.level}:{unit.unit_id}",
            detail={
                "filters": {
                    "level": unit.level,
                    "unit": unit.unit_id,
                    "period": chosen.code,
                    "detail": "schools" if schools else "",
                },
                "rows": export.rows,
                "format": "xlsx",
                "output": str(target)[:200],
            },
        )
        self.stdout.write(f"已导出“{unit.name}”{chosen.label}统计表：{export.rows} 个单位 → {target}")
