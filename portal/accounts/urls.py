"""Identity pages, mounted under ``/accounts/`` next to allauth's own."""

from django.urls import path

from portal.accounts import views

urlpatterns = [
    path("invitations/", views.invitation_list, name="invitation_list"),
    path("invitations/<uuid:public_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("invitations/<uuid:public_id>/resend/", views.invitation_resend, name="invitation_resend"),
    path("invitations/accept/", views.invitation_accept, name="invitation_accept"),
    path(
        "invitations/accept/<str:token>/",
        views.invitation_accept_token,
        name="invitation_accept_token",
    ),
    path("practices/new/", views.practice_create, name="practice_create"),
    path("members/", views.member_list, name="member_list"),
    path(
        "members/<uuid:public_id>/deactivate/",
        views.membership_deactivate,
        name="membership_deactivate",
    ),
    path("sessions/end/", views.session_end, name="session_end"),
]
