-- The channel/yank invariant held by the database itself, and upload-row cleanup.
-- Forward-only: never edit this file once applied; add 0004_… instead.

-- No channel points at a yanked release: neither as the release it serves nor, while a
-- staged rollout (rollout_percent < 100) serves it to the clients outside the bucket, as its
-- previous release. Both writers check under a row lock on the release, so a channel move
-- and a yank racing each other serialize and exactly one of them wins:
-- - a channel write locks the release FOR SHARE (waiting for a yank in flight, then seeing
--   its outcome) and refuses a yanked one (SQLSTATE AH001, answered 409 release_yanked);
-- - a yank's UPDATE takes the row lock (waiting for a channel move in flight) and its
--   trigger, a volatile function that reads with a fresh snapshot, refuses a release a
--   channel serves (SQLSTATE AH002, answered 409 channel_points_here).
CREATE FUNCTION atlas_channel_serves_no_yanked_release() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT id, version, yanked_at FROM releases
        WHERE id = NEW.release_id
           OR (id = NEW.previous_release_id AND NEW.rollout_percent < 100)
        ORDER BY id
        FOR SHARE
    LOOP
        IF r.yanked_at IS NOT NULL THEN
            RAISE EXCEPTION '% is yanked; unyank it before a channel serves it%', r.version,
                CASE WHEN r.id = NEW.release_id THEN ''
                     ELSE ' (it is the previous release a staged rollout serves to clients outside the bucket)' END
                USING ERRCODE = 'AH001';
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

CREATE TRIGGER channels_serve_no_yanked_release
    BEFORE INSERT OR UPDATE ON channels
    FOR EACH ROW EXECUTE FUNCTION atlas_channel_serves_no_yanked_release();

CREATE FUNCTION atlas_yank_only_unserved_releases() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    served text;
BEGIN
    IF NEW.yanked_at IS NOT NULL AND OLD.yanked_at IS NULL THEN
        SELECT string_agg(name, ', ' ORDER BY name) INTO served FROM channels
        WHERE release_id = NEW.id OR (previous_release_id = NEW.id AND rollout_percent < 100);
        IF served IS NOT NULL THEN
            RAISE EXCEPTION '% is served by channel %; move the channel first', NEW.version, served
                USING ERRCODE = 'AH002', DETAIL = served;
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER releases_yank_only_unserved
    BEFORE UPDATE OF yanked_at ON releases
    FOR EACH ROW EXECUTE FUNCTION atlas_yank_only_unserved_releases();

-- Presigned uploads that were never published are deleted a day after they were handed out
-- (lib/domain/uploads.rs, `prune`): the scan goes by age.
CREATE INDEX uploads_created_at ON uploads (created_at);
