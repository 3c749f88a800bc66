"""The referral API's paths (DESIGN.md section 6), included under /api/v1/."""

from django.urls import path

from referrals import apis

urlpatterns = [
    path("referrals/", apis.ReferralListCreateApi.as_view(), name="referral-list"),
    path("referrals/<uuid:referral_id>/", apis.ReferralDetailApi.as_view(), name="referral-detail"),
    path(
        "referrals/<uuid:referral_id>/events/",
        apis.ReferralEventListApi.as_view(),
        name="referral-events",
    ),
    path(
        "referrals/<uuid:referral_id>/attachments/",
        apis.ReferralAttachmentListApi.as_view(),
        name="referral-attachments",
    ),
    path(
        "referrals/<uuid:referral_id>/fhir/", apis.ReferralFhirApi.as_view(), name="referral-fhir"
    ),
    path(
        "attachments/<uuid:attachment_id>/download/",
        apis.AttachmentDownloadApi.as_view(),
        name="attachment-download",
    ),
    *(
        path(
            f"referrals/<uuid:referral_id>/{action}/",
            view.as_view(),
            name=f"referral-{action}",
        )
        for action, view in (
            ("sign-off", apis.ReferralSignOffApi),
            ("submit", apis.ReferralSubmitApi),
            ("review", apis.ReferralReviewApi),
            ("request-info", apis.ReferralRequestInfoApi),
            ("accept", apis.ReferralAcceptApi),
            ("decline", apis.ReferralDeclineApi),
            ("schedule", apis.ReferralScheduleApi),
            ("no-show", apis.ReferralNoShowApi),
            ("start-treatment", apis.ReferralStartTreatmentApi),
            ("complete", apis.ReferralCompleteApi),
            ("acknowledge", apis.ReferralAcknowledgeApi),
            ("cancel", apis.ReferralCancelApi),
        )
    ),
]
