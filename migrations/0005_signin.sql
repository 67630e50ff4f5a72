-- Operator sign-in (issue 17): flows in progress, what a session needs for its re-checks,
-- and the rule kind of the local developer sign-in. Forward-only: never edit this file once
-- applied; add 0006_… instead.

-- A sign-in between the redirect to the provider and its callback. Any function instance
-- may finish it, so it lives here, not in memory. The browser holds a random value in a
-- `__Host-` cookie; only its digest is stored, and the flow is deleted by the first callback
-- that names it (a replayed callback finds nothing). `state` is compared with the callback's,
-- `pkce_verifier` and `nonce` go with the code exchange and the id_token check.
CREATE TABLE signin_flows (
    digest         bytea PRIMARY KEY,
    provider       text NOT NULL CHECK (length(provider) BETWEEN 1 AND 40),
    state          text NOT NULL,
    pkce_verifier  text NOT NULL,
    nonce          text NOT NULL,
    -- The tenant the flow was sent to (Microsoft), so the id_token must come from it.
    tenant         text,
    return_to      text NOT NULL CHECK (return_to LIKE '/%' AND length(return_to) <= 2000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);

CREATE INDEX signin_flows_expires ON signin_flows (expires_at);

-- Authorization codes already sent to a provider's token endpoint (their digests): a code is
-- exchanged once, and one seen again is refused by the Hub itself before the provider is
-- asked (providers refuse it too, but do not say why).
CREATE TABLE signin_codes (
    digest   bytea PRIMARY KEY,
    used_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX signin_codes_used ON signin_codes (used_at);

-- The provider a session came from, and for GitHub the user's access token, sealed
-- (ChaCha20-Poly1305 under a key derived from ATLAS_TOKEN_PEPPER): organization and team
-- memberships are re-read with it at least every 15 minutes (`checked_at`), so someone
-- removed from an organization loses access at the next check. The user agent is shown
-- when an operator lists their sessions.
ALTER TABLE operator_sessions
    ADD COLUMN provider text NOT NULL DEFAULT 'local',
    ADD COLUMN provider_token bytea,
    ADD COLUMN user_agent text CHECK (length(user_agent) <= 300);

-- `local_user:<name>`: the developer sign-in of `atlas-hub serve`, which no deployed
-- function serves (the route exists only in the local server's router).
ALTER TABLE access_rules DROP CONSTRAINT access_rules_kind_check;
ALTER TABLE access_rules ADD CONSTRAINT access_rules_kind_check CHECK (kind IN (
    'github_user', 'github_org', 'github_team', 'microsoft_tenant', 'microsoft_group',
    'oidc_subject', 'oidc_email', 'local_user'));
