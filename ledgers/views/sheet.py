"""The statistics sheet (「万名教师大家访」活动情况统计表, DESIGN §7) as a download.

``GET /statistics/sheet.xlsx?level=county|zone|school&unit=<id>&period=<code>&detail=schools``

The exporting unit's stored row is fetched through the scope gate: the bureau roles may export any
unit, a zone admin their zone and its schools, a school admin their school; anyone else, or any
other unit, gets 404 and a DENIED audit row. Every export writes an EXPORT audit row.
"""

from django.http import Http404, HttpRequest, HttpResponse

from ledgers.models import Level, UnitStatistics
from ledgers.selectors import period_of, statistics_campaign
from ledgers.sheet import SHEET_LEVELS, sheet_contact, sheet_feedback_table, statistics_sheet_export
from schools.models import BUREAU_ROLES, AuditEvent, Role, School, User, Zone
from schools.scoping import get_object_for_user, require_roles
from schools.services import audit_event_record

SHEET_ROLES = (Role.SCHOOL_ADMIN, Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)


@require_roles(*SHEET_ROLES)
def statistics_sheet(request: HttpRequest) -> HttpResponse:
    """The sheet of one unit (by default the user's own) for one period (by default the whole
    campaign), listing the units below it; ``detail=schools`` lists every school of the county."""
    campaign = statistics_campaign()
    if campaign is None:
        raise Http404("还没有家访活动，无法导出统计表。")
    level = request.GET.get("level") or own_level(request.user)
    if level not in SHEET_LEVELS:
        raise Http404("统计表只能按全县、片区或学校导出。")
    unit_id = request.GET.get("unit") or own_unit_id(request.user, level)
    period = period_of(campaign, request.GET.get("period"))
    all_schools = request.GET.get("detail") == "schools"

    rows = UnitStatistics.objects.select_related("school").filter(campaign=campaign, period=period.code, level=level)
    unit = None
    if _unit_in_scope(request.user, level=level, unit_id=unit_id):
        # One query on the usual path: the user's own (or a visible) unit's row.
        unit = rows.visible_to(request.user).filter(unit_id=unit_id).first()
        if unit is None and not rows.filter(unit_id=unit_id).exists():
            # The unit is the user's to see but nothing has been computed for it yet: not an intrusion.
            raise Http404("该单位的统计数据尚未计算，请稍后再试。")
    if unit is None:
        unit = get_object_for_user(rows, request, unit_id=unit_id)  # 404 and a DENIED row

    export = statistics_sheet_export(
        rows=UnitStatistics.objects.visible_to(request.user),
        unit=unit,
        campaign=campaign,
        period=period,
        all_schools=all_schools,
        contact=sheet_contact(unit, request.user),
        feedback=sheet_feedback_table(request.user, unit=unit, period=period),
    )
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="ledgers.UnitStatistics",
        object_id=f"{unit.level}:{unit.unit_id}",
        detail={
            "filters": {
                "level": unit.level,
                "unit": unit.unit_id,
                "period": period.code,
                "detail": "schools" if all_schools and unit.level == Level.COUNTY else "",
            },
            "rows": export.rows,
            "format": "xlsx",
        },
    )
    return export.response()


def own_level(user: User) -> str:
    """The level of the user's own unit: the county for the bureau roles, else zone or school."""
    if user.role in BUREAU_ROLES:
        return Level.COUNTY
    if user.role == Role.ZONE_ADMIN:
        return Level.ZONE
    return Level.SCHOOL


def own_unit_id(user: User, level: str) -> str:
    """The user's own unit at ``level`` ("" when they have none there; the scope gate answers 404)."""
    if level == Level.COUNTY:
        return "0"
    unit_id = user.zone_id if level == Level.ZONE else user.school_id
    return "" if unit_id is None else str(unit_id)


def _unit_in_scope(user: User, *, level: str, unit_id: str) -> bool:
    """Whether the unit itself (not its statistics) is one the user may export."""
    try:
        pk = int(unit_id)
    except ValueError:
        return False
    if level == Level.COUNTY:
        return pk == 0 and user.role in BUREAU_ROLES
    if level == Level.ZONE:
        return Zone.objects.visible_to(user).filter(pk=pk).exists()
    return School.objects.visible_to(user).filter(pk=pk).exists()
