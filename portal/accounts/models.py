"""Users, organisations (the clinic and referring practices) and memberships with roles."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from portal.accounts.validators import validate_npi
from portal.core.models import BaseModel


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)

    def _create_user(self, email: str, password: str | None, **extra_fields: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields: Any) -> User:
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(
        self, email: str, password: str | None = None, **extra_fields: Any
    ) -> User:
        extra_fields["is_staff"] = True
        extra_fields["is_superuser"] = True
        return self._create_user(email, password, **extra_fields)


class User(BaseModel, AbstractBaseUser, PermissionsMixin):
    """A person who signs in. The e-mail address is the login and is unique ignoring case."""

    email = models.EmailField("e-mail address", max_length=254, unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May sign in to the admin site.")
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Organization(BaseModel):
    """The receiving clinic or a referring practice."""

    class Kind(models.TextChoices):
        CLINIC = "clinic", "Clinic"
        PRACTICE = "practice", "Practice"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["clinic", "practice"]), name="organization_kind_valid"
            ),
            models.UniqueConstraint(fields=["name", "kind"], name="organization_name_kind_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    PROVIDER = "provider", "Referring provider"
    PRACTICE_STAFF = "practice_staff", "Practice staff"
    COORDINATOR = "coordinator", "Care coordinator"
    CLINICIAN = "clinician", "Clinician"
    CLINIC_ADMIN = "clinic_admin", "Clinic admin"


PRACTICE_ROLES = frozenset({Role.PROVIDER, Role.PRACTICE_STAFF})
CLINIC_ROLES = frozenset({Role.COORDINATOR, Role.CLINICIAN, Role.CLINIC_ADMIN})
ROLES_BY_KIND = {
    Organization.Kind.PRACTICE: PRACTICE_ROLES,
    Organization.Kind.CLINIC: CLINIC_ROLES,
}


class Membership(BaseModel):
    """A user's role in one organisation. A provider carries a National Provider Identifier."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=32, choices=Role.choices)
    npi = models.CharField(
        "NPI", max_length=10, blank=True, validators=[validate_npi], help_text="Providers only."
    )
    is_active = models.BooleanField(default=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"], name="membership_user_organization_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[role.value for role in Role]),
                name="membership_role_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(role="provider") | ~models.Q(npi=""),
                name="membership_provider_has_npi",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} - {self.get_role_display()} at {self.organization}"

    def clean(self) -> None:
        super().clean()
        allowed = ROLES_BY_KIND.get(Organization.Kind(self.organization.kind), frozenset())
        if self.role not in allowed:
            raise ValidationError(
                {"role": "This role does not exist in this kind of organisation."}
            )
        if self.role == Role.PROVIDER and not self.npi:
            raise ValidationError({"npi": "A provider needs an NPI."})
        if self.role != Role.PROVIDER and self.npi:
            raise ValidationError({"npi": "Only providers carry an NPI."})


class Invitation(BaseModel):
    """A single-use, expiring invitation to join an organisation with a role.

    Only the SHA-256 of the token is stored: the token itself exists in the e-mailed link and
    nowhere else, so a copy of the database cannot be used to accept an invitation.
    """

    email = models.EmailField("e-mail address", max_length=254)
    full_name = models.CharField(max_length=200, blank=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    role = models.CharField(max_length=32, choices=Role.choices)
    npi = models.CharField("NPI", max_length=10, blank=True, validators=[validate_npi])
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, related_name="invitations_sent"
    )
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=[role.value for role in Role]),
                name="invitation_role_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(role="provider") | ~models.Q(npi=""),
                name="invitation_provider_has_npi",
            ),
            models.CheckConstraint(
                condition=models.Q(accepted_at__isnull=True) | models.Q(revoked_at__isnull=True),
                name="invitation_not_accepted_and_revoked",
            ),
        ]
        indexes = [models.Index(Lower("email"), name="invitation_email_ci")]

    def __str__(self) -> str:
        return f"Invitation to {self.organization} as {self.get_role_display()}"

    def status_at(self, now: datetime) -> Invitation.Status:
        if self.accepted_at is not None:
            return self.Status.ACCEPTED
        if self.revoked_at is not None:
            return self.Status.REVOKED
        if self.expires_at <= now:
            return self.Status.EXPIRED
        return self.Status.PENDING

    @property
    def status(self) -> Invitation.Status:
        return self.status_at(timezone.now())
