"""Who sees a student whole, and the masking of identifiers for everyone else (DESIGN §8)."""

import re

from schools.models import SCHOOL_ROLES


def works_with_students(user) -> bool:
    """Teachers and school admins work with the students their scope holds and see them whole; the
    county's roles (zone admin, inspector, bureau admin) read figures and masked identifiers: no
    contact details, no sensitive category, no notes on a home and no photos of it."""
    return user.role in SCHOOL_ROLES


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678; a landline keeps its area code and last four digits."""
    if not phone:
        return ""
    if len(phone) <= 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def mask_id_number(id_number: str) -> str:
    """11010519491231002X → 110105********002X: the area stays, the birth date does not."""
    if not id_number:
        return ""
    if len(id_number) <= 10:
        return "*" * len(id_number)
    return f"{id_number[:6]}{'*' * (len(id_number) - 10)}{id_number[-4:]}"


# Free text (a visit's 接待家长, the parents' suggestions) may hold a number typed in by a teacher.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}[ -]?\d{7,8}(?!\d)")


def redact_contacts(text: str) -> str:
    """Mask ID numbers and phone numbers found anywhere in ``text``, for readers who see masked
    identifiers only: 「母亲 王芳 13912345678」 → 「母亲 王芳 139****5678」."""
    if not text:
        return text or ""
    text = _ID_NUMBER.sub(lambda match: mask_id_number(match.group()), text)
    text = _MOBILE.sub(lambda match: mask_phone(_digits(match.group())[-11:]), text)
    return _LANDLINE.sub(lambda match: mask_phone(_digits(match.group())), text)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)
