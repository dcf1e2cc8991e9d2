"""``python manage.py seed_demo``: the demo county for ``make run`` (DESIGN §10)."""

import datetime
import time

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from ledgers.demo import demo_ledgers_build
from ledgers.statistics import statistics_compute, statistics_history_backfill
from oversight.demo import demo_oversight_build
from schools.bulk import copies_in_background, foreign_keys_checked_at_end, tables_analyze
from schools.exports import display_width
from schools.models import Campaign, School, SchoolClass, TeachingAssignment, User
from schools.planner import jit_off
from students.demo import (
    DEFAULT_SCHOOLS,
    DEFAULT_SEED,
    DEFAULT_STUDENTS_PER_SCHOOL,
    DEMO_PASSWORD,
    DemoCountyError,
    demo_account_rows,
    demo_county_build,
    demo_county_counts,
    demo_county_reset,
)
from students.models import Guardian, Student, StudentCategory
from visits.demo import demo_activity_build
from visits.feedback_demo import demo_feedback_build
from visits.models import SafetyReport, Suggestion, Visit

# What the builders read after writing it, analyzed before the next builder plans its queries.
COUNTY_TABLES = (School, SchoolClass, TeachingAssignment, User, Student, Guardian, StudentCategory)
VISIT_TABLES = (Visit, Visit.students.through, Visit.companions.through, Suggestion, SafetyReport)


class Command(BaseCommand):
    help = "生成演示县（片区、学校、班级、教职工、学生）；已有学校时不做任何改动。同一种子每次生成相同的数据。"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schools", type=int, default=DEFAULT_SCHOOLS, help="学校数（默认 %(default)s）")
        parser.add_argument(
            "--students-per-school",
            type=int,
            default=DEFAULT_STUDENTS_PER_SCHOOL,
            help="每校学生数（默认 %(default)s）",
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="随机种子（默认 %(default)s）")
        parser.add_argument(
            "--no-visits",
            action="store_true",
            help="只生成学校、教职工和学生，不生成已过阶段的家访记录、安全报备和家长意见",
        )
        parser.add_argument(
            "--visit-rounds",
            type=int,
            default=1,
            help="教师走访的轮数（默认 1；城市规模的基准数据约为 2，即每名学生约 2.8 次家访）",
        )
        parser.add_argument(
            "--no-statistics",
            action="store_true",
            help="不计算统计（之后可运行 compute_statistics）",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="先清空演示数据（学校、学生、账号、导入任务、审计日志；手工创建的超级管理员保留）再生成",
        )

    def handle(
        self,
        *args,
        schools: int,
        students_per_school: int,
        seed: int,
        reset: bool,
        no_visits: bool,
        no_statistics: bool,
        visit_rounds: int,
        **options,
    ) -> None:
        started = time.monotonic()
        activity = None
        ledgers = None
        feedback = None
        try:
            # Reset and build in one transaction: a build that fails leaves the old county in place.
            with transaction.atomic():
                if reset:
                    demo_county_reset()
                    self.stdout.write("已清空原有数据。")
                if not reset and School.objects.exists():
                    summary = None
                else:
                    models = apps.get_models(include_auto_created=True)
                    with foreign_keys_checked_at_end(models), copies_in_background(), jit_off():
                        # The foreign keys are gone until the end, and the planner used them to estimate
                        # joins: what the builders read next is planned on fresh statistics instead.
                        summary = demo_county_build(schools=schools, students_per_school=students_per_school, seed=seed)
                        tables_analyze(COUNTY_TABLES)
                        activity = None if no_visits else demo_activity_build(seed=seed, rounds_of_visits=visit_rounds)
                        tables_analyze(VISIT_TABLES)
                        ledgers = None if no_visits else demo_ledgers_build(seed=seed)
                        feedback = None if no_visits else demo_feedback_build(seed=seed)
                        None if no_visits else demo_oversight_build(seed=seed, stdout=self.stdout)  # issue 12
        except DemoCountyError as error:
            raise CommandError(str(error)) from error

        if summary is not None:
            tables_analyze()
        if summary is None:
            self.stdout.write("数据库中已有学校，未生成演示数据（如需重建，请加 --reset）。")
        self._accounts_write()
        counts = demo_county_counts() if summary is None else vars(summary)
        verb = "现有" if summary is None else "已生成"
        seconds = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb}：{counts['zones']} 个片区，{counts['schools']} 所学校，{counts['classes']} 个班级，"
                f"{counts['staff']} 个教职工账号，{counts['students']} 名学生；用时 {seconds:.1f} 秒。"
            )
        )
        if activity is not None:
            self.stdout.write(
                f"已生成已过阶段的家访记录 {activity.visits} 条、安全报备 {activity.safety_reports} 条、"
                f"家长意见建议 {activity.suggestions} 条（其中待学校处理 {activity.open_suggestions} 条）。"
            )
        if ledgers is not None:
            self.stdout.write(f"特殊学生台账：{ledgers}")
        if feedback is not None:
            self.stdout.write(
                f"问题反馈台账：新增家长意见 {feedback.items} 条（提交学校 {feedback.to_school} 条），"
                f"共性问题 {feedback.issues} 个，上报教育局 {feedback.escalated} 条；全县未办结 {feedback.open} 条。"
            )
        if summary is not None and not no_statistics:
            self._statistics_compute()

    def _statistics_compute(self) -> None:
        """The figures the dashboards read, and a weekly trend since the campaign began."""
        campaign = Campaign.current(timezone.localdate())
        if campaign is None:
            return
        started = time.monotonic()
        first = campaign.phases.order_by("start").values_list("start", flat=True).first()
        today = timezone.localdate()
        weeks = (
            [first + datetime.timedelta(days=7 * n) for n in range(max(0, (today - first).days // 7 + 1))]
            if first
            else []
        )
        statistics_history_backfill(campaign=campaign, days=[day for day in weeks if day < today])
        statistics_compute(campaign=campaign)
        self.stdout.write(f"已计算统计（含 {len(weeks)} 周的趋势）；用时 {time.monotonic() - started:.1f} 秒。")

    def _accounts_write(self) -> None:
        rows = demo_account_rows()
        if not rows:
            self.stdout.write("数据库中没有演示账号。")
            return
        self.stdout.write(f"演示账号（密码均为 {DEMO_PASSWORD}）：")
        columns = [(row.role_label, row.username, row.password, row.real_name, row.place) for row in rows]
        widths = [max(display_width(cells[i]) for cells in columns) for i in range(4)]
        for cells in columns:
            padded = [_pad(cell, width) for cell, width in zip(cells, widths, strict=False)]
            self.stdout.write("  " + "  ".join([*padded, cells[4]]))


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))
