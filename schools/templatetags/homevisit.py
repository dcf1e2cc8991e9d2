from django import template

from schools.privacy import mask_id_number, mask_phone, redact_contacts

register = template.Library()

register.filter("mask_phone", mask_phone)
register.filter("mask_id", mask_id_number)
register.filter("redact_contacts", redact_contacts)


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key) if mapping else None


@register.filter
def in_force(record, day) -> bool:
    return record.in_force_on(day)
