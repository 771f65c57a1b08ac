"""The login throttle's authentication backend (django-axes), for web logins only."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class ThrottledLoginBackend(AxesStandaloneBackend):
    """Refuses a login while its username or address is locked out (see AXES_* in settings).

    Without a request there is nothing to throttle (the test client's ``login()``, a script calling
    ``authenticate()``): axes would raise, so such calls pass on to the next backend unchecked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
