-- Why a release was yanked: what an operator (or the CI script that yanked it) said, shown
-- beside the yank in the release detail, the history and the audit log. Forward-only: never
-- edit this file once applied; add 0007_… instead.

-- One line of plain text (lib/routes/releases.rs checks it: 1 to 500 characters, no control
-- characters). Only a yanked release has one: unyank clears it, so a later yank never shows
-- an earlier yank's reason.
ALTER TABLE releases
    ADD COLUMN yank_reason text
        CHECK (yank_reason IS NULL OR (yanked_at IS NOT NULL AND length(yank_reason) BETWEEN 1 AND 500));
