"""Users, passwords, tokens, revocation, rate limits: the auth layer of core-api."""
