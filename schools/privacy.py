"""Masking of identifiers shown in lists and exports (DESIGN §8)."""


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
