"""Forms of the support ledger, the care log, the school calendar and the school's robot. They parse
and present; the rules live in the services (``ledgers.support``, ``ledgers.care``, ``ledgers.calendar``)."""

from django import forms

from ledgers.care_models import PLAN_HEADINGS, CalendarOverride, CareAsk, SupportPlan
from schools.models import SCHOOL_ROLES, User
from visits.models import GroupRobot

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def bootstrap(form: forms.BaseForm) -> None:
    """Bootstrap 5 classes on every widget."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.CheckboxInput):
            css = "form-check-input"
        elif isinstance(widget, forms.Select):
            css = "form-select"
        else:
            css = "form-control"
        widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()


class Bootstrapped:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bootstrap(self)


class SupportPlanForm(Bootstrapped, forms.ModelForm):
    reviewed = forms.BooleanField(label="本次为复核（记录今天为复核日期）", required=False)

    class Meta:
        model = SupportPlan
        fields = [
            "responsible_teacher",
            "consent_by",
            "consent_on",
            "consent_method",
            *[f"{prefix}_{part}" for prefix, _label in PLAN_HEADINGS for part in ("measures", "who", "due")],
            "next_review_on",
            "status",
            "close_reason",
        ]
        widgets = {
            "consent_on": DATE,
            "next_review_on": DATE,
            **{f"{prefix}_due": DATE for prefix, _label in PLAN_HEADINGS},
            **{f"{prefix}_measures": forms.Textarea(attrs={"rows": 2}) for prefix, _label in PLAN_HEADINGS},
        }

    def __init__(self, *args, school, may_name_teacher: bool, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["responsible_teacher"]
        field.queryset = User.objects.filter(school=school, is_active=True, role__in=SCHOOL_ROLES).order_by("real_name")
        field.required = False
        field.empty_label = "班主任（默认）"
        if not may_name_teacher:
            field.disabled = True
            field.help_text = "由学校管理员指定；默认为班主任。"

    def headings(self):
        return [
            (label, self[f"{prefix}_measures"], self[f"{prefix}_who"], self[f"{prefix}_due"])
            for prefix, label in PLAN_HEADINGS
        ]

    def values(self) -> dict:
        values = dict(self.cleaned_data)
        values.pop("reviewed", None)
        if self.fields["responsible_teacher"].disabled:
            values.pop("responsible_teacher", None)
        return values


class CareAskForm(Bootstrapped, forms.Form):
    outcome = forms.ChoiceField(label="情况", choices=CareAsk.Outcome.choices)
    day = forms.DateField(label="日期", required=False, widget=DATE)
    reason = forms.CharField(label="原因", required=False, max_length=200)
    note = forms.CharField(label="备注", required=False, max_length=300)


class CareMeetingForm(Bootstrapped, forms.Form):
    met_on = forms.DateField(label="见面日期", widget=DATE)
    place = forms.CharField(label="地点", required=False, max_length=100)
    note = forms.CharField(label="备注", required=False, max_length=300)


class CalendarOverrideForm(Bootstrapped, forms.ModelForm):
    class Meta:
        model = CalendarOverride
        fields = ["kind", "name", "start", "end"]
        widgets = {"start": DATE, "end": DATE}


class GroupRobotForm(Bootstrapped, forms.ModelForm):
    url = forms.URLField(label="Webhook 地址", max_length=300, assume_scheme="https")

    class Meta:
        model = GroupRobot
        fields = ["kind", "url", "secret", "enabled"]
        widgets = {
            "secret": forms.PasswordInput(render_value=False, attrs={"placeholder": "已保存的密钥不显示；留空则不修改"})
        }
