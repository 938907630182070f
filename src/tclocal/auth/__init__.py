"""The auth service: clients, roles, scope expansion and the authentication test endpoints."""
