"""Request and response bodies of the auth and users endpoints."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints, model_validator

from telemetra.auth.roles import Role
from telemetra.kit.schemas import Body

Username = Annotated[str, StringConstraints(min_length=3, max_length=150,
                                            pattern=r"^[A-Za-z0-9_.@+-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=256)]
FullName = Annotated[str, StringConstraints(max_length=200)]


class SignupRequest(Body):
    username: Username
    password: Password
    email: EmailStr | None = None
    full_name: FullName | None = None


class LoginRequest(Body):
    username: Annotated[str, Field(max_length=320)] | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    password: Annotated[str, Field(max_length=256)]

    @model_validator(mode="after")
    def _needs_identity(self) -> "LoginRequest":
        if not (self.username or self.email):
            raise ValueError("give username or email")
        return self

    @property
    def identity(self) -> str:
        return self.username or self.email or ""


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class RefreshRequest(Body):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


class LogoutRequest(Body):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class PasswordChange(Body):
    current_password: Annotated[str, Field(max_length=256)]
    new_password: Password


class OrganizationRef(BaseModel):
    id: int
    name: str


class User(BaseModel):
    id: int
    username: str
    email: str | None
    full_name: str | None
    role: Role
    is_superadmin: bool
    is_active: bool
    organization_id: int
    created_at: datetime
    updated_at: datetime


class Me(User):
    organization: OrganizationRef


class UserCreate(Body):
    username: Username
    password: Password
    email: EmailStr | None = None
    full_name: FullName | None = None
    role: Role = Role.member


class UserUpdate(Body):
    email: EmailStr | None = None
    full_name: FullName | None = None
    role: Role | None = None


class UserReplace(Body):
    """The whole user (PUT): ``email`` and ``full_name`` left out are cleared; ``role`` is
    required, so that a replacement never demotes anyone by leaving it out. The username and
    password do not change here (``POST /auth/password``)."""

    email: EmailStr | None = None
    full_name: FullName | None = None
    role: Role
