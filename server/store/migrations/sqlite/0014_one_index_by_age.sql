-- messages_by_age (created_at) is a prefix of messages_by_created (created_at, id), which the
-- listings added since: the retention purge's range is served by that one as well, and every
-- message recorded then updates one index fewer.
DROP INDEX messages_by_age;
