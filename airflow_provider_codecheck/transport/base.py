"""What the requests and aiohttp clients share: their configuration and how they show themselves."""

from __future__ import annotations

from airflow_provider_codecheck.core import flow as core_flow
from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core.operations import NamedOperations
from airflow_provider_codecheck.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from airflow_provider_codecheck.core.settings import ConnectionSettings, PasswordAuth


class ClientBase(NamedOperations):
    """The operations by name (``NamedOperations``) come with ``execute``, sync or async per client."""

    default_context = core_flow.DEFAULT_CONTEXT

    def __init__(
        self,
        settings: ConnectionSettings,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        ctx: core_flow.Context | None = None,
        token_cache: iam.TokenCache = iam.TOKEN_CACHE,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.ctx = ctx or self.default_context
        self.token_cache = token_cache

    def __repr__(self) -> str:
        # Names the endpoint and the kind of credentials, never the credentials.
        return f"{type(self).__name__}(endpoint={self.settings.endpoint!r}, auth={type(self.settings.auth).__name__})"

    def _token_key(self) -> tuple[PasswordAuth, iam.CacheKey]:
        auth = self.settings.auth
        if not isinstance(auth, PasswordAuth):
            raise TypeError("IAM tokens exist only for auth_type 'password'")
        return auth, iam.cache_key(auth, self.settings.iam_endpoint)

    def _gate_key(self, send: core_flow.Send) -> iam.CredentialKey | None:
        """The key whose gate ``send`` must go through, or None to send at once.

        A request with credentials (AK/SK, IAM password) not yet accepted in this process, or rejected, is sent
        only under its key's gate, one at a time, so concurrent callers learn from the first answer.
        """
        key = send.credential
        return None if key is None or iam.CREDENTIAL_MEMO.trusted(key) else key

    def _withheld(self, send: core_flow.Send) -> iam.Withheld | None:
        return (
            None
            if send.credential is None
            else iam.CREDENTIAL_MEMO.withheld(send.credential, self.ctx.monotonic())
        )

    def _learn(self, send: core_flow.Send, outcome: object) -> None:
        if send.credential is not None:
            iam.CREDENTIAL_MEMO.observe(send.credential, outcome, self.ctx.monotonic())

    def _fetch_token_flow(self, auth: PasswordAuth) -> core_flow.Flow[iam.IamToken]:
        return core_flow.fetch_token(auth, self.settings.iam_endpoint, self.settings, self.policy, self.ctx)
