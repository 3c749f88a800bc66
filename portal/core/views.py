"""Portal pages of the platform itself."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.selectors import membership_list_for_user


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    memberships = membership_list_for_user(user=request.user)
    return render(request, "portal/dashboard.html", {"memberships": memberships})
