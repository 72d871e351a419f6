-- msgbridge schema for PostgreSQL, version 5, as migrations/sqlite/0005: installation numbers
-- that are names (alphanumeric sender ids) are keyed by their text, not by their digits
-- (docs/format.md, "Numbers"; server/core/_numbers.py is the rule and must stay in step with
-- this file). Before, `A0PNCHHK2` and `B0PNCHHK2` were
-- both keyed `02`. Each stored assignment keeps what the operator wrote (`given` in
-- numbers_json), so the new key is recomputed from it: a `given` that, trimmed and after an
-- optional URI scheme (`whatsapp:`), holds a character other than digits, spaces and `+-.()/` is
-- a name, and its key becomes the trimmed `given`, case preserved.
--
-- What this cannot do, by design, and leaves as it was (re-saving the installation's numbers
-- through UpdateInstallation applies the rule in full, or answers NUMBER_TAKEN):
-- * a `given` with characters outside printable ASCII: SQL cannot classify those exactly as
--   the program does;
-- * a new key another enabled installation of the same integration already holds, or that two
--   enabled installations of one integration would both get: nothing is merged or refused here;
-- * two names that one installation merged into one assignment when they collided: only the
--   last one written was kept, and the operator adds the other again.


CREATE TEMP TABLE number_rekey ON COMMIT DROP AS
SELECT installation_id, integration_id, enabled, idx, old_number, g AS new_number
FROM (
    SELECT i.id AS installation_id,
           i.integration_id AS integration_id,
           i.enabled AS enabled,
           n.idx AS idx,
           n.value ->> 'number' AS old_number,
           btrim(coalesce(n.value ->> 'given', ''), ' ') AS g
    FROM installations AS i
    CROSS JOIN LATERAL jsonb_array_elements(i.numbers_json::jsonb) WITH ORDINALITY AS n (value, idx)
) AS assignments
WHERE g <> ''
  AND g <> old_number
  AND g !~ '[^ -~]'
  AND regexp_replace(g, '^[A-Za-z][A-Za-z0-9+.-]*:', '') ~ '[^0-9 +./()-]';

DELETE FROM number_rekey
WHERE enabled
  AND (
      EXISTS (
          SELECT 1 FROM installation_numbers AS held
          WHERE held.integration_id = number_rekey.integration_id
            AND held.number = number_rekey.new_number
            AND held.installation_id <> number_rekey.installation_id
      )
      OR EXISTS (
          SELECT 1 FROM number_rekey AS other
          WHERE other.enabled
            AND other.integration_id = number_rekey.integration_id
            AND other.new_number = number_rekey.new_number
            AND other.installation_id <> number_rekey.installation_id
      )
  );

UPDATE installation_numbers AS held
SET number = r.new_number
FROM number_rekey AS r
WHERE r.installation_id = held.installation_id
  AND r.old_number = held.number;

UPDATE installations AS i
SET numbers_json = (
    SELECT jsonb_agg(
               CASE WHEN r.new_number IS NULL THEN n.value
                    ELSE jsonb_set(n.value, '{number}', to_jsonb(r.new_number)) END
               ORDER BY n.idx
           )::text
    FROM jsonb_array_elements(i.numbers_json::jsonb) WITH ORDINALITY AS n (value, idx)
    LEFT JOIN number_rekey AS r ON r.installation_id = i.id AND r.idx = n.idx
)
WHERE i.id IN (SELECT installation_id FROM number_rekey);
