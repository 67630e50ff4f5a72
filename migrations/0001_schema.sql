-- Atlas Hub schema, version 1: everything SPEC §3 needs.
-- Forward-only: never edit this file once applied; add 0002_… instead.

CREATE TABLE products (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug                text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name                text NOT NULL,
    -- "{os}-{arch}" pairs every release moved onto a channel must cover.
    required_platforms  text[] NOT NULL DEFAULT '{}',
    max_artifact_size   bigint CHECK (max_artifact_size > 0),
    -- minisign public key (base64 key line) that updater signatures must be made with.
    updater_public_key  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE releases (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id      bigint NOT NULL REFERENCES products (id),
    version         text NOT NULL,
    -- SemVer precedence: numeric parts, then "no pre-release" above any pre-release.
    major           numeric NOT NULL,
    minor           numeric NOT NULL,
    patch           numeric NOT NULL,
    prerelease      text,
    notes           text NOT NULL DEFAULT '',
    -- sha256 over the canonical artifact list and notes: identical re-publish detection.
    content_digest  text NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now(),
    published_by    text NOT NULL,
    yanked_at       timestamptz,
    UNIQUE (product_id, version)
);
CREATE INDEX releases_history ON releases (product_id, id DESC);

CREATE TABLE packs (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug                        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name                        text NOT NULL,
    oidc_only                   boolean NOT NULL DEFAULT false,
    github_repository           text,
    github_repository_id        bigint,
    github_repository_owner_id  bigint,
    github_workflow             text,
    github_environment          text,
    github_ref_pattern          text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pack_builds (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pack_id         bigint NOT NULL REFERENCES packs (id),
    build           text NOT NULL,
    content_digest  text NOT NULL,
    deployed_at     timestamptz NOT NULL DEFAULT now(),
    deployed_by     text NOT NULL,
    UNIQUE (pack_id, build)
);

-- Immutable artifacts of a release or of a pack build.
CREATE TABLE artifacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Public, opaque id used in download URLs.
    download_id     text NOT NULL UNIQUE,
    release_id      bigint REFERENCES releases (id),
    pack_build_id   bigint REFERENCES pack_builds (id),
    os              text,
    arch            text,
    kind            text,
    filename        text NOT NULL,
    size            bigint NOT NULL CHECK (size >= 0),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    signature       text,
    is_primary      boolean NOT NULL DEFAULT false,
    content_type    text NOT NULL,
    storage_key     text NOT NULL UNIQUE,
    CHECK ((release_id IS NULL) <> (pack_build_id IS NULL)),
    CHECK (release_id IS NULL OR (os IS NOT NULL AND arch IS NOT NULL AND kind IS NOT NULL))
);
CREATE UNIQUE INDEX artifacts_release_platform_kind ON artifacts (release_id, os, arch, kind)
    WHERE release_id IS NOT NULL;
CREATE UNIQUE INDEX artifacts_release_primary ON artifacts (release_id, os, arch)
    WHERE release_id IS NOT NULL AND is_primary;
CREATE INDEX artifacts_pack_build ON artifacts (pack_build_id) WHERE pack_build_id IS NOT NULL;

-- Release channels: mutable pointers. One row per product and channel.
CREATE TABLE channels (
    product_id           bigint NOT NULL REFERENCES products (id),
    name                 text NOT NULL CHECK (name IN ('stable', 'beta', 'dev')),
    release_id           bigint REFERENCES releases (id),
    -- What clients outside the rollout bucket keep getting, and what "rollback" returns to.
    previous_release_id  bigint REFERENCES releases (id),
    rollout_percent      smallint NOT NULL DEFAULT 100 CHECK (rollout_percent BETWEEN 0 AND 100),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    updated_by           text,
    PRIMARY KEY (product_id, name)
);

-- Pack channels: a separate namespace of free-form names.
CREATE TABLE pack_channels (
    pack_id             bigint NOT NULL REFERENCES packs (id),
    name                text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    build_id            bigint NOT NULL REFERENCES pack_builds (id),
    previous_build_id   bigint REFERENCES pack_builds (id),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          text,
    PRIMARY KEY (pack_id, name)
);

-- Presigned uploads handed out: the Hub derived the key and recorded what was declared.
CREATE TABLE uploads (
    id              uuid PRIMARY KEY,
    storage_key     text NOT NULL UNIQUE,
    product_id      bigint REFERENCES products (id),
    version         text,
    pack_id         bigint REFERENCES packs (id),
    build           text,
    os              text,
    arch            text,
    kind            text,
    filename        text NOT NULL,
    size            bigint NOT NULL CHECK (size >= 0),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,
    CHECK ((product_id IS NULL) <> (pack_id IS NULL))
);

CREATE TABLE deploy_tokens (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('app', 'pack', 'admin')),
    name            text NOT NULL,
    -- HMAC-SHA256(ATLAS_TOKEN_PEPPER, token): the plaintext is never stored.
    digest          bytea NOT NULL UNIQUE,
    products        text[] NOT NULL DEFAULT '{}',
    pack_id         bigint REFERENCES packs (id),
    scopes          text[] NOT NULL DEFAULT '{}',
    channels        text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    CHECK (kind <> 'pack' OR pack_id IS NOT NULL)
);

CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    token_id        uuid,
    action          text NOT NULL,
    subject         text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}'
);

-- GitHub OIDC token ids already accepted, kept until the token expires.
CREATE TABLE oidc_used_jti (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE download_counts (
    artifact_id  bigint NOT NULL REFERENCES artifacts (id),
    day          date NOT NULL,
    count        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (artifact_id, day)
);

-- The hot lookup (launcher/runner polling) as one server-side function: its plan is cached
-- per session even when called with unnamed statements behind a transaction pooler.
-- Rows of the channel's release are slot 'current'; while a staged rollout is under 100%,
-- rows of the release the other clients keep are slot 'previous'.
CREATE FUNCTION atlas_channel_platform(p_product text, p_channel text, p_os text, p_arch text)
RETURNS TABLE (
    slot text, rollout_percent smallint, version text, notes text, published_at timestamptz,
    artifact_id bigint, download_id text, kind text, filename text, size bigint, sha256 text,
    signature text, is_primary boolean, storage_key text
) LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT s.slot, c.rollout_percent, r.version, r.notes, r.published_at,
           a.id, a.download_id, a.kind, a.filename, a.size, a.sha256, a.signature, a.is_primary,
           a.storage_key
    FROM products p
    JOIN channels c ON c.product_id = p.id AND c.name = p_channel
    CROSS JOIN LATERAL (VALUES ('current', c.release_id),
                               ('previous', CASE WHEN c.rollout_percent < 100
                                                 THEN c.previous_release_id END)) AS s(slot, release_id)
    JOIN releases r ON r.id = s.release_id AND r.yanked_at IS NULL
    JOIN artifacts a ON a.release_id = r.id AND a.os = p_os AND a.arch = p_arch
    WHERE p.slug = p_product
    ORDER BY s.slot, a.is_primary DESC, a.kind;
END $$;
