"""The visit record form: the paper 《大家访活动教师记录表》 as a phone-sized form."""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from schools.models import Campaign, User
from students.models import SPECIAL_CATEGORIES, Student, StudentCategory
from visits.attachments import PreparedFile, attachment_prepare
from visits.models import Content, Method, Visit
from visits.periods import campaign_span_text
from visits.services import FUTURE_TOLERANCE, SUGGESTIONS_MAX, VisitData

DATETIME_INPUT = "%Y-%m-%dT%H:%M"


class StudentChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, student: Student) -> str:
        return f"{student.name}（{student.school_class.name if student.school_class else '未分班'}）"


class StaffChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, user: User) -> str:
        return user.display_name


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class VisitForm(forms.Form):
    visited_at = forms.DateTimeField(
        label="家访时间",
        input_formats=[DATETIME_INPUT, "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_INPUT),
    )
    method = forms.ChoiceField(label="家访方式", choices=Method.choices, widget=forms.RadioSelect)
    students = StudentChoiceField(
        label="学生（同一家庭的兄弟姐妹可一起选）", queryset=Student.objects.none(), widget=forms.CheckboxSelectMultiple
    )
    companions = StaffChoiceField(
        label="同行教师和学校领导",
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    guardians_met = forms.CharField(
        label="接待家长及关系",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "如：母亲 王芳"}),
    )
    contents = forms.MultipleChoiceField(
        label="家访内容", choices=Content.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    situation = forms.CharField(
        label="情况记录", max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    measures = forms.CharField(
        label="商定措施（一生一策）", max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    consent_recorded = forms.BooleanField(label="家长已知情并同意本次家访（特殊学生上门家访必填）", required=False)
    integrity_declared = forms.BooleanField(label="本人承诺：家访中未接受家长吃请和礼品", required=False)
    photos = MultipleFileField(
        label="照片或扫描件（JPG、PNG、HEIC、PDF，每个不超过 10 MB）",
        required=False,
        widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/heic,image/heif,application/pdf"}),
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # Rendered by the server when a new record's form is shown (visits.views.records.visit_create);
    # posted back unchanged, also by the offline copy in the browser: see visit_submit.
    submission_key = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, user: User, visit: Visit | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.visit = visit
        school_id = visit.school_id if visit else user.school_id
        students = Student.objects.visible_to(user).active().filter(school_id=school_id)
        if visit is not None:  # keep the record's students choosable even if they left since
            students = students | Student.objects.filter(pk__in=visit.students.values("pk"))
        self.fields["students"].queryset = students.select_related("school_class").order_by(
            "school_class__grade", "school_class__number", "name"
        )
        lead_id = visit.lead_teacher_id if visit else user.pk
        self.fields["companions"].queryset = (
            User.objects.filter(school_id=school_id, is_active=True).exclude(pk=lead_id).order_by("real_name")
        )
        self.existing_attachments = visit.attachments.count() if visit else 0
        self.fields["visited_at"].help_text = campaign_span_text(Campaign.current())
        # The page marks the consent box required as soon as a special student and 上门家访 are
        # chosen (the rule _check applies on submit, DESIGN §3): one query for the whole list.
        self.special_student_ids = set(
            StudentCategory.objects.in_force_on(timezone.localdate())
            .filter(student__in=self.fields["students"].queryset, category__in=SPECIAL_CATEGORIES)
            .values_list("student_id", flat=True)
        )

    def error_summary(self, formset=None) -> list[tuple[str, str, str]]:
        """Every error of the form and its suggestion rows as (anchor id, field label, message),
        in the order the fields stand on the page, for the summary shown above a refused form."""
        items = [("", "", message) for message in self.non_field_errors()]
        for name, field in self.fields.items():
            for message in self.errors.get(name, []):
                items.append((f"field-{name}", field.label or "", message))
        if formset is not None:
            for message in formset.non_form_errors():
                items.append(("field-suggestions", "家长意见建议", message))
            for number, row in enumerate(formset, start=1):
                for messages in row.errors.values():
                    for message in messages:
                        items.append(("field-suggestions", f"意见建议 {number}", message))
        return items

    def clean_visited_at(self):
        visited_at = self.cleaned_data["visited_at"]
        if visited_at > timezone.now() + FUTURE_TOLERANCE:
            raise ValidationError("家访时间不能晚于现在。")
        return visited_at

    def clean_photos(self) -> list[PreparedFile]:
        uploads = self.cleaned_data.get("photos") or []
        room = settings.VISIT_ATTACHMENTS_MAX - self.existing_attachments
        if len(uploads) > room:
            raise ValidationError(f"每条家访记录最多 {settings.VISIT_ATTACHMENTS_MAX} 个附件，现在还能上传 {room} 个。")
        prepared, problems = [], []
        for upload in uploads:
            try:
                prepared.append(attachment_prepare(upload))
            except ValidationError as exc:
                problems.extend(exc.messages)
        if problems:
            raise ValidationError(problems + ["其他内容已保留，请重新选择照片后再保存。"])
        return prepared

    def visit_data(self, suggestions: list[dict]) -> VisitData:
        data = self.cleaned_data
        return VisitData(
            visited_at=data["visited_at"],
            method=data["method"],
            students=list(data["students"]),
            companions=list(data["companions"]),
            guardians_met=data["guardians_met"],
            contents=[code for code in Content.values if code in data["contents"]],
            situation=data["situation"],
            measures=data["measures"],
            consent_recorded=data["consent_recorded"],
            integrity_declared=data["integrity_declared"],
            suggestions=suggestions,
        )


class SuggestionForm(forms.Form):
    # The item's id when the row shows an existing item: it is updated in place (visits.feedback).
    id = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)
    text = forms.CharField(label="家长意见建议", max_length=500, required=False)
    reply = forms.CharField(label="现场答复", max_length=500, required=False)
    to_school = forms.BooleanField(label="提交学校处理", required=False)
    withdraw_reason = forms.CharField(label="撤回原因", max_length=300, required=False)


# absolute_max caps what a forged TOTAL_FORMS can make the server build (Django's default is 1000).
SuggestionFormSet = forms.formset_factory(
    SuggestionForm, extra=2, max_num=SUGGESTIONS_MAX, validate_max=True, absolute_max=SUGGESTIONS_MAX
)


def suggestions_from(formset) -> list[dict]:
    """The filled-in suggestion rows; blank rows are the spare ones a phone form offers (a row of an
    existing item emptied by its author removes that item, if the school has not started on it)."""
    items = []
    for form in formset:
        data = form.cleaned_data
        if data.get("text") or data.get("reply") or data.get("withdraw_reason"):
            items.append(
                {
                    "id": data.get("id"),
                    "text": data["text"],
                    "reply": data["reply"],
                    "to_school": data["to_school"],
                    "withdraw_reason": data.get("withdraw_reason", ""),
                }
            )
    return items


def suggestion_initial(item) -> dict:
    """A stored item as a row of the formset, with what the template needs to show it read-only
    once the school is handling it."""
    return {
        "id": item.pk,
        "text": item.text,
        "reply": item.reply,
        "to_school": item.to_school,
        "withdraw_reason": item.withdrawn_reason,
        "handled": item.is_handled or item.status == "withdrawn",
        "status_label": item.get_status_display(),
        "withdrawn": item.status == "withdrawn",
    }
