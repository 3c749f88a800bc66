"""``GET /api/v1/me/``: who the caller is and where they belong."""

from allauth.mfa.utils import is_mfa_enabled
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.selectors import membership_list_for_user


class MembershipOutputSerializer(serializers.Serializer):
    organization = serializers.UUIDField(source="organization.public_id")
    organization_name = serializers.CharField(source="organization.name")
    organization_kind = serializers.CharField(source="organization.kind")
    role = serializers.CharField()


class MeApi(APIView):
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
            "mfa_enabled": is_mfa_enabled(user),
        }
        return Response(self.OutputSerializer(payload).data)
