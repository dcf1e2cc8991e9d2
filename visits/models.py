"""Visit records and safety reports (DESIGN §4, §5): built with the visit issue."""
