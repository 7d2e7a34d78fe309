"""The credentials page: what POST /roles/credentials shows a browser (the raw formats stay for `format=` and
`Accept`). Its script (static/credentials.js) shows the expiry in local time with a countdown and fills the
clipboard; the policy allows that one script of the broker's own and nothing inline."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from broker.grants import RoleGrant
from broker.issuers.credentials import Credentials
from broker.outputs.formats import expiration_text, note
from broker.outputs.shells import profile_name, snippets
from broker.web.context import context_of
from broker.web.render import page

PAGE = "page"  # the format name of this page, beside formats.FORMATS


def credentials_page(request: Request, grant: RoleGrant, creds: Credentials) -> Response:
    service = context_of(request).service
    account_name = service.rules.accounts.get(grant.account_id)
    profile = profile_name(service.settings.credentials_page.profile_name, account_name, grant.account_id,
                           grant.role_name)
    context = {
        "role_name": grant.role_name, "role_arn": grant.role_arn, "account_id": grant.account_id,
        "account_name": account_name, "assumed_role_arn": creds.assumed_role_arn,
        "expiration": expiration_text(creds), "note": note(creds), "profile": profile,
        "snippets": snippets(creds, profile, service.settings.public_url),
    }
    return page(request, "credentials.html", context)
