import re

from django import forms
from django.utils.translation import gettext_lazy as _

from schools.models import Grade


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Excel 文件（.xlsx、.xls）或 CSV 文件"),
        widget=forms.ClearableFileInput(
            attrs={
                "accept": ".xlsx,.xls,.csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,"
                "application/vnd.ms-excel,text/csv"
            }
        ),
    )


class ClassCreateForm(forms.Form):
    grade = forms.TypedChoiceField(label=_("年级"), choices=Grade.choices, coerce=int)
    numbers = forms.CharField(
        label=_("班号"),
        max_length=60,
        help_text=_("例如“1-6”表示 1 至 6 班，或“1,3,5”"),
    )

    def clean_numbers(self) -> list[int]:
        text = self.cleaned_data["numbers"].replace("，", ",").replace("—", "-").replace("～", "-").replace(" ", "")
        numbers: set[int] = set()
        for part in filter(None, text.split(",")):
            match = re.fullmatch(r"(\d{1,2})(?:-(\d{1,2}))?", part)
            if not match:
                raise forms.ValidationError(_("无法识别“%(part)s”：请写成“1-6”或“1,3,5”。"), params={"part": part})
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            if not 1 <= first <= last <= 40:
                raise forms.ValidationError(_("班号应在 1 到 40 之间，且由小到大。"))
            numbers.update(range(first, last + 1))
        if not numbers:
            raise forms.ValidationError(_("请填写班号。"))
        return sorted(numbers)
