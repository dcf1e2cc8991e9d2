"""Forms of the safety report (家访报备). The choices are limited to the user's scope, so a forged
POST naming another school's student or colleague is an invalid choice; the service checks the
rules (time window, duration) again."""

import datetime
import uuid

from django import forms
from django.utils import timezone

from schools.importing import parse_phone
from schools.models import SCHOOL_ROLES, User
from students.models import Student
from visits.safety import CLOSE_REASON_MAX, EXPECTED_MINUTES_DEFAULT, EXPECTED_MINUTES_MAX, EXPECTED_MINUTES_MIN

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class StudentChoiceField(forms.ModelMultipleChoiceField):
    """Students by ``public_id``; anything that is not one is an invalid choice, not a server error."""

    def clean(self, value):
        if isinstance(value, list | tuple):
            value = [item for item in value if item not in ("", None)]
            for item in value:
                try:
                    uuid.UUID(str(item))
                except ValueError:
                    raise forms.ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": item}
                    ) from None
        return super().clean(value)

    def label_from_instance(self, student: Student) -> str:
        return f"{student.name}（{student.school_class.name}）" if student.school_class else student.name


class CompanionChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, user: User) -> str:
        return f"{user.display_name}（{user.get_role_display()}）"


class SafetyReportForm(forms.Form):
    students = StudentChoiceField(
        label="家访学生",
        queryset=Student.objects.none(),
        to_field_name="public_id",
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        error_messages={
            "required": "请至少选择一名学生。",
            "invalid_choice": "所选学生不在您的学生范围内，请刷新页面后重新选择。",
            "invalid_pk_value": "所选学生不在您的学生范围内，请刷新页面后重新选择。",
        },
    )
    address = forms.CharField(
        label="家访地址",
        max_length=200,
        widget=forms.TextInput(attrs={"class": "form-control form-control-lg", "autocomplete": "street-address"}),
        error_messages={
            "required": "请填写家访地址。",
            "max_length": "家访地址不能超过 %(limit_value)d 个字（现有 %(show_value)d 个）。",
        },
    )
    planned_start = forms.DateTimeField(
        label="计划出发时间",
        input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(
            format=DATETIME_LOCAL, attrs={"type": "datetime-local", "class": "form-control form-control-lg"}
        ),
        error_messages={"required": "请填写计划出发时间。", "invalid": "请按“年-月-日 时:分”填写计划出发时间。"},
    )
    expected_minutes = forms.IntegerField(
        label="预计用时（分钟）",
        min_value=EXPECTED_MINUTES_MIN,
        max_value=EXPECTED_MINUTES_MAX,
        widget=forms.NumberInput(attrs={"class": "form-control form-control-lg", "inputmode": "numeric", "step": 10}),
        error_messages={
            "required": "请填写预计用时。",
            "invalid": "预计用时请填写分钟数。",
            "min_value": f"预计用时应在 {EXPECTED_MINUTES_MIN} 到 {EXPECTED_MINUTES_MAX} 分钟之间。",
            "max_value": f"预计用时应在 {EXPECTED_MINUTES_MIN} 到 {EXPECTED_MINUTES_MAX} 分钟之间。",
        },
    )
    companions = CompanionChoiceField(
        label="同行人员",
        required=False,
        queryset=User.objects.none(),
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        error_messages={
            "invalid_choice": "同行人员必须是本校在职教职工。",
            "invalid_pk_value": "同行人员必须是本校在职教职工。",
        },
    )
    phone = forms.CharField(
        label="联系电话",
        max_length=30,
        help_text="家访途中能接通的电话，超时未报平安时学校会拨打。",
        widget=forms.TextInput(
            attrs={"class": "form-control form-control-lg", "type": "tel", "inputmode": "tel", "autocomplete": "tel"}
        ),
        error_messages={"required": "请填写联系电话。", "max_length": "联系电话太长，请检查。"},
    )

    # Rendered by the server when the form is shown (initial_report), posted back unchanged, also by
    # the offline copy in the browser: see visits.safety.safety_report_create.
    submission_key = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["students"].queryset = (
            Student.objects.visible_to(user)
            .active()
            .filter(school_id=user.school_id)
            .select_related("school_class")
            .order_by("school_class__grade", "school_class__number", "name")
        )
        self.fields["companions"].queryset = (
            User.objects.filter(school_id=user.school_id, is_active=True, role__in=SCHOOL_ROLES)
            .exclude(pk=user.pk)
            .order_by("role", "real_name")
        )

    def clean_phone(self) -> str:
        try:
            return parse_phone(self.cleaned_data["phone"])
        except ValueError as exc:
            raise forms.ValidationError(f"{exc}。") from None


class SafetyCloseForm(forms.Form):
    reason = forms.CharField(
        label="关闭原因",
        max_length=CLOSE_REASON_MAX,
        widget=forms.Textarea(
            attrs={"class": "form-control", "rows": 3, "placeholder": "例如：已电话联系，教师已安全到家。"}
        ),
        error_messages={
            "required": "请填写关闭原因。",
            "max_length": "关闭原因不能超过 %(limit_value)d 个字（现有 %(show_value)d 个）。",
        },
    )


def rounded_now(step_minutes: int = 5) -> datetime.datetime:
    """Now in local time, to the nearest ``step_minutes``: the default planned start."""
    now = timezone.localtime().replace(second=0, microsecond=0)
    minutes = round(now.minute / step_minutes) * step_minutes
    return now.replace(minute=0) + datetime.timedelta(minutes=minutes)


def initial_report(*, user: User, student: Student | None) -> dict:
    """What the form opens with: now, an hour, the teacher's phone, and, when it is opened from a
    student, that student and the roster's home address."""
    initial = {
        "planned_start": rounded_now(),
        "expected_minutes": EXPECTED_MINUTES_DEFAULT,
        "phone": user.phone,
        "submission_key": uuid.uuid4(),  # one report per form shown, however often it is posted
    }
    if student is not None:
        initial["students"] = [student.public_id]
        initial["address"] = student.address
    return initial
