"""Oversight in the demo county (``seed_demo``): the demo school reviews its records (a few accepted,
two sent back, one of them the demo teacher's), the demo inspector's back-check sample with outcomes,
an inspection whose rectification awaits acceptance and one overdue. Written through the services,
as a person would, after ``visits.demo`` has filed the visits."""

import datetime
import random
from dataclasses import dataclass

from django.utils import timezone

from oversight.flags import Code, flag_counts, school_flags
from oversight.models import BackCheck, ExcellentCase, Inspection, ReviewSetting, ReviewStep
from oversight.services import (
    back_check_record,
    case_advance,
    case_nominate,
    case_text_review,
    inspection_file,
    rectification_report,
    review_setting_set,
    sample_draw,
    target_set,
    visit_review,
)
from schools.models import Campaign, Role, School, User, Zone
from visits.models import Visit

CASE_TITLES = ("一次走进祖孙家庭的家访", "从作业习惯谈起的家校共育")
RETURN_REASON = "情况记录过于简单，请补充孩子在家的具体表现和商定的措施。"


@dataclass
class DemoOversightSummary:
    accepted: int = 0
    returned: int = 0
    checked: int = 0
    inspections: int = 0
    chosen: int = 0
    zone_targets: int = 0
    flags: dict | None = None


def demo_oversight_build(*, seed: int, stdout=None) -> DemoOversightSummary:
    """Build the demo's oversight rows; nothing when the demo accounts or visits are missing."""
    summary = DemoOversightSummary()
    admin = User.objects.filter(username="school", role=Role.SCHOOL_ADMIN).select_related("school").first()
    inspector = User.objects.filter(username="inspector", role=Role.INSPECTOR).first()
    if admin is None or inspector is None or admin.school is None:
        return summary
    school = admin.school
    rng = random.Random(seed * 31 + 12)
    today = timezone.localdate()

    review_setting_set(school=school, mode=ReviewSetting.Mode.ADMIN, acting_user=admin)
    submitted = list(
        Visit.objects.filter(school=school, status=Visit.Status.SUBMITTED)
        .exclude(lead_teacher=admin)
        .order_by("pk")
        .values_list("pk", "lead_teacher__username")
    )
    others = [pk for pk, username in submitted if username != "teacher"]
    teachers = [pk for pk, username in submitted if username == "teacher"]
    picked = rng.sample(others, min(6, len(others)))
    for pk in picked[:5]:
        visit_review(visit=Visit(pk=pk), action=ReviewStep.Action.ACCEPTED, acting_user=admin)
        summary.accepted += 1
    for pk in [*picked[5:], *teachers[-1:]]:
        if Visit.objects.filter(pk=pk, status=Visit.Status.SUBMITTED).exists():
            visit_review(visit=Visit(pk=pk), action=ReviewStep.Action.RETURNED, reason=RETURN_REASON, acting_user=admin)
            summary.returned += 1

    if submitted:
        sample = sample_draw(school=school, size=10, seed=seed * 1000 + 7, acting_user=inspector)
        outcomes = [
            (BackCheck.Outcome.TRUE, "家长确认老师当天到家走访，内容与记录一致。"),
            (BackCheck.Outcome.TRUE, ""),
            (BackCheck.Outcome.TRUE, "家长对家访评价很好。"),
            (BackCheck.Outcome.TRUE, ""),
            (BackCheck.Outcome.TRUE, ""),
            (BackCheck.Outcome.UNTRUE, "家长表示当天没有老师上门，只在微信上问过几句。"),
            (BackCheck.Outcome.UNREACHABLE, "电话两次无人接听。"),
        ]
        for check, (outcome, note) in zip(sample.checks.order_by("pk"), outcomes, strict=False):
            back_check_record(check=check, outcome=outcome, note=note, acting_user=inspector)
            summary.checked += 1

    inspection_file(
        school=school,
        date=today - datetime.timedelta(days=40),
        how=Inspection.How.LEDGERS,
        findings="查阅工作台账，各班台账齐全，记录及时。",
        acting_user=inspector,
    )
    inspection = inspection_file(
        school=school,
        date=today - datetime.timedelta(days=12),
        how=Inspection.How.ON_SITE,
        findings="部分班级特殊学生入户家访不足 2 次；个别记录情况记录雷同。",
        rectification="补齐特殊学生的入户家访，组织教师重新学习记录表填写要求。",
        deadline=today + datetime.timedelta(days=10),
        acting_user=inspector,
    )
    rectification_report(
        inspection=inspection,
        text="已安排各班主任两周内补齐入户家访，并于周一例会组织记录表填写培训。",
        acting_user=admin,
    )
    summary.inspections = 2
    second = School.objects.filter(inspectors__inspector=inspector).exclude(pk=school.pk).order_by("pk").first()
    if second is not None:
        overdue = inspection_file(
            school=second,
            date=today - datetime.timedelta(days=20),
            how=Inspection.How.PHONE,
            findings="电话抽查 5 户，1 户表示未接到家访。",
            rectification="核实该户家访情况并补访。",
            deadline=today - datetime.timedelta(days=3),
            acting_user=inspector,
        )
        summary.inspections += 1 if overdue else 0

    bureau = User.objects.filter(username="bureau", role=Role.BUREAU_ADMIN).first()
    touched = set(_touched(school))  # once: not once per visit
    chosen = [pk for pk in others if pk not in touched][:3]
    for index, pk in enumerate(chosen):
        case = case_nominate(visit=Visit(pk=pk), reason="记录细致，措施具体，体现了对学生的关心。", acting_user=admin)
        if index < 2 and bureau is not None:  # two chosen and shown; the third awaits the bureau
            case_text_review(case=case, title=CASE_TITLES[index], public_text=case.public_text, acting_user=admin)
            case_advance(case=case, status=ExcellentCase.Status.SHORTLISTED, acting_user=bureau)
            case_advance(case=case, status=ExcellentCase.Status.CHOSEN, acting_user=bureau)
            summary.chosen += 1

    campaign = Campaign.current(today)
    bureau_admin = bureau or User.objects.filter(role=Role.BUREAU_ADMIN).first()
    if campaign is not None and bureau_admin is not None:
        target_set(
            campaign=campaign,
            coverage=100,
            participation=100,
            focus_coverage=100,
            special_in_home=100,
            acting_user=bureau_admin,
        )
        # A town zone keeps the county's 100%; zones of village schools with scattered families get less.
        for zone in Zone.objects.exclude(pk=school.zone_id).order_by("code"):
            target_set(
                campaign=campaign,
                zone=zone,
                coverage=95,
                participation=100,
                focus_coverage=100,
                special_in_home=90,
                acting_user=bureau_admin,
            )
            summary.zone_targets += 1

    summary.flags = flag_counts(school_flags(school))
    if stdout is not None:
        flags = "、".join(f"{Code.LABELS[code]} {n} 条" for code, n in summary.flags.items())
        stdout.write(
            f"督查考核：{school.name}开启审核，审核通过 {summary.accepted} 条、退回 {summary.returned} 条；"
            f"抽查回访 {summary.checked} 条；督查记录 {summary.inspections} 条；优秀家访案例 {summary.chosen} 个；"
            f"片区目标 {summary.zone_targets} 个。"
            f"质量提示（{school.name}）：{flags}。"
        )
    return summary


def _touched(school: School) -> list[int]:
    """Visits already reviewed or sampled in the demo: the chosen cases are others."""
    return list(ReviewStep.objects.filter(visit__school=school).values_list("visit_id", flat=True)) + list(
        BackCheck.objects.filter(sample__school=school).values_list("visit_id", flat=True)
    )
