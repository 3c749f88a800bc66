"""The outcomes and reports API paths (DESIGN.md section 6), included under /api/v1/."""

from django.urls import path

from reports import apis

urlpatterns = [
    path(
        "referrals/<uuid:referral_id>/assessments/",
        apis.ReferralAssessmentListApi.as_view(),
        name="referral-assessments",
    ),
    path(
        "referrals/<uuid:referral_id>/infusions/",
        apis.ReferralInfusionListApi.as_view(),
        name="referral-infusions",
    ),
    path(
        "referrals/<uuid:referral_id>/reports/",
        apis.ReferralReportListApi.as_view(),
        name="referral-reports",
    ),
    path("reports/<uuid:report_id>/", apis.ReportDetailApi.as_view(), name="report-detail"),
    path("reports/<uuid:report_id>/pdf/", apis.ReportPdfApi.as_view(), name="report-pdf"),
    path("reports/<uuid:report_id>/sign/", apis.ReportSignApi.as_view(), name="report-sign"),
    path(
        "reports/<uuid:report_id>/acknowledge/",
        apis.ReportAcknowledgeApi.as_view(),
        name="report-acknowledge",
    ),
    path("reports/<uuid:report_id>/fhir/", apis.ReportFhirApi.as_view(), name="report-fhir"),
]
