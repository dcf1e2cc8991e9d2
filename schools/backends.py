"""Authentication backend: Django's, loading the user's school and zone with the user, since
every page's header shows them (one query per request instead of two or three)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class UserWithOrganisationBackend(ModelBackend):
    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.select_related("school", "zone").get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
