#!/usr/bin/env bash
# Register the broker in IAM as an OIDC provider, and create a role that trusts it.
# The broker's tokens have iss = public_url, aud = aws.web_identity_audience, sub = "<idp id>:<subject>".
set -euo pipefail
aws iam create-open-id-connect-provider \
  --url https://broker.example.com \
  --client-id-list sts.amazonaws.com
aws iam create-role --role-name Developer \
  --assume-role-policy-document file://trust-policy.json \
  --max-session-duration 28800
