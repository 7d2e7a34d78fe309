"""The `sts-broker` client: the subcommands an engineer runs on their own machine (login, credential-process,
exec, configure, console, roles, status, logout).

Standard library only, and nothing from the server side of the package: `sts-broker credential-process` runs
before every `aws` call, so its start-up is the cost that matters (bench/cli_credential_process.py). The server
stack (starlette, pydantic, httpx, lxml, boto3, yaml, ...) is never imported here; tests/client/test_imports.py
checks which modules a credential-process run loads."""
