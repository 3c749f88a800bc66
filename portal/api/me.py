"""``GET /api/v1/me/``: who the caller is and where they belong."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.permissions import has_mfa
from portal.accounts.selectors import membership_list_for_user


class MembershipOutputSerializer(serializers.Serializer):
    organization = serializers.UUIDField(source="organization.public_id")
    organization_name = serializers.CharField(source="organization.name")
    organization_kind = serializers.CharField(source="organization.kind")
    role = serializers.CharField()


class MeApi(APIView):
    # The one API answer open before MFA enrolment: it tells a client that enrolment is needed.
    mfa_exempt_methods = ("GET",)

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="user.public_id")
        email = serializers.EmailField(source="user.email")
        full_name = serializers.CharField(source="user.full_name")
        memberships = MembershipOutputSerializer(many=True)
        mfa_enabled = serializers.BooleanField()

    @extend_schema(operation_id="me_retrieve", responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        payload = {
            "user": user,
            "memberships": membership_list_for_user(user=user),
            "mfa_enabled": has_mfa(user),
        }
        return Response(self.OutputSerializer(payload).data)
