"""The feedback ledger (问题反馈台账, issue 11): items keep their identity through corrections, the
school triages, groups and escalates, the bureau replies, open items age, and the ledger exports
in the 台账 layout."""

import datetime
import io

import openpyxl
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from schools.models import AuditEvent, Phase
from tests import factories
from tests.test_visits import form_data
from visits.feedback import (
    Triage,
    feedback_by_category_and_status,
    feedback_issue_create,
    feedback_issue_resolve,
    feedback_item_bureau_reply,
    feedback_item_escalate,
    feedback_item_triage,
    feedback_open_by_category,
    feedback_open_counts,
    feedback_open_counts_by_phase,
    feedback_summary,
)
from visits.models import FeedbackChange, FeedbackIssue, FeedbackStatus, Method, Suggestion, Visit


@pytest.fixture
def phase(world):
    return factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)


def _visit_with(world, texts: list[tuple[str, bool]], *, school=None, teacher=None, days_ago: int = 1) -> Visit:
    """A submitted visit with items (text, to_school) written as the visit service writes them."""
    school = school or world.school
    teacher = teacher or world.teacher
    when = timezone.now() - datetime.timedelta(days=days_ago)
    visit = Visit.objects.create(
        school=school,
        lead_teacher=teacher,
        visited_at=when,
        method=Method.PHONE,
        status=Visit.Status.SUBMITTED,
        submitted_at=when,
        situation="电话沟通。",
        integrity_declared=True,
    )
    student = world.student if school == world.school else world.other_student
    visit.students.set([student])
    for text, to_school in texts:
        Suggestion.objects.create(
            visit=visit,
            school=school,
            text=text,
            reply="" if to_school else "已解释",
            to_school=to_school,
            raised_on=timezone.localdate(when),
            status=FeedbackStatus.OPEN if to_school else FeedbackStatus.ON_SITE,
            visit_submitted=True,
        )
    return visit


def _suggestion_rows(items: list[Suggestion], *, extra: dict | None = None) -> dict:
    data = {"suggestions-TOTAL_FORMS": str(len(items) + 1), "suggestions-INITIAL_FORMS": str(len(items))}
    for index, item in enumerate(items):
        data[f"suggestions-{index}-id"] = str(item.pk)
        data[f"suggestions-{index}-text"] = item.text
        data[f"suggestions-{index}-reply"] = item.reply
        if item.to_school:
            data[f"suggestions-{index}-to_school"] = "on"
    data.update(extra or {})
    return data


# --- identity through corrections ---------------------------------------------------------------


def test_correcting_a_visit_updates_its_items_in_place(world, login, phase):
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    visit = Visit.objects.get()
    item = visit.suggestions.get()
    assert item.status == FeedbackStatus.OPEN and item.school == world.school

    response = client.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(
            world,
            version=visit.version,
            situation="改过的情况记录。",
            **_suggestion_rows([item], extra={"suggestions-0-text": "希望学校加强课后服务和托管"}),
        ),
    )

    assert response.status_code == 302
    again = visit.suggestions.get()
    assert again.pk == item.pk and again.public_id == item.public_id
    assert again.text == "希望学校加强课后服务和托管"
    assert FeedbackChange.objects.filter(item=item, action="教师修改").exists()


def test_an_item_the_school_handles_cannot_be_removed_only_withdrawn_with_a_reason(world, login, phase):
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    visit = Visit.objects.get()
    item = visit.suggestions.get()
    feedback_item_triage(
        item=item,
        triage=Triage(category="teaching", nature="individual", handler=None, status=FeedbackStatus.IN_PROGRESS),
        acting_user=world.school_admin,
    )
    visit.refresh_from_db()

    # Emptying the row (removing it) is refused with a message naming the item.
    removed = client.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, version=visit.version, **_suggestion_rows([item], extra={"suggestions-0-text": ""})),
    )
    assert removed.status_code == 200
    assert "只能填写撤回原因后撤回" in removed.content.decode()
    assert Suggestion.objects.get(pk=item.pk).status == FeedbackStatus.IN_PROGRESS
    visit.refresh_from_db()

    # Changing the family's words is refused too.
    changed = client.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, version=visit.version, **_suggestion_rows([item], extra={"suggestions-0-text": "改了"})),
    )
    assert "不能修改" in changed.content.decode()
    visit.refresh_from_db()

    withdrawn = client.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(
            world,
            version=visit.version,
            **_suggestion_rows([item], extra={"suggestions-0-withdraw_reason": "家长来电说明问题已自行解决"}),
        ),
    )
    assert withdrawn.status_code == 302
    item.refresh_from_db()
    assert item.status == FeedbackStatus.WITHDRAWN and item.withdrawn_reason == "家长来电说明问题已自行解决"
    assert item.text == "希望学校加强课后服务"
    page = login(world.school_admin).get(reverse("feedback_item", args=[item.public_id])).content.decode()
    assert "撤回原因" in page and "家长来电说明问题已自行解决" in page


def test_an_untouched_item_may_be_removed_by_its_author(world, login, phase):
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world))
    visit = Visit.objects.get()
    item = visit.suggestions.get()
    client.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, version=visit.version, **_suggestion_rows([item], extra={"suggestions-0-text": ""})),
    )
    assert not Suggestion.objects.exists()


def test_an_id_of_another_visits_item_in_the_form_is_refused(world, login, phase):
    other = _visit_with(world, [("别人的意见", True)])
    client = login(world.teacher)
    client.post(reverse("visit_create"), form_data(world, **{"suggestions-0-text": ""}))
    visit = Visit.objects.exclude(pk=other.pk).get()
    foreign = other.suggestions.get()
    response = client.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, version=visit.version, **_suggestion_rows([foreign])),
    )
    assert "不属于本条家访记录" in response.content.decode()
    assert Suggestion.objects.get(pk=foreign.pk).visit_id == other.pk


# --- triage, common problems, escalation --------------------------------------------------------


def test_triage_keeps_the_familys_words_and_every_change_with_who_and_when(world):
    item = _visit_with(world, [("食堂饭菜偏咸", True)]).suggestions.get()
    feedback_item_triage(
        item=item,
        triage=Triage(
            category="meals",
            nature="common",
            handler=world.head_teacher,
            status=FeedbackStatus.RESOLVED,
            family_reply="已与食堂沟通减盐",
            reply_method="phone",
        ),
        acting_user=world.school_admin,
    )
    item.refresh_from_db()
    assert item.text == "食堂饭菜偏咸"
    assert item.status == FeedbackStatus.RESOLVED and item.resolved_on == timezone.localdate()
    change = FeedbackChange.objects.get(item=item, action="学校处理")
    assert change.changed_by == world.school_admin
    assert change.changes["状态"] == ["待处理", "已解决"] and change.changes["问题类别"] == ["", "饮食"]
    assert AuditEvent.objects.filter(object_type="visits.Suggestion", object_id=str(item.pk)).exists()


@pytest.mark.parametrize(
    ("triage", "field", "message"),
    [
        ({"status": FeedbackStatus.RESOLVED}, "family_reply", "办结前请填写给家长的答复"),
        ({"status": FeedbackStatus.ESCALATED}, "status", "请选择处理状态"),
        ({"status": FeedbackStatus.OPEN, "family_reply": "好的"}, "reply_method", "请选择答复方式"),
    ],
)
def test_bad_triage_is_refused_with_a_chinese_message_and_nothing_changes(world, triage, field, message):
    item = _visit_with(world, [("校车太挤", True)]).suggestions.get()
    values = {"category": "transport", "nature": "", "handler": None, **triage}
    with pytest.raises(ValidationError) as caught:
        feedback_item_triage(item=item, triage=Triage(**values), acting_user=world.school_admin)
    assert message in str(caught.value.message_dict[field])
    item.refresh_from_db()
    assert item.status == FeedbackStatus.OPEN and item.category == "" and not FeedbackChange.objects.exists()


def test_a_handler_of_another_school_is_refused(world):
    item = _visit_with(world, [("校车太挤", True)]).suggestions.get()
    with pytest.raises(ValidationError, match="本校在职教职工"):
        feedback_item_triage(
            item=item,
            triage=Triage(category="transport", nature="", handler=world.other_teacher, status="in_progress"),
            acting_user=world.school_admin,
        )


def test_a_common_problem_groups_items_and_is_resolved_once(world):
    items = [_visit_with(world, [(f"校门口接送太堵{n}", True)]).suggestions.get() for n in range(3)]
    issue = feedback_issue_create(
        school=world.school, title="校门口接送拥堵", category="transport", items=items, acting_user=world.school_admin
    )
    assert {item.status for item in Suggestion.objects.filter(issue=issue)} == {FeedbackStatus.IN_PROGRESS}
    feedback_issue_resolve(
        issue=issue, resolution="已协调交警早晚高峰执勤", reply_method="meeting", acting_user=world.school_admin
    )
    for item in Suggestion.objects.filter(issue=issue):
        assert item.status == FeedbackStatus.RESOLVED and item.family_reply == "已协调交警早晚高峰执勤"
        assert item.nature == "common" and item.category == "transport"
    assert FeedbackIssue.objects.get().status == FeedbackIssue.Status.RESOLVED


def test_a_common_problem_cannot_take_another_schools_item(world):
    foreign = _visit_with(world, [("别校意见", True)], school=world.other_school, teacher=world.other_teacher)
    with pytest.raises(ValidationError, match="不属于本校"):
        feedback_issue_create(
            school=world.school,
            title="午餐价格",
            category="fees",
            items=[foreign.suggestions.get()],
            acting_user=world.school_admin,
        )
    assert not FeedbackIssue.objects.exists()


def test_grouping_from_the_ledger_page(world, login):
    items = [_visit_with(world, [(f"午餐价格偏高{n}", True)]).suggestions.get() for n in range(2)]
    client = login(world.school_admin)
    response = client.post(
        reverse("feedback_group"),
        {"items": [str(item.public_id) for item in items], "title": "午餐价格", "category": "fees"},
    )
    issue = FeedbackIssue.objects.get()
    assert response.status_code == 302 and response.url == reverse("feedback_issue", args=[issue.public_id])
    assert issue.items.count() == 2
    page = client.get(reverse("feedback_ledger")).content.decode()
    assert "午餐价格" in page


def test_escalation_reaches_the_inspectors_their_schools_first_and_the_school_sees_the_reply(world, login):
    ours = _visit_with(world, [("学校周边网吧影响孩子", True)]).suggestions.get()
    theirs = _visit_with(
        world, [("村道无路灯", True)], school=world.other_school, teacher=world.other_teacher
    ).suggestions.get()
    feedback_item_escalate(item=theirs, note="需交通部门协调", acting_user=world.other_admin)
    feedback_item_escalate(item=ours, note="需文化执法部门处理", acting_user=world.school_admin)
    assert world.inspector.notifications.filter(title="学校上报家长意见").count() == 1

    page = login(world.inspector).get(reverse("feedback_county")).content.decode()
    assert page.index("城关第一小学") < page.index("东山中心小学")  # the inspector's 包联 school first
    assert "需文化执法部门处理" in page

    response = login(world.inspector).post(
        reverse("feedback_item_reply", args=[ours.public_id]), {"reply": "已函告文化执法大队", "close": "on"}
    )
    assert response.status_code == 302
    ours.refresh_from_db()
    assert ours.status == FeedbackStatus.RESOLVED and ours.bureau_replied_by == world.inspector
    school_page = login(world.school_admin).get(reverse("feedback_item", args=[ours.public_id])).content.decode()
    assert "已函告文化执法大队" in school_page and "刘督学" in school_page
    assert world.school_admin.notifications.filter(title__contains="教育局答复").exists()


def test_only_open_items_are_escalated_and_a_note_is_required(world):
    item = _visit_with(world, [("意见", False)]).suggestions.get()
    with pytest.raises(ValidationError, match="只有待处理或处理中"):
        feedback_item_escalate(item=item, note="说明", acting_user=world.school_admin)
    open_item = _visit_with(world, [("意见", True)]).suggestions.get()
    with pytest.raises(ValidationError, match="请填写上报说明"):
        feedback_item_escalate(item=open_item, note=" ", acting_user=world.school_admin)
    with pytest.raises(ValidationError, match="只有教育局"):
        feedback_item_bureau_reply(item=open_item, reply="好", close=True, acting_user=world.school_admin)


# --- ageing, counts and the bureau's grouping ---------------------------------------------------


def test_open_items_age_and_the_schools_home_page_shows_the_oldest(world, login):
    _visit_with(world, [("三天前的意见", True)], days_ago=3)
    _visit_with(world, [("上周五的意见", True)], days_ago=10)
    _visit_with(world, [("四十天前的意见", True), ("现场答复了的", False)], days_ago=40)
    summary = feedback_summary(Suggestion.objects.visible_to(world.school_admin))
    assert (summary.open, summary.over_warning, summary.over_overdue, summary.oldest_age_days) == (3, 2, 1, 40)

    home = login(world.school_admin).get(reverse("school_detail", args=[world.school.pk])).content.decode()
    assert "未办结" in home and '<strong class="text-danger">40</strong> 天' in home

    page = login(world.school_admin).get(reverse("feedback_ledger"), {"age": "30"}).content.decode()
    assert "四十天前的意见" in page and "上周五的意见" not in page and "超30天" in page


def test_the_open_feedback_figure_counts_the_ledgers_open_items_per_school(world):
    _visit_with(world, [("a", True), ("b", False)])
    escalated = _visit_with(world, [("c", True)]).suggestions.get()
    feedback_item_escalate(item=escalated, note="n", acting_user=world.school_admin)
    _visit_with(world, [("d", True)], school=world.other_school, teacher=world.other_teacher)
    draft = _visit_with(world, [("草稿里的", True)])
    Visit.objects.filter(pk=draft.pk).update(status=Visit.Status.DRAFT)
    Suggestion.objects.filter(visit=draft).update(visit_submitted=False)
    assert feedback_open_counts() == {world.school.pk: 2, world.other_school.pk: 1}
    assert feedback_open_counts(school_ids=[world.other_school.pk]) == {world.other_school.pk: 1}


def test_the_engines_per_phase_shape_counts_only_open_items(world):
    phase = factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)
    visit = _visit_with(world, [("a", True), ("b", True), ("c", False)])
    Visit.objects.filter(pk=visit.pk).update(phase=phase)
    done = visit.suggestions.get(text="b")
    feedback_item_triage(
        item=done,
        triage=Triage(
            category="other", nature="", handler=None, status="resolved", family_reply="好", reply_method="phone"
        ),
        acting_user=world.school_admin,
    )
    counts = feedback_open_counts_by_phase(school_ids=[world.school.pk], campaign=phase.campaign)
    assert counts == {(world.school.pk, phase.pk): 1}


def test_the_bureau_sees_one_row_per_category_with_its_schools_and_items(world, login):
    for school, teacher in ((world.school, world.teacher), (world.other_school, world.other_teacher)):
        for text in ("校门口拥堵", "接送车辆乱停"):
            item = _visit_with(world, [(text, True)], school=school, teacher=teacher).suggestions.get()
            Suggestion.objects.filter(pk=item.pk).update(category="transport")
    _visit_with(world, [("作业太多", True)])
    rows = feedback_open_by_category(Suggestion.objects.visible_to(world.bureau_admin))
    assert [(row.label, row.schools, row.items) for row in rows] == [("交通", 2, 4), ("未分类", 1, 1)]  # 未分类 last
    page = login(world.inspector).get(reverse("feedback_county")).content.decode()
    assert "交通" in page
    # A zone admin sees the zone's schools only.
    zone_rows = feedback_open_by_category(Suggestion.objects.visible_to(world.zone_admin))
    assert [(row.label, row.schools, row.items) for row in zone_rows] == [("交通", 1, 2), ("未分类", 1, 1)]


def test_the_category_status_table_adds_up(world):
    _visit_with(world, [("a", True), ("b", False), ("c", False)])
    table = feedback_by_category_and_status(Suggestion.objects.visible_to(world.school_admin))
    assert table[0][0] == "问题类别" and table[0][-1] == "合计"
    assert table[-1][0] == "合计" and table[-1][-1] == 3
    uncategorised = next(row for row in table if row[0] == "未分类")
    assert uncategorised[1] == 2 and uncategorised[2] == 1  # 现场答复, 待处理


# --- the list's query count, privacy and the export -----------------------------------------------


def test_the_ledger_list_takes_the_same_queries_whatever_the_items(world, login, django_assert_max_num_queries):
    client = login(world.school_admin)
    _visit_with(world, [("一条", True)])
    with django_assert_max_num_queries(16):
        assert client.get(reverse("feedback_ledger")).status_code == 200
    for n in range(30):
        _visit_with(world, [(f"意见{n}", True), (f"答复{n}", False)])
    with django_assert_max_num_queries(16):
        page = client.get(reverse("feedback_ledger")).content.decode()
    assert "意见29" in page


def test_county_roles_read_the_familys_words_with_numbers_masked_and_no_names(world, login):
    item = _visit_with(world, [("请回电 13912345678", True)]).suggestions.get()
    page = login(world.zone_admin).get(reverse("feedback_item", args=[item.public_id])).content.decode()
    assert "139****5678" in page and "13912345678" not in page and world.student.name not in page
    school_page = login(world.school_admin).get(reverse("feedback_item", args=[item.public_id])).content.decode()
    assert "13912345678" in school_page and world.student.name in school_page


def test_the_export_is_in_the_ledger_layout_masked_for_the_county_and_audited(world, login):
    _visit_with(world, [("请回电 13912345678", True), ('=HYPERLINK("x")', False)], days_ago=12)
    response = login(world.zone_admin).get(reverse("feedback_export"))
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook["问题反馈台账"]
    assert sheet["A1"].value == "「万名教师大家访」问题反馈台账"
    assert sheet["A2"].value == "填报单位：城关片区" and sheet["C2"].value == "填报人：周主任"
    assert sheet["E2"].value.startswith("电话") and sheet["G2"].value.startswith("日期")
    assert sheet["A3"].value == "序号" and sheet["B3"].value == "学校"
    assert sheet["A4"].value == 1
    texts = [cell.value for cell in sheet["F"]]
    assert "请回电 139****5678" in texts and '\'=HYPERLINK("x")' in texts
    assert any(str(row[0].value or "").startswith("审核人") for row in sheet.iter_rows())
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    assert workbook["按类别和状态"]["B3"].value == "问题类别"
    event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
    assert event.user == world.zone_admin and event.detail["ledger"] == "feedback"


def test_the_statistics_sheets_second_sheet_has_the_items_by_category_and_status(world, login):
    from ledgers.models import Level, UnitStatistics
    from tests.test_statistics_sheet import download

    campaign = factories.CampaignFactory()
    first = factories.PhaseFactory(campaign=campaign, kind=Phase.Kind.FULL_ROUND)
    UnitStatistics.objects.create(
        campaign=campaign,
        period="campaign",
        level=Level.SCHOOL,
        unit_id=world.school.pk,
        name=world.school.name,
        school=world.school,
        zone=world.school.zone,
        computed_at=timezone.now(),
    )
    assert first.start <= timezone.localdate()
    item = _visit_with(world, [("食堂饭菜偏咸", True), ("作业多", False)]).suggestions.first()
    Suggestion.objects.filter(pk=item.pk).update(category="meals")
    _visit_with(world, [("别校意见", True)], school=world.other_school, teacher=world.other_teacher)

    workbook = download(login(world.school_admin), level="school", unit=world.school.pk)

    rows = [[cell.value for cell in row] for row in workbook["其他指标"].iter_rows()]
    title = next(index for index, row in enumerate(rows) if row[0] == "问题反馈台账：家长意见按类别和状态（条）")
    header, *body = rows[title + 1 :]
    assert header[:3] == ["问题类别", "现场答复", "待处理"]
    by_label = {row[0]: row for row in body}
    assert by_label["饮食"][2] == 1 and by_label["未分类"][1] == 1 and by_label["合计"][header.index("合计")] == 2


def test_the_school_admin_reads_typed_numbers_masked_in_the_list_and_export_unless_asking_for_the_full_one(
    world, login
):
    """DESIGN §8: masked in lists and exports unless the export is explicitly a full one by an admin."""
    _visit_with(world, [("请回电 139 8765 4321，身份证410522198001010011", True)])
    client = login(world.school_admin)
    page = client.get(reverse("feedback_ledger")).content.decode()
    assert "139****4321" in page and "139 8765 4321" not in page and "完整导出" in page

    def texts(response) -> list:
        workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
        return [cell.value for cell in workbook["问题反馈台账"]["F"]]

    masked = texts(client.get(reverse("feedback_export")))
    assert any("139****4321" in str(text) and "410522********0011" in str(text) for text in masked)
    full = texts(client.get(reverse("feedback_export"), {"full": "1"}))
    assert any("139 8765 4321" in str(text) and "410522198001010011" in str(text) for text in full)
    exports = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).order_by("pk")
    assert [event.detail["full"] for event in exports] == [False, True]
    # Only the school admin may ask: for a zone admin ?full=1 is the masked export.
    zone = texts(login(world.zone_admin).get(reverse("feedback_export"), {"full": "1"}))
    assert not any("139 8765 4321" in str(text) for text in zone)
