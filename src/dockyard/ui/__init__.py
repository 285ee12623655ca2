"""The web UI: server-rendered pages at `/`, beside /v2/, /api/v1 and /auth/token.

Views parse the request, call the domain services (which ask the one access policy) and render templates;
nothing here decides who may do what.
"""
