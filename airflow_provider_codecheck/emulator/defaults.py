"""Default credentials and settings of the emulator, and the configuration object built from them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

IAM_USER = "codecheck-user"
IAM_PASSWORD = "codecheck-password"
IAM_DOMAIN = "codecheck-domain"
ACCESS_KEY = "EMULATORAK0000000000"
SECRET_KEY = "emulator-secret-key-0000000000000000000000"

TOKEN_LIFETIME_S = 86400.0
# APIG rejects AK/SK requests whose X-Sdk-Date is further than 15 minutes from its own clock.
MAX_CLOCK_SKEW_S = 15 * 60.0

# Defaults of a task created through the admin API without explicit values.
TASK_DURATION_S = 2.0
TASK_FINAL_STATUS = 2

UNKNOWN_TASK_MODES = ("documented", "http_404")
NULL_FIELD_MODES = ("null", "absent")

# The gateway locks an AK/SK pair for 5 minutes after 5 failed authentications in a row
# (reference gateway-and-quotas.md: "AK access failed to reach the limit,forbidden").
AKSK_LOCK_THRESHOLD = 5
AKSK_LOCK_S = 300.0


def stable_id(*parts: str) -> str:
    """A 32-hex id derived from names, so IAM ids stay the same across restarts."""
    return hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class AccessKey:
    secret_key: str
    # Temporary AK/SK pairs come with a security token that must accompany every request.
    security_token: str | None = None


@dataclass
class EmulatorConfig:
    iam_user: str = IAM_USER
    iam_password: str = IAM_PASSWORD
    iam_domain: str = IAM_DOMAIN
    access_keys: dict[str, AccessKey] = field(default_factory=lambda: {ACCESS_KEY: AccessKey(SECRET_KEY)})
    token_lifetime_s: float = TOKEN_LIFETIME_S
    max_clock_skew_s: float = MAX_CLOCK_SKEW_S
    seed: int = 0
    # Unknown task ids get a finished, successful task instead of a 404 (handy for users' DAGs).
    auto_create: bool = False
    # What an unknown task id answers: "documented" (200 CC.00050002, per Huawei's error-code table) or
    # "http_404" (the emulator's old, undocumented 404 CC.00000404).
    unknown_task: str = "documented"
    # Fields without a value: "null" (sent as null, as the docs list them) or "absent" (left out).
    null_fields: str = "null"
    aksk_lock_threshold: int = AKSK_LOCK_THRESHOLD
    aksk_lock_s: float = AKSK_LOCK_S

    def __post_init__(self) -> None:
        if self.unknown_task not in UNKNOWN_TASK_MODES:
            raise ValueError(f"unknown_task must be one of {UNKNOWN_TASK_MODES}")
        if self.null_fields not in NULL_FIELD_MODES:
            raise ValueError(f"null_fields must be one of {NULL_FIELD_MODES}")
