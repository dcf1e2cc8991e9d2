"""The downloadable roster template (学生名册模板): every column the roster import reads, two example
rows that pass its checks, and a sheet explaining each column."""

import datetime

import openpyxl
from django.utils import timezone

from schools.importing import build_template
from students.roster_import import TEMPLATE_COLUMNS as COLUMNS

WIDTHS = {
    "name": 10,
    "gender": 6,
    "student_number": 22,
    "id_type": 14,
    "id_number": 22,
    "birth_date": 12,
    "grade": 10,
    "class_name": 8,
    "address": 30,
    "guardian_name": 12,
    "guardian_relation": 12,
    "guardian_phone": 16,
    "disability_type": 10,
}
TEXT_COLUMNS = {"student_number", "id_number", "guardian_phone"}
YES_NO = ["是", "否"]
CHOICES = {
    "gender": ["男", "女"],
    "id_type": ["居民身份证", "港澳台居民居住证", "护照", "其他"],
    "left_behind": YES_NO,
    "migrant": YES_NO,
    "orphan": YES_NO,
    "unsupported": YES_NO,
    "economic_hardship": YES_NO,
}
YES_NO_HELP = "填写“是”或“否”，不填按“否”。有此列时，导入会按本列登记或结束该学生的这一类别。"
HELP = {
    "name": "学生姓名，不超过 50 个字。",
    "gender": "“男”或“女”。填写了居民身份证号时可不填，按身份证号判断。",
    "student_number": "全国学籍号（如 G 加身份证号），6—32 位字母或数字。"
    "导入按学籍号识别学生：学籍号相同即更新该学生。",
    "id_type": "不填即为居民身份证。其他证件（如护照）请写明证件类型，此时不校验证件号格式。",
    "id_number": "18 位居民身份证号，最后一位可以是 X。请把单元格设为“文本”，以免 Excel 把后几位变成 0。",
    "birth_date": "如 2016-03-08 或 2016/3/8。填写了居民身份证号时可不填，按身份证号计算。",
    "grade": "如“三年级”“初一”“大班”。也可以不填，在班级中一并写成“三年级(2)班”。",
    "class_name": "如“2班”或“(2)班”。班级须先在「班级管理」中建好（本校当前学年）。",
    "address": "家庭现住址，不超过 200 个字。",
    "guardian_name": "第一监护人的姓名。",
    "guardian_relation": "如“父亲”“母亲”“祖父”。",
    "guardian_phone": "手机号或固定电话（如 0371-12345678）。",
    "left_behind": YES_NO_HELP,
    "migrant": YES_NO_HELP,
    "orphan": YES_NO_HELP,
    "unsupported": YES_NO_HELP,
    "economic_hardship": YES_NO_HELP,
    "disability_type": "如“视力残疾”“肢体残疾”；没有残疾填“无”或不填。",
}
NOTES = [
    "第 1 行是表头，请勿修改列名；可选列不需要时可以整列删除，删除的列不会改动已有数据。"
    "从全国学籍系统导出的名册可直接上传，不必改成本模板。",
    "第 2、3 行是示例，请删除后再填写本校学生。",
    "学生按学籍号识别：已在本校的学生按表中内容更新，表中没有的学生保持不变，可以按年级分别上传。",
    "文件有错误时，系统会列出每个错误的行号和原因；可以改正后重新上传，也可以选择只导入正确的行。",
    "重复上传同一份名册不会产生重复学生。",
]

REGION_CODE = "410522"  # a county code, as the first six digits of an example ID number
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def example_id_number(birth_date: datetime.date, sequence: str) -> str:
    """A resident ID number (GB 11643) with a correct check character; an odd last digit of
    ``sequence`` makes it a boy's."""
    body = f"{REGION_CODE}{birth_date:%Y%m%d}{sequence}"
    total = sum(int(digit) * weight for digit, weight in zip(body, _ID_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def example_rows(today: datetime.date | None = None) -> list[dict]:
    """Two students of 三年级(2)班, born nine years ago: a boy, and a left-behind girl."""
    today = today or timezone.localdate()
    boy_born = datetime.date(today.year - 9, 3, 8)
    girl_born = datetime.date(today.year - 9, 11, 20)
    boy_id = example_id_number(boy_born, "013")
    girl_id = example_id_number(girl_born, "024")
    common = {"id_type": "居民身份证", "grade": "三年级", "class_name": "2班", "disability_type": "无"}
    no = dict.fromkeys(("left_behind", "migrant", "orphan", "unsupported", "economic_hardship"), "否")
    return [
        {
            **common,
            **no,
            "name": "张小明",
            "gender": "男",
            "student_number": f"G{boy_id}",
            "id_number": boy_id,
            "birth_date": boy_born,
            "address": "示例县城关镇幸福路 1 号",
            "guardian_name": "张建国",
            "guardian_relation": "父亲",
            "guardian_phone": "13912345678",
        },
        {
            **common,
            **no,
            "name": "李小红",
            "gender": "女",
            "student_number": f"G{girl_id}",
            "id_number": girl_id,
            "birth_date": girl_born,
            "address": "示例县李庄镇李庄村 3 组",
            "guardian_name": "李秀英",
            "guardian_relation": "祖母",
            "guardian_phone": "13987654321",
            "left_behind": "是",
        },
    ]


def template_workbook() -> openpyxl.Workbook:
    """The roster template: the header row, two example rows and a sheet of instructions."""
    return build_template(
        columns=COLUMNS,
        examples=example_rows(),
        widths=WIDTHS,
        help_texts=HELP,
        notes=NOTES,
        title="学生名册",
        text_columns=TEXT_COLUMNS,
        choices=CHOICES,
    )
