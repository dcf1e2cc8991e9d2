"""``python manage.py compute_statistics``: recompute the stored statistics now (DESIGN §7)."""

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ledgers.statistics import statistics_compute, statistics_recompute_all
from schools.models import Campaign, School


class Command(BaseCommand):
    help = "重新计算家访统计（默认全县所有单位；--school 只算一所学校及其片区和全县）。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--school", help="只计算这所学校（学校代码）")

    def handle(self, *args, school: str | None, **options) -> None:
        campaign = Campaign.current(timezone.localdate())
        if campaign is None:
            raise CommandError("还没有家访活动：请先在管理后台创建本年度的活动和阶段。")
        started = time.monotonic()
        if school:
            found = School.objects.filter(code=school).first()
            if found is None:
                raise CommandError(f"没有学校代码为 {school} 的学校。")
            statistics_compute(campaign=campaign, school_ids=[found.pk])
            count = 1
        else:
            run = statistics_recompute_all()
            if run is None:
                raise CommandError("另一个全量计算正在进行（10 分钟内有进展），请稍后再试。")
            count = run.schools_done
        seconds = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"{campaign.name}：已计算 {count} 所学校，用时 {seconds:.1f} 秒。"))
