//! The catalogue, written directly with SQL (what the API would have written): 20 products
//! with their stable/beta/dev channels, 200 releases each, 10 artifacts per release over 6
//! platforms, a staged rollout, three packs with builds and channels, one app deploy token.

/// Products, releases per product.
pub const PRODUCTS: u32 = 20;
pub const RELEASES: u32 = 200;

/// `(os, arch)` of the six platforms.
pub const PLATFORMS: [(&str, &str); 6] = [
    ("linux", "x86_64"),
    ("linux", "aarch64"),
    ("windows", "x86_64"),
    ("windows", "aarch64"),
    ("darwin", "x86_64"),
    ("darwin", "aarch64"),
];

/// Stable points at release index 180: version 1.9.0.
pub const STABLE_VERSION: &str = "1.9.0";

/// The seeding script. `digest_hex` is HMAC-SHA256(pepper, app token).
pub fn sql(digest_hex: &str) -> String {
    format!(
        r#"
BEGIN;
INSERT INTO products (slug, name, required_platforms)
SELECT 'product-' || p, 'Product ' || p,
       '{{darwin-aarch64,darwin-x86_64,linux-aarch64,linux-x86_64,windows-aarch64,windows-x86_64}}'
FROM generate_series(1, {PRODUCTS}) p;

INSERT INTO channels (product_id, name)
SELECT id, c FROM products, unnest(ARRAY['stable', 'beta', 'dev']) c;

-- Release i of a product is 1.(i/20).(i%20), published a day apart.
INSERT INTO releases (product_id, version, major, minor, patch, notes, content_digest,
                      published_at, published_by)
SELECT p.id, format('1.%s.%s', i / 20, i % 20), 1, i / 20, i % 20,
       format('Release 1.%s.%s of %s: fixes and improvements.', i / 20, i % 20, p.slug),
       md5(p.slug || i) || md5(i || p.slug),
       now() - ({RELEASES} - i) * interval '1 day', 'token:ci (seed)'
FROM products p, generate_series(0, {RELEASES} - 1) i
ORDER BY p.id, i;

-- Ten artifacts per release over the six platforms; one primary per platform.
-- download_id of the n-th artifact is dl_ || md5(n) (the pgbench floor derives it from n).
INSERT INTO artifacts (download_id, release_id, os, arch, kind, filename, size, sha256,
                       signature, is_primary, content_type, storage_key)
SELECT 'dl_' || md5((row_number() OVER (ORDER BY r.id, k.ord))::text), r.id, k.os, k.arch, k.kind,
       format('%s_%s_%s.%s', p.slug, r.version, k.arch, k.ext),
       20000000 + (r.id * 7919 + k.ord * 104729) % 80000000,
       md5(r.id || k.kind || k.os || k.arch) || md5(k.arch || k.os || k.kind || r.id),
       CASE WHEN k.signed THEN encode(convert_to('untrusted comment: signature from tauri secret key' || chr(10) || md5(r.id::text || k.ord), 'UTF8'), 'base64') END,
       k.is_primary, 'application/octet-stream',
       format('releases/%s/%s/%s-%s/%s/%s_%s_%s.%s', p.slug, r.version, k.os, k.arch, k.kind,
              p.slug, r.version, k.arch, k.ext)
FROM releases r
JOIN products p ON p.id = r.product_id
CROSS JOIN (VALUES
    (1, 'linux', 'x86_64', 'appimage', 'AppImage', true, true),
    (2, 'linux', 'x86_64', 'deb', 'deb', false, false),
    (3, 'linux', 'aarch64', 'appimage', 'AppImage', true, true),
    (4, 'linux', 'aarch64', 'deb', 'deb', false, false),
    (5, 'windows', 'x86_64', 'nsis', 'exe', true, true),
    (6, 'windows', 'x86_64', 'msi', 'msi', false, true),
    (7, 'windows', 'aarch64', 'nsis', 'exe', true, true),
    (8, 'darwin', 'x86_64', 'app', 'app.tar.gz', true, true),
    (9, 'darwin', 'aarch64', 'app', 'app.tar.gz', true, true),
    (10, 'darwin', 'aarch64', 'dmg', 'dmg', false, false)
) AS k(ord, os, arch, kind, ext, is_primary, signed);

-- Channels: stable 1.9.0 (previous 1.8.19), beta 1.9.10, dev 1.9.19; product-3's stable is a
-- 25% staged rollout.
UPDATE channels c SET
    release_id = (SELECT id FROM releases r WHERE r.product_id = c.product_id AND r.version =
                  CASE c.name WHEN 'stable' THEN '{STABLE_VERSION}' WHEN 'beta' THEN '1.9.10' ELSE '1.9.19' END),
    previous_release_id = (SELECT id FROM releases r WHERE r.product_id = c.product_id AND r.version =
                  CASE c.name WHEN 'stable' THEN '1.8.19' WHEN 'beta' THEN '1.9.9' ELSE '1.9.18' END),
    updated_by = 'token:ci (seed)';
UPDATE channels SET rollout_percent = 25
WHERE name = 'stable' AND product_id = (SELECT id FROM products WHERE slug = 'product-3');

-- Packs: three, 20 builds of 3 artifacts each, channels live and staging.
INSERT INTO packs (slug, name) SELECT 'pack-' || i, 'Pack ' || i FROM generate_series(1, 3) i;
INSERT INTO pack_builds (pack_id, build, content_digest, deployed_by)
SELECT p.id, 'build-' || b, md5(p.slug || b) || md5(b || p.slug), 'oidc:seed'
FROM packs p, generate_series(1, 20) b;
INSERT INTO artifacts (download_id, pack_build_id, filename, size, sha256, content_type, storage_key)
SELECT 'dlp_' || md5(pb.id || '-' || f), pb.id, format('content-%s.pak', f), 1000000 + f,
       md5(pb.id || f::text) || md5(f || pb.id::text), 'application/octet-stream',
       format('packs/%s/%s/content-%s.pak', p.slug, pb.build, f)
FROM pack_builds pb JOIN packs p ON p.id = pb.pack_id, generate_series(1, 3) f;
INSERT INTO pack_channels (pack_id, name, build_id, previous_build_id, updated_by)
SELECT p.id, c.name,
       (SELECT id FROM pack_builds WHERE pack_id = p.id AND build = 'build-' || c.cur),
       (SELECT id FROM pack_builds WHERE pack_id = p.id AND build = 'build-' || (c.cur - 1)),
       'oidc:seed'
FROM packs p, (VALUES ('live', 19), ('staging', 20)) AS c(name, cur);

-- The CI token of the presign and publish measurements (HMAC digest only, as the Hub stores).
INSERT INTO deploy_tokens (id, kind, name, digest, products, scopes, channels, created_by)
VALUES (gen_random_uuid(), 'app', 'bench-ci', decode('{digest_hex}', 'hex'), '{{*}}',
        '{{upload,publish}}', '{{*}}', 'cli:bench');
COMMIT;
"#
    )
}
