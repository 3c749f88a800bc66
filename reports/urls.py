"""Portal pages, included at ``/reports/`` by portal/urls.py."""

from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.outcomes_index, name="index"),
    path("referrals/<uuid:referral_id>/", views.referral_outcomes, name="outcomes"),
    path("referrals/<uuid:referral_id>/infusions/new/", views.infusion_new, name="infusion_new"),
    path(
        "referrals/<uuid:referral_id>/assessments/new/",
        views.assessment_new,
        name="assessment_new",
    ),
    path("referrals/<uuid:referral_id>/reports/", views.report_request, name="request"),
    path("<uuid:report_id>/", views.report_page, name="report"),
    path("<uuid:report_id>/status/", views.report_status, name="status"),
    path("<uuid:report_id>/pdf/", views.report_pdf, name="pdf"),
    path("<uuid:report_id>/sign/", views.report_sign, name="sign"),
    path("<uuid:report_id>/acknowledge/", views.report_acknowledge, name="acknowledge"),
]
