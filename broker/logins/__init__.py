"""Browser sign-ins: one `RedirectLogin` per IdP (OIDC, SAML), found by IdP id in one registry."""
