-- Extra fields of an event (docs/format.md, "Extra fields"): the captures its webhook model keeps
-- beside the event's own fields, as a JSON object of text values. Events stored before have none.
ALTER TABLE events ADD COLUMN fields_json TEXT NOT NULL DEFAULT '{}';
