-- Operators who sign in (issue 17): the rules that say who may, with which role, and the
-- sessions they hold. Forward-only: never edit this file once applied; add 0005_… instead.

-- Who may sign in, and as what. A rule matches a person when `kind:value` is one of the
-- claims their sign-in established (`github_user:octocat`, `github_org:acme`,
-- `github_team:acme/ops`, `microsoft_tenant:<tid>`, `microsoft_group:<tid>/<gid>`,
-- `oidc_subject:<issuer> <sub>`, `oidc_email:<verified address>`). Values are stored as
-- lib/domain/sessions.rs normalizes them. The strongest matching role wins; `products`
-- limits what a releaser may move ('{*}': every product).
CREATE TABLE access_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('github_user', 'github_org', 'github_team',
                    'microsoft_tenant', 'microsoft_group', 'oidc_subject', 'oidc_email')),
    value       text NOT NULL CHECK (length(value) BETWEEN 1 AND 300),
    role        text NOT NULL CHECK (role IN ('viewer', 'releaser', 'admin')),
    products    text[] NOT NULL DEFAULT '{*}',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, value, role)
);

-- A signed-in operator. The cookie holds a random id; only its HMAC digest is stored. The
-- role is not stored: it is read from the rules on every request, so removing a rule ends
-- access at once. `claims` are re-established from the provider at least every 15 minutes
-- (`checked_at`).
CREATE TABLE operator_sessions (
    id            uuid PRIMARY KEY,
    digest        bytea NOT NULL UNIQUE,
    person        text NOT NULL CHECK (length(person) BETWEEN 1 AND 300),
    claims        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    checked_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX operator_sessions_person ON operator_sessions (person);
