#!/usr/bin/env bash
# IAM for the AssumeRole and GetFederationToken paths (examples/rules/hub-and-spoke.yaml). Run each block with
# credentials for the account it names (profiles hub, payments, ... here).
set -euo pipefail

# Hub account 111122223333: the role people get through the broker (web identity), allowed to chain out.
aws --profile hub iam create-role --role-name Hub \
  --assume-role-policy-document file://hub-trust-policy.json --max-session-duration 3600
aws --profile hub iam put-role-policy --role-name Hub --policy-name chain-into-spokes \
  --policy-document file://hub-identity-policy.json

# Each spoke account: a role that trusts the hub role (sessions of it) and nothing else.
aws --profile payments iam create-role --role-name Developer \
  --assume-role-policy-document file://spoke-trust-policy.json
aws --profile data iam create-role --role-name Analyst \
  --assume-role-policy-document file://spoke-trust-policy.json
aws --profile sandbox iam create-role --role-name Sandbox \
  --assume-role-policy-document file://spoke-trust-policy-external-id.json

# The broker's own credentials (via assume_role without from:, via federation_token): an IAM user here, or
# better for assume_role a role of the broker's host (instance or task role; the broker then chains, 1 h max).
aws --profile hub iam create-user --user-name sts-broker
aws --profile hub iam put-user-policy --user-name sts-broker --policy-name broker \
  --policy-document file://broker-user-policy.json
aws --profile hub iam create-role --role-name Auditor --path /brokered/ \
  --assume-role-policy-document file://broker-assumed-trust-policy.json
# Then give the broker its access key the standard way (environment, or a profile: aws.credentials_profile).
