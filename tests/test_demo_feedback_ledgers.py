"""The demo's feedback ledger and special-student ledgers (``visits.feedback_demo``, ``ledgers.demo``):
the same seed builds the same items, histories, plans and care logs; an item the demo worked has the
history, audit rows and notices that the ledger's services write for the same work; and the two
builders read and write a county in the same number of queries whatever its size."""

import datetime
import io
import json
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ledgers.care_models import CareAsk, CareMeeting, SupportPlan
from ledgers.demo import demo_ledgers_build
from schools.models import AuditEvent, Role, User
from students.demo import demo_county_build, demo_county_reset
from visits.demo import demo_activity_build
from visits.feedback import (
    ESCALATE_ACTION,
    ISSUE_RESOLVE_ACTION,
    TRIAGE_ACTION,
    Triage,
    feedback_issue_create,
    feedback_issue_resolve,
    feedback_item_bureau_reply,
    feedback_item_escalate,
    feedback_item_triage,
)
from visits.feedback_demo import LUNCH_TITLE, demo_feedback_build
from visits.models import FeedbackChange, FeedbackIssue, FeedbackStatus, Notification, Suggestion

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
IN_THE_REVISITS = datetime.datetime(2026, 10, 8, 10, 0, tzinfo=SHANGHAI)
SMALL = ("--schools", "4", "--students-per-school", "40", "--no-statistics")
ITEM_FIELDS = (
    "status",
    "category",
    "nature",
    "handler_id",
    "family_reply",
    "reply_method",
    "replied_on",
    "resolved_on",
    "escalation_note",
    "bureau_reply",
    "bureau_replied_by_id",
)


def seed(*args: str) -> None:
    call_command("seed_demo", *args, stdout=io.StringIO())


def feedback_drawn() -> tuple[list, list, list]:
    """The ledger's items, their histories and the common problems, without keys or times."""
    visit = ("visit__lead_teacher__username", "visit__visited_at")
    items = sorted(
        Suggestion.objects.values_list(
            *visit, "text", "status", "category", "nature", "handler__username", "issue__title", "family_reply"
        )
    )
    history = sorted(
        (*key, action, json.dumps(changes, ensure_ascii=False, sort_keys=True), user)
        for *key, action, changes, user in FeedbackChange.objects.values_list(
            "item__visit__lead_teacher__username",
            "item__visit__visited_at",
            "item__text",
            "action",
            "changes",
            "changed_by__username",
        )
    )
    issues = sorted(FeedbackIssue.objects.values_list("school__code", "title", "status", "resolution"))
    return items, history, issues


def ledgers_drawn() -> tuple[list, list, list]:
    plans = sorted(
        (number, json.dumps(categories), *rest)
        for number, categories, *rest in SupportPlan.objects.values_list(
            "student__student_number",
            "categories",
            "consent_by",
            "consent_on",
            "consent_method",
            "next_review_on",
            "economic_measures",
            "mind_who",
            "created_by__username",
        )
    )
    asks = sorted(CareAsk.objects.values_list("student__student_number", "day", "outcome", "recorded_by__username"))
    meetings = sorted(CareMeeting.objects.values_list("student__student_number", "week_start", "met_on"))
    return plans, asks, meetings


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_the_same_seed_works_the_same_feedback_and_ledgers():
    seed(*SMALL)
    feedback, ledgers = feedback_drawn(), ledgers_drawn()
    assert all(feedback) and all(ledgers)
    seed("--reset", *SMALL)
    assert feedback_drawn() == feedback
    assert ledgers_drawn() == ledgers


def history(item: Suggestion) -> list[tuple]:
    return [(c.action, c.changes, c.changed_by_id) for c in item.changes.order_by("changed_at", "pk")]


def audit(item: Suggestion) -> list[tuple]:
    events = AuditEvent.objects.filter(object_type="visits.Suggestion", object_id=str(item.pk)).order_by("at", "pk")
    return [(e.action, e.user_id, e.username, e.ip, e.path, e.detail) for e in events]


def notices(item: Suggestion) -> list[tuple]:
    rows = Notification.objects.filter(link__contains=str(item.public_id)).order_by("user_id")
    return [(n.user_id, n.title, n.body) for n in rows]


def twin(item: Suggestion) -> Suggestion:
    """A new item with the demo item's words on the same visit, as the visit's author files it."""
    return Suggestion.objects.create(
        visit=item.visit,
        school=item.school,
        text=item.text,
        to_school=True,
        raised_on=item.raised_on,
        status=FeedbackStatus.OPEN,
        visit_submitted=True,
    )


def same_work(demo: Suggestion, by_services: Suggestion) -> None:
    demo.refresh_from_db()
    by_services.refresh_from_db()
    assert history(by_services) == history(demo)
    assert audit(by_services) == audit(demo)
    assert notices(by_services) == notices(demo)
    assert [getattr(by_services, name) for name in ITEM_FIELDS] == [getattr(demo, name) for name in ITEM_FIELDS]


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_an_item_the_demo_triaged_escalated_and_the_bureau_closed_has_the_services_history():
    seed(*SMALL)
    demo = Suggestion.objects.filter(changes__action="教育局答复并办结").order_by("pk").first()
    assert demo is not None
    admin = User.objects.get(pk=demo.changes.get(action=TRIAGE_ACTION).changed_by_id)
    assert admin.role == Role.SCHOOL_ADMIN and demo.bureau_replied_by.role == Role.INSPECTOR
    assert [action for action, _, _ in history(demo)] == [TRIAGE_ACTION, ESCALATE_ACTION, "教育局答复并办结"]
    item = twin(demo)
    feedback_item_triage(
        item=item,
        triage=Triage(
            category=demo.category, nature=demo.nature, handler=demo.handler, status=FeedbackStatus.IN_PROGRESS
        ),
        acting_user=admin,
    )
    feedback_item_escalate(item=item, note=demo.escalation_note, acting_user=admin)
    feedback_item_bureau_reply(item=item, reply=demo.bureau_reply, close=True, acting_user=demo.bureau_replied_by)
    same_work(demo, item)


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_an_item_the_demo_resolved_at_the_school_has_the_services_history():
    seed(*SMALL)
    demo = (
        Suggestion.objects.filter(status=FeedbackStatus.RESOLVED, changes__action=TRIAGE_ACTION, issue=None)
        .order_by("pk")
        .first()
    )
    assert demo is not None and demo.family_reply and demo.handler is not None
    admin = User.objects.get(pk=demo.changes.get().changed_by_id)
    item = twin(demo)
    feedback_item_triage(
        item=item,
        triage=Triage(
            category=demo.category,
            nature=demo.nature,
            handler=demo.handler,
            status=FeedbackStatus.RESOLVED,
            family_reply=demo.family_reply,
            reply_method=demo.reply_method,
        ),
        acting_user=admin,
    )
    same_work(demo, item)


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_an_item_of_a_common_problem_the_demo_resolved_has_the_services_history():
    seed(*SMALL)
    issue = FeedbackIssue.objects.filter(title=LUNCH_TITLE, status=FeedbackIssue.Status.RESOLVED).first()
    assert issue is not None
    demo = issue.items.order_by("pk").first()
    assert [action for action, _, _ in history(demo)] == ["归入共性问题", ISSUE_RESOLVE_ACTION]
    # The school names its problems once: the services' twin takes the title, the demo's keeps its history.
    FeedbackIssue.objects.filter(pk=issue.pk).update(title="午餐价格（演示）")
    item = twin(demo)
    again = feedback_issue_create(
        school=issue.school, title=LUNCH_TITLE, category=issue.category, items=[item], acting_user=issue.created_by
    )
    feedback_issue_resolve(
        issue=again, resolution=issue.resolution, reply_method=issue.reply_method, acting_user=issue.created_by
    )
    same_work(demo, item)


@time_machine.travel(IN_THE_REVISITS, tick=False)
def test_the_feedback_and_ledger_builders_cost_the_same_queries_for_twice_the_schools(sqlite_bulk_limit):
    counts = []
    for schools in (4, 8):
        demo_county_build(schools=schools, students_per_school=40)
        demo_activity_build(seed=1)
        with CaptureQueriesContext(connection) as ledgers:
            demo_ledgers_build(seed=1)
        with CaptureQueriesContext(connection) as feedback:
            summary = demo_feedback_build(seed=1)
        assert summary.escalated and summary.issues  # every kind of write was made
        counts.append((len(ledgers), len(feedback)))
        demo_county_reset()
    assert counts[0] == counts[1]
