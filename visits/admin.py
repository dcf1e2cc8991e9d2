"""The bureau admin's back office for the campaign and its phases (DESIGN §1)."""

from django.contrib import admin

from schools.models import Campaign, Phase
from visits.services import campaign_visit_phases_derive


class PhaseInline(admin.TabularInline):
    model = Phase
    extra = 0
    min_num = 1


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["year", "name", "school_year"]
    inlines = [PhaseInline]

    def save_related(self, request, form, formsets, change):
        """When phases were added, moved or removed, the visits already filed move with them (in the
        admin's transaction) and the statistics are recomputed (``campaign_visit_phases_derive``)."""
        super().save_related(request, form, formsets, change)
        if any(f.has_changed() for formset in formsets for f in formset.forms) or any(
            formset.deleted_forms for formset in formsets
        ):
            campaign_visit_phases_derive(campaign=form.instance, acting_user=request.user)
