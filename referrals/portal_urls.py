"""Portal pages, included at ``/referrals/`` by portal/urls.py.

``/referrals/<uuid>/`` is the referral's page: notifications link to it
(``referrals.services.referral_portal_path``).
"""

from django.urls import path

from referrals import views

app_name = "referrals"

urlpatterns = [
    path("", views.referral_list, name="list"),
    path("new/", views.referral_new, name="new"),
    path("worklist/", views.worklist, name="worklist"),
    path("<uuid:referral_id>/", views.referral_detail, name="detail"),
    path("<uuid:referral_id>/edit/", views.referral_resume, name="resume"),
    path("<uuid:referral_id>/edit/<slug:step>/", views.referral_edit, name="edit"),
    path("<uuid:referral_id>/actions/<slug:action>/", views.referral_action, name="action"),
    path(
        "attachments/<uuid:attachment_id>/download/",
        views.attachment_download,
        name="attachment",
    ),
]
