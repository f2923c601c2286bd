"""How the OpenAPI schema (drf-spectacular) describes bot tokens: ``Authorization: Token``,
as it describes knox's own authentication. Imported from ``AccountsConfig.ready()``."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class BotTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.bot_auth.BotTokenAuthentication"
    name = "botToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=self.target.authenticate_header(None)
        )
