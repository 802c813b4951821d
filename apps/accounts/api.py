"""/api/v1/auth/*, /api/v1/consent*, /api/v1/account: sign-up, JWT, consents, account deletion."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from apps.accounts import selectors, services
from apps.accounts.disclaimer import current_disclaimer, current_research_text
from apps.accounts.usernames import clean_username
from apps.audit.services import client_ip
from deepmed_web.throttles import AUTH_THROTTLES


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(
        max_length=150,
        help_text="Letters, digits and . _ - @ + (stored NFKC-normalised); not a look-alike of a staff username.",
    )
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True)

    def validate_username(self, value: str) -> str:
        return clean_username(value)


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField(help_text="empty when none was given")
    role = serializers.CharField()


class ConsentSerializer(serializers.Serializer):
    version = serializers.CharField()
    text = serializers.CharField(read_only=True)
    accepted = serializers.BooleanField(read_only=True)
    accepted_at = serializers.DateTimeField(read_only=True, allow_null=True)


class ResearchConsentSerializer(serializers.Serializer):
    version = serializers.CharField()
    granted = serializers.BooleanField()
    text = serializers.CharField(read_only=True)
    decided_at = serializers.DateTimeField(read_only=True, allow_null=True)


class AccountDeleteSerializer(serializers.Serializer):
    password = serializers.CharField(write_only=True)


class ConsentStatusSerializer(serializers.Serializer):
    version = serializers.CharField()
    accepted = serializers.BooleanField()


class ResearchStatusSerializer(serializers.Serializer):
    version = serializers.CharField()
    granted = serializers.BooleanField()


class MeSerializer(UserSerializer):
    consent = ConsentStatusSerializer(help_text="The current disclaimer: uploads need it accepted.")
    research_consent = ResearchStatusSerializer()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(write_only=True)
    new_password = serializers.CharField(write_only=True)


def _consent_state(user) -> dict:
    consent = selectors.current_consent(user)
    disclaimer = current_disclaimer()
    return {
        "version": disclaimer.version,
        "text": disclaimer.text,
        "accepted": consent is not None,
        "accepted_at": consent.accepted_at if consent else None,
    }


def _research_state(user) -> dict:
    decision = selectors.latest_research_decision(user)
    research = current_research_text()
    return {
        "version": research.version,
        "text": research.text,
        "granted": selectors.has_research_consent(user),
        "decided_at": decision.decided_at if decision else None,
    }


def _token_pair(user) -> dict:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = AUTH_THROTTLES

    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer}, summary="Patient self sign-up")
    def post(self, request):
        body = RegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            user = services.register_patient(**body.validated_data, ip_address=client_ip(request))
        except DjangoValidationError as exc:
            fields = exc.message_dict if hasattr(exc, "error_dict") else {"password": exc.messages}
            raise serializers.ValidationError(fields) from exc
        except ValueError as exc:
            raise serializers.ValidationError({"username": ["This username is taken."]}) from exc
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenApi(TokenObtainPairView):
    """JWT pair for {username, password}; the same django-axes lock-out as the web login."""

    throttle_classes = AUTH_THROTTLES

    @extend_schema(
        request=TokenObtainPairSerializer,
        responses={200: TokenPairSerializer},
        summary="Log in: an access/refresh token pair",
    )
    def post(self, request, *args, **kwargs):
        try:
            response = super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                raise services.AccountLocked() from None
            raise
        # simplejwt sends no user_logged_in signal, so django-axes would keep counting this
        # username+address's earlier failures after a success: reset them as a web log-in does.
        services.clear_login_failures(request, request.data.get("username", ""))
        return response


class TokenRefreshApi(TokenRefreshView):
    """A new access token (and a new refresh token: the one sent is blacklisted, so a stolen
    refresh token that was already used is refused)."""

    throttle_classes = AUTH_THROTTLES

    @extend_schema(
        request=TokenRefreshSerializer,
        responses={200: TokenPairSerializer},
        summary="Refresh: a new token pair for a valid refresh token",
    )
    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except ObjectDoesNotExist:  # the account was deleted after the token was issued
            raise InvalidToken("The token's account no longer exists.") from None


class LogoutApi(APIView):
    permission_classes = [AllowAny]  # an app may sign out with only its refresh token left
    authentication_classes: list = []
    throttle_classes = AUTH_THROTTLES

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'  # a bad token is a 401, not DRF's 403 for views without authenticators

    @extend_schema(request=LogoutSerializer, responses={204: None}, summary="Log out: revoke this refresh token")
    def post(self, request):
        body = LogoutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.log_out_api_token(body.validated_data["refresh"], ip_address=client_ip(request))
        except TokenError as exc:
            raise InvalidToken(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeApi(APIView):
    throttle_classes = AUTH_THROTTLES

    @extend_schema(
        request=PasswordChangeSerializer,
        responses={200: TokenPairSerializer},
        summary="Change my password: every token is revoked; a new pair for this device",
    )
    def post(self, request):
        body = PasswordChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.change_password(request.user, ip_address=client_ip(request), **body.validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"new_password": exc.messages}) from exc
        return Response(TokenPairSerializer(_token_pair(request.user)).data)


class MeApi(APIView):
    @extend_schema(responses=MeSerializer, summary="Who I am, my role, and the consents still to give")
    def get(self, request):
        user = request.user
        return Response(
            MeSerializer(
                {
                    "id": user.pk,
                    "username": user.username,
                    "email": user.email,
                    "role": user.role,
                    "consent": _consent_state(user),
                    "research_consent": _research_state(user),
                }
            ).data
        )


class ConsentApi(APIView):
    @extend_schema(responses=ConsentSerializer, summary="The current disclaimer and whether I accepted it")
    def get(self, request):
        return Response(ConsentSerializer(_consent_state(request.user)).data)

    @extend_schema(
        request=ConsentSerializer, responses={201: ConsentSerializer}, summary="Accept the disclaimer version shown"
    )
    def post(self, request):
        body = ConsentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.accept_disclaimer(request.user, version=body.validated_data["version"], ip_address=client_ip(request))
        return Response(ConsentSerializer(_consent_state(request.user)).data, status=status.HTTP_201_CREATED)


class ResearchConsentApi(APIView):
    @extend_schema(responses=ResearchConsentSerializer, summary="The research-use text and my current choice")
    def get(self, request):
        return Response(ResearchConsentSerializer(_research_state(request.user)).data)

    @extend_schema(
        request=ResearchConsentSerializer,
        responses={201: ResearchConsentSerializer},
        summary="Explicitly grant or withdraw research use (separate from the disclaimer)",
    )
    def post(self, request):
        if not request.user.is_patient:
            raise PermissionDenied("Research consent concerns patients' images.")
        body = ResearchConsentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.decide_research_use(
            request.user,
            granted=body.validated_data["granted"],
            version=body.validated_data["version"],
            ip_address=client_ip(request),
        )
        return Response(ResearchConsentSerializer(_research_state(request.user)).data, status=status.HTTP_201_CREATED)


class AccountApi(APIView):
    @extend_schema(responses=UserSerializer, summary="Who I am")
    def get(self, request):
        return Response(UserSerializer(request.user).data)

    @extend_schema(request=AccountDeleteSerializer, responses={204: None}, summary="Delete my account and data")
    def delete(self, request):
        if not request.user.is_patient:
            raise PermissionDenied("Staff accounts are removed by an administrator.")
        body = AccountDeleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if not request.user.check_password(body.validated_data["password"]):
            raise services.WrongPassword("The password is not correct.")
        services.delete_account(request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
