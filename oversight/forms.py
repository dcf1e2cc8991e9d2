"""Forms of oversight pages: they parse; the services check the rules."""

from django import forms

from oversight.models import BackCheck, Inspection, ReviewSetting
from schools.models import Phase, School, Zone
from visits.models import Method


class ReviewSettingForm(forms.Form):
    mode = forms.ChoiceField(label="本校是否审核家访记录", choices=ReviewSetting.Mode.choices)


class ReviewForm(forms.Form):
    action = forms.ChoiceField(choices=[("accepted", "审核通过"), ("returned", "退回")])
    reason = forms.CharField(label="退回原因", max_length=300, required=False)


class SampleForm(forms.Form):
    school = forms.ModelChoiceField(label="学校", queryset=School.objects.none(), empty_label=None)
    phase = forms.ModelChoiceField(label="阶段", queryset=Phase.objects.none(), required=False, empty_label="全部阶段")
    method = forms.ChoiceField(label="家访方式", choices=[("", "全部方式"), *Method.choices], required=False)
    size = forms.IntegerField(label="抽取条数", min_value=1, required=False)
    share = forms.IntegerField(label="或抽取比例（%）", min_value=1, max_value=100, required=False)
    flagged_only = forms.BooleanField(label="只从有质量提示的记录中抽取", required=False)

    def __init__(self, *args, schools, phases, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["school"].queryset = schools
        self.fields["phase"].queryset = phases


class BackCheckForm(forms.Form):
    outcome = forms.ChoiceField(label="回访结果", choices=BackCheck.Outcome.choices)
    note = forms.CharField(label="说明", max_length=500, required=False)


class InspectionForm(forms.Form):
    school = forms.ModelChoiceField(label="学校", queryset=School.objects.none(), empty_label=None)
    date = forms.DateField(label="督查日期", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    how = forms.ChoiceField(label="督查方式", choices=Inspection.How.choices)
    findings = forms.CharField(label="发现问题", max_length=4000, widget=forms.Textarea(attrs={"rows": 4}))
    rectification = forms.CharField(
        label="整改要求（无需整改可不填）", max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    deadline = forms.DateField(
        label="整改期限", required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def __init__(self, *args, schools, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["school"].queryset = schools


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented pattern); the service checks each."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class RectificationReportForm(forms.Form):
    text = forms.CharField(label="整改情况", max_length=2000, widget=forms.Textarea(attrs={"rows": 4}))
    files = MultipleFileField(
        label="照片或扫描件（可多选）", required=False, widget=MultipleFileInput(attrs={"accept": "image/*,.pdf"})
    )


class RectificationDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("accept", "验收通过"), ("send_back", "退回")])
    text = forms.CharField(label="验收意见", max_length=2000, required=False)


class TargetForm(forms.Form):
    zone = forms.ModelChoiceField(
        label="片区", queryset=Zone.objects.order_by("code"), required=False, empty_label="（全县）"
    )
    school = forms.ModelChoiceField(
        label="或学校", queryset=School.objects.order_by("name"), required=False, empty_label="（不指定学校）"
    )
    coverage = forms.IntegerField(label="家访率（%）", min_value=1, max_value=100, initial=100)
    participation = forms.IntegerField(label="走访率（%）", min_value=1, max_value=100, initial=100)
    focus_coverage = forms.IntegerField(label="重点关注学生家访率（%）", min_value=1, max_value=100, initial=100)
    special_in_home = forms.IntegerField(label="特殊学生入户 2 次达标率（%）", min_value=1, max_value=100, initial=100)
